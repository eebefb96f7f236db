"""Every reader reads a kline-etl dataset directory whole, with its default call, and gets
exactly the rows the simulator served.

Usage: interop.py SPEC.json

SPEC.json: {"datasets": [{"dir": ".../klines", "prices": "float64"|"decimal",
                          "unit": "ms"|"us", "expected": [series...]}]}
where each series is {"market", "symbol", "interval", "rows": [the simulator's JSON rows]}.

Readers, each with its plain default call on the directory (the README's snippets are copied
from here):
  pyarrow   pq.read_table(DIR)
  pandas    pd.read_parquet(DIR)
  dataset   pyarrow.dataset.dataset(DIR, partitioning="hive")
  duckdb    read_parquet('DIR/**/*.parquet', hive_partitioning = true)
  polars    pl.scan_parquet('DIR/**/*.parquet', hive_partitioning=True)
  spark     spark.read.parquet(DIR)          (pyspark, local[1]; required when CI is set)
Each reader's rows are normalised to (market, symbol, interval, year, open_us, close_us,
values..., trades) and compared exactly, in order, with the served rows; the column names and
the Python types of every partition key are checked too. Prints one line per reader and
dataset ("works"), exits non-zero with a message on the first disagreement.
"""

import json
import os
import sys
from datetime import datetime, timezone
from decimal import Decimal

import duckdb
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

VALUES = ["open", "high", "low", "close", "volume", "quote_volume", "taker_buy_base_volume", "taker_buy_quote_volume"]
DATA = ["open_time", "close_time", *VALUES, "trades", "interval"]
KEYS = ["market", "symbol", "year"]
# Served row: [open_time, open, high, low, close, volume, close_time, quote_volume, trades,
#              taker_buy_base, taker_buy_quote, ignore]
SERVED_VALUE_INDEX = [1, 2, 3, 4, 5, 7, 9, 10]


def fail(msg):
    print(f"interop: {msg}", file=sys.stderr)
    sys.exit(1)


def check(cond, msg):
    if not cond:
        fail(msg)


def expected_rows(spec):
    dec = spec["prices"] == "decimal"
    us = spec["unit"] == "us"
    out = []
    for s in spec["expected"]:
        for r in s["rows"]:
            open_ms, close_ms = int(r[0]), int(r[6])
            year = datetime.fromtimestamp(open_ms / 1000, tz=timezone.utc).year
            vals = [Decimal(r[i]) if dec else float(r[i]) for i in SERVED_VALUE_INDEX]
            close_us = (close_ms + 1) * 1000 - 1 if us else close_ms * 1000
            out.append((s["market"], s["symbol"], s["interval"], year, open_ms * 1000, close_us, *vals, int(r[8])))
    return sorted(out, key=lambda t: (t[0], t[1], t[2], t[4]))


def normalise(name, rows):
    """rows: dicts with KEYS + DATA, times as µs integers."""
    out = []
    for r in rows:
        for k in ("market", "symbol", "interval"):
            check(isinstance(r[k], str), f"{name}: {k} is {type(r[k]).__name__} ({r[k]!r}), expected a string")
        check(isinstance(r["year"], int), f"{name}: year is {type(r['year']).__name__}, expected an integer")
        out.append((r["market"], r["symbol"], r["interval"], r["year"], int(r["open_time"]), int(r["close_time"]),
                    *[r[v] for v in VALUES], int(r["trades"])))
    return sorted(out, key=lambda t: (t[0], t[1], t[2], t[4]))


def compare(name, got, want, spec):
    check(len(got) == len(want), f"{name}: {len(got)} rows, expected {len(want)}")
    dec = spec["prices"] == "decimal"
    for g, w in zip(got, want):
        if g != w:
            fail(f"{name}: row {g} != served {w}")
        for x in g[6:14]:
            check(isinstance(x, Decimal) if dec else isinstance(x, float), f"{name}: value {x!r} is {type(x).__name__}")


def check_columns(name, columns):
    want = set(DATA + KEYS)
    check(set(columns) == want, f"{name}: columns {sorted(columns)}, expected {sorted(want)}")


def arrow_rows(name, t, spec):
    check_columns(name, t.column_names)
    for c in ("open_time", "close_time"):
        ty = t.schema.field(c).type
        check(pa.types.is_timestamp(ty) and ty.tz == "UTC" and ty.unit == spec["unit"], f"{name}: {c} is {ty}")
    mult = 1 if spec["unit"] == "us" else 1000
    cols = {c: t.column(c).to_pylist() for c in t.column_names if c not in ("open_time", "close_time")}
    for c in ("open_time", "close_time"):
        cols[c] = [v * mult for v in t.column(c).cast(pa.int64()).to_pylist()]
    return [dict(zip(cols, vals)) for vals in zip(*cols.values())]


