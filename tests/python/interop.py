"""Check that the four common readers see a kline-etl dataset the same way.

Usage: interop.py DATASET_DIR [PRICES [TIME_UNIT [ROWS]]]

DATASET_DIR is the `klines` directory (hive layout market=/symbol=/interval=/[period=]).
PRICES is `float64` or `decimal`, TIME_UNIT `ms` or `us`, ROWS the expected row count; when
given they are checked too. Readers: pyarrow.dataset, pandas (directory and single file),
polars scan_parquet(hive_partitioning=True), DuckDB read_parquet(hive_partitioning=true).
Exits non-zero with a message on the first disagreement.
"""

import glob
import os
import sys
from collections import Counter

import duckdb
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.dataset as ds

VALUE_COLUMNS = [
    "open",
    "high",
    "low",
    "close",
    "volume",
    "quote_volume",
    "taker_buy_base_volume",
    "taker_buy_quote_volume",
]
FILE_COLUMNS = ["open_time", "close_time", *VALUE_COLUMNS, "trades", "symbol", "interval"]


def fail(msg):
    print(f"interop: {msg}", file=sys.stderr)
    sys.exit(1)


def check(cond, msg):
    if not cond:
        fail(msg)


def path_counts(root):
    """(symbol, interval) -> rows, from the directory names, via pyarrow row counts per file."""
    counts = Counter()
    for f in glob.glob(os.path.join(root, "**", "*.parquet"), recursive=True):
        parts = dict(p.split("=", 1) for p in os.path.relpath(f, root).split(os.sep)[:-1])
        import pyarrow.parquet as pq

        counts[(parts["symbol"], parts["interval"])] += pq.ParquetFile(f).metadata.num_rows
    return counts