def read_pyarrow(d, spec):
    # pyarrow.parquet.read_table(DIR): hive partitioning discovered by default.
    t = pq.read_table(d)
    return arrow_rows("pyarrow.parquet.read_table", t, spec)


def read_dataset(d, spec):
    t = ds.dataset(d, partitioning="hive").to_table()
    return arrow_rows("pyarrow.dataset", t, spec)


def read_pandas(d, spec):
    df = pd.read_parquet(d)
    check_columns("pandas", df.columns)
    for c in ("open_time", "close_time"):
        dt = df[c].dtype
        check(isinstance(dt, pd.DatetimeTZDtype) and str(dt.tz) == "UTC", f"pandas: {c} is {dt}")
    rows = []
    for r in df.to_dict("records"):
        r["open_time"] = r["open_time"].value // 1000
        r["close_time"] = r["close_time"].value // 1000
        r["year"] = int(r["year"]) if isinstance(r["year"], (int,)) or hasattr(r["year"], "__index__") else r["year"]
        for v in VALUES:
            if isinstance(r[v], float) or spec["prices"] == "decimal":
                continue
            r[v] = float(r[v])
        r["trades"] = int(r["trades"])
        rows.append(r)
    return rows


def read_duckdb(d, spec):
    con = duckdb.connect()
    src = f"read_parquet('{d}/**/*.parquet', hive_partitioning = true)"
    types = {r[0]: r[1] for r in con.execute(f"describe select * from {src}").fetchall()}
    check_columns("duckdb", types)
    for c in ("open_time", "close_time"):
        check(types[c] == "TIMESTAMP WITH TIME ZONE", f"duckdb: {c} is {types[c]}")
    cols = ", ".join(f'"{c}"' for c in VALUES)
    q = f"select market, symbol, interval, year, epoch_us(open_time), epoch_us(close_time), {cols}, trades from {src}"
    names = ["market", "symbol", "interval", "year", "open_time", "close_time", *VALUES, "trades"]
    return [dict(zip(names, r)) for r in con.execute(q).fetchall()]


def read_polars(d, spec):
    lf = pl.scan_parquet(f"{d}/**/*.parquet", hive_partitioning=True)
    sch = lf.collect_schema()
    check_columns("polars", sch.names())
    for c in ("open_time", "close_time"):
        check(isinstance(sch[c], pl.Datetime) and sch[c].time_zone == "UTC", f"polars: {c} is {sch[c]}")
    df = lf.with_columns(pl.col("open_time").dt.epoch("us"), pl.col("close_time").dt.epoch("us")).collect()
    return df.to_dicts()


def spark_session():
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        if os.environ.get("CI"):
            fail("pyspark is not installed (scripts/test.sh installs it)")
        return None
    return (
        SparkSession.builder.master("local[1]")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.shuffle.partitions", "1")
        .getOrCreate()
    )


def read_spark(spark, d, spec):
    from pyspark.sql import functions as F

    df = spark.read.parquet(d)
    check_columns("spark", df.columns)
    types = dict(df.dtypes)
    for c in ("open_time", "close_time"):
        check(types[c] == "timestamp", f"spark: {c} is {types[c]}")
    out = df.select(
        "market", "symbol", "interval", "year",
        F.unix_micros("open_time").alias("open_time"), F.unix_micros("close_time").alias("close_time"),
        *VALUES, "trades",
    )
    return [r.asDict() for r in out.collect()], types


def main():
    if len(sys.argv) != 2:
        fail(__doc__)
    with open(sys.argv[1]) as f:
        spec = json.load(f)
    spark = spark_session()
    for s in spec["datasets"]:
        d = s["dir"]
        want = expected_rows(s)
        check(want, f"no served rows for {d}")
        label = f"{s['prices']}/{s['unit']} {os.path.basename(os.path.dirname(d))}"
        readers = [
            ("pyarrow.parquet.read_table", read_pyarrow),
            ("pandas.read_parquet", read_pandas),
            ("pyarrow.dataset(hive)", read_dataset),
            ("duckdb read_parquet", read_duckdb),
            ("polars scan_parquet", read_polars),
        ]
        for name, read in readers:
            compare(name, normalise(name, read(d, s)), want, s)
            print(f"{name}: works ({len(want)} rows, {label})")
        if spark is not None:
            rows, types = read_spark(spark, d, s)
            check(types["interval"] == "string" and types["symbol"] == "string" and types["market"] == "string",
                  f"spark: partition/label types {types}")
            check(types["year"] == "int", f"spark: year is {types['year']}")
            compare("spark", normalise("spark", rows), want, s)
            print(f"spark.read.parquet: works ({len(want)} rows, {label})")
        else:
            print("spark.read.parquet: skipped (pyspark not installed)")
    print(f"interop ok: pyarrow {pa.__version__}, pandas {pd.__version__}, polars {pl.__version__}, duckdb {duckdb.__version__}")


if __name__ == "__main__":
    main()