def main():
    if len(sys.argv) < 2:
        fail(__doc__)
    root = sys.argv[1]
    prices = sys.argv[2] if len(sys.argv) > 2 else None
    unit = sys.argv[3] if len(sys.argv) > 3 else None
    rows = int(sys.argv[4]) if len(sys.argv) > 4 else None
    expected = path_counts(root)
    total = sum(expected.values())
    check(total > 0, f"no parquet files under {root}")
    if rows is not None:
        check(total == rows, f"files hold {total} rows, expected {rows}")

    # pyarrow.dataset with hive partitioning, values inferred as dictionaries like pandas does
    # (the in-file symbol/interval columns are dictionaries; see src/transform/schema.rs).
    hive = ds.HivePartitioning.discover(infer_dictionary=True)
    t = ds.dataset(root, format="parquet", partitioning=hive).to_table()
    check(t.num_rows == total, f"pyarrow: {t.num_rows} rows, expected {total}")
    for c in FILE_COLUMNS + ["market"]:
        check(c in t.column_names, f"pyarrow: column {c} missing: {t.column_names}")
    for c in ("open_time", "close_time"):
        ty = t.schema.field(c).type
        check(pa.types.is_timestamp(ty) and ty.tz == "UTC", f"pyarrow: {c} is {ty}")
        if unit:
            check(ty.unit == unit, f"pyarrow: {c} unit {ty.unit}, expected {unit}")
    for c in VALUE_COLUMNS:
        ty = t.schema.field(c).type
        if prices == "decimal":
            check(ty == pa.decimal128(38, 8), f"pyarrow: {c} is {ty}")
        elif prices == "float64":
            check(ty == pa.float64(), f"pyarrow: {c} is {ty}")
    check(t.schema.field("trades").type == pa.int64(), f"pyarrow: trades is {t.schema.field('trades').type}")
    for c in ("symbol", "interval", "market"):
        ty = t.schema.field(c).type
        check(pa.types.is_string(ty) or pa.types.is_large_string(ty) or pa.types.is_dictionary(ty), f"pyarrow: {c} is {ty}")
    check(pa.types.is_integer(t.schema.field("year").type.value_type) if "year" in t.column_names else True, "pyarrow: year not an integer")
    got = Counter(zip(t.column("symbol").to_pylist(), t.column("interval").to_pylist()))
    # Without partitioning, the in-file columns alone.
    t2 = ds.dataset(root, format="parquet").to_table()
    got2 = Counter(zip(t2.column("symbol").to_pylist(), t2.column("interval").to_pylist()))
    check(got2 == expected, f"pyarrow (no partitioning): symbol/interval {dict(got2)}")
    check(got == expected, f"pyarrow: symbol/interval {dict(got)} != paths {dict(expected)}")

    # pandas: the directory (hive via pyarrow) and one single file.
    df = pd.read_parquet(root)
    check(len(df) == total, f"pandas: {len(df)} rows")
    for c in ("open_time", "close_time"):
        dt = df[c].dtype
        check(isinstance(dt, pd.DatetimeTZDtype) and str(dt.tz) == "UTC", f"pandas: {c} is {dt}")
    for c in VALUE_COLUMNS + ["trades"]:
        check(
            pd.api.types.is_numeric_dtype(df[c].dtype) or prices == "decimal",
            f"pandas: {c} is {df[c].dtype}",
        )
    got = Counter(zip(df["symbol"].astype(str), df["interval"].astype(str)))
    check(got == expected, f"pandas: symbol/interval {dict(got)}")
    one = sorted(glob.glob(os.path.join(root, "**", "*.parquet"), recursive=True))[0]
    single = pd.read_parquet(one)
    parts = dict(p.split("=", 1) for p in os.path.relpath(one, root).split(os.sep)[:-1])
    check(
        set(single["symbol"]) == {parts["symbol"]} and set(single["interval"]) == {parts["interval"]},
        f"pandas single file {one}: symbol/interval {set(single['symbol'])} {set(single['interval'])}",
    )
    check(str(single["open_time"].dtype.tz) == "UTC", "pandas single file: open_time not UTC")

    # polars with hive partitioning. Polars needs the same hive keys in every file of one scan,
    # and intervals partition differently (year=, month=, date= or none), so scan one interval
    # at a time, as the README tells users to.
    intervals = sorted({i for _, i in expected})
    pf = pl.concat(
        [
            pl.scan_parquet(
                os.path.join(root, "market=*", "symbol=*", f"interval={i}", "**", "*.parquet"),
                hive_partitioning=True,
            )
            .select([*FILE_COLUMNS, "market"])
            .collect()
            for i in intervals
        ]
    )
    # Partition values: year an integer, month a string, date a date (or a string); values intact.
    for i in intervals:
        lf = pl.scan_parquet(
            os.path.join(root, "market=*", "symbol=*", f"interval={i}", "**", "*.parquet"),
            hive_partitioning=True,
        )
        sch = lf.collect_schema()
        if "year" in sch:
            check(sch["year"].is_integer(), f"polars: year is {sch['year']}")
        if "month" in sch:
            check(sch["month"] == pl.String, f"polars: month is {sch['month']}")
            months = set(lf.select("month").collect()["month"].to_list())
            check(all(len(m) == 7 and m[4] == "-" for m in months), f"polars: months {months}")
        if "date" in sch:
            check(sch["date"] in (pl.Date, pl.String), f"polars: date is {sch['date']}")
            dates = {str(d) for d in lf.select("date").collect()["date"].to_list()}
            check(all(len(d) == 10 for d in dates), f"polars: dates {dates}")
    check(pf.height == total, f"polars: {pf.height} rows")
    for c in FILE_COLUMNS + ["market"]:
        check(c in pf.columns, f"polars: column {c} missing: {pf.columns}")
    for c in ("open_time", "close_time"):
        dt = pf.schema[c]
        check(isinstance(dt, pl.Datetime) and dt.time_zone == "UTC", f"polars: {c} is {dt}")
        if unit:
            check(dt.time_unit == unit, f"polars: {c} unit {dt.time_unit}")
    for c in VALUE_COLUMNS:
        dt = pf.schema[c]
        if prices == "decimal":
            check(isinstance(dt, pl.Decimal) and dt.scale == 8, f"polars: {c} is {dt}")
        else:
            check(dt == pl.Float64, f"polars: {c} is {dt}")
    check(pf.schema["trades"] == pl.Int64, f"polars: trades is {pf.schema['trades']}")
    for c in ("symbol", "interval", "market"):
        check(pf.schema[c] in (pl.String, pl.Categorical), f"polars: {c} is {pf.schema[c]}")
    got = Counter(zip(pf["symbol"].to_list(), pf["interval"].to_list()))
    check(got == expected, f"polars: symbol/interval {dict(got)}")

    # DuckDB with hive partitioning: like polars, one interval per scan (DuckDB refuses files
    # with different hive keys in one read_parquet).
    con = duckdb.connect()
    total_duck = 0
    got = Counter()
    for i in intervals:
        pattern = os.path.join(root, "market=*", "symbol=*", f"interval={i}", "**", "*.parquet")
        src = f"read_parquet('{pattern}', hive_partitioning = true)"
        total_duck += con.execute(f"select count(*) from {src}").fetchone()[0]
        types = {r[0]: r[1] for r in con.execute(f"describe select * from {src}").fetchall()}
        for c in FILE_COLUMNS + ["market"]:
            check(c in types, f"duckdb: column {c} missing: {types}")
        for c in ("open_time", "close_time"):
            check(types[c] == "TIMESTAMP WITH TIME ZONE", f"duckdb: {c} is {types[c]}")
        for c in VALUE_COLUMNS:
            want = "DECIMAL(38,8)" if prices == "decimal" else "DOUBLE"
            check(prices is None or types[c] == want, f"duckdb: {c} is {types[c]}, expected {want}")
        check(types["trades"] == "BIGINT", f"duckdb: trades is {types['trades']}")
        check(types["symbol"] == "VARCHAR" and types["interval"] == "VARCHAR", f"duckdb: {types}")
        if "year" in types:
            check(types["year"] == "BIGINT", f"duckdb: year is {types['year']}")
        if "month" in types:
            check(types["month"] == "VARCHAR", f"duckdb: month is {types['month']}")
        if "date" in types:
            check(types["date"] in ("DATE", "VARCHAR"), f"duckdb: date is {types['date']}")
        for s, iv, k in con.execute(f"select symbol, interval, count(*) from {src} group by all").fetchall():
            got[(s, iv)] += k
    check(total_duck == total, f"duckdb: {total_duck} rows")
    check(got == expected, f"duckdb: symbol/interval {dict(got)}")
    src = f"read_parquet('{os.path.join(root, '**', '*.parquet')}', hive_partitioning = false)"
    # Time values agree between readers (first row by open_time).
    first_duck = con.execute(f"select epoch_ms(min(open_time)) from {src}").fetchone()[0]
    first_pa = min(t.column("open_time").cast(pa.timestamp("ms", tz="UTC")).cast(pa.int64()).to_pylist())
    check(first_duck == first_pa, f"duckdb min open_time {first_duck} != pyarrow {first_pa}")

    print(f"interop ok: {total} rows, pyarrow {pa.__version__}, pandas {pd.__version__}, polars {pl.__version__}, duckdb {duckdb.__version__}")


if __name__ == "__main__":
    main()
