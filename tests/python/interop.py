"""Every reader reads a kline-etl dataset directory whole, with its default call, and gets
exactly the rows the simulator served.

Usage: interop.py SPEC.json

SPEC.json: {"datasets": [{"dir": ".../klines", "prices": "float64"|"decimal",
                          "unit": "ms"|"us", "expected": [series...]}],
            "tables": [{"dir": ".../funding_rate", "keys": ["market", "symbol", "year"]}],
            "readme": "README.md", "work": "a scratch directory"}
where each series is {"market", "symbol", "interval", "rows": [the simulator's JSON rows]}.
Each of "tables" (the other datasets: snapshots, funding rates, kline families) must be read
whole by every reader's default call with the rows its files' footers count and its hive keys.
With "readme", the README's reader snippets ("Reading the output" and "Reading the dataset
from a warehouse": the Python lines, the DuckDB query, the Spark line and the Athena/Hive DDL,
run in Spark's Hive catalog) are run on the first dataset, its paths substituted, and must
return its rows.

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


# What each reader returns for the hive keys and `interval` (the README's table; checked).
_DICT = "dictionary<values={}, indices=int32, ordered=0>"
KEY_TYPES = {
    "pyarrow.parquet.read_table": {"market": _DICT.format("string"), "symbol": _DICT.format("string"),
                                   "year": _DICT.format("int32"), "interval": "string"},
    "pyarrow.dataset(hive)": {"market": "string", "symbol": "string", "year": "int32", "interval": "string"},
    "pandas.read_parquet": {"market": "category", "symbol": "category", "year": "category", "interval": "str"},
    "duckdb read_parquet": {"market": "VARCHAR", "symbol": "VARCHAR", "year": "BIGINT", "interval": "VARCHAR"},
    "polars scan_parquet": {"market": "String", "symbol": "String", "year": "Int64", "interval": "String"},
    "spark.read.parquet": {"market": "string", "symbol": "string", "year": "int", "interval": "string"},
}


def check_key_types(name, types):
    got = {k: str(types[k]) for k in KEY_TYPES[name]}
    check(got == KEY_TYPES[name], f"{name}: key types {got}, expected {KEY_TYPES[name]}")


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
    if len(got) != len(want):
        from collections import Counter

        g, w = Counter(r[:3] for r in got), Counter(r[:3] for r in want)
        diff = {k: (g[k], w[k]) for k in sorted(set(g) | set(w)) if g[k] != w[k]}
        gs, ws = {r[:3] + (r[4],) for r in got}, {r[:3] + (r[4],) for r in want}
        fail(f"{name}: {len(got)} rows, expected {len(want)}; series (got, expected): {diff}; "
             f"open times only read: {sorted(gs - ws)[:5]}, only served: {sorted(ws - gs)[:5]}")
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
    check_key_types(name, {f.name: f.type for f in t.schema})
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
    return arrow_rows("pyarrow.dataset(hive)", t, spec)


def read_pandas(d, spec):
    df = pd.read_parquet(d)
    check_columns("pandas", df.columns)
    check_key_types("pandas.read_parquet", {c: df[c].dtype for c in df.columns})
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
    check_key_types("duckdb read_parquet", types)
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
    check_key_types("polars scan_parquet", dict(sch.items()))
    for c in ("open_time", "close_time"):
        check(isinstance(sch[c], pl.Datetime) and sch[c].time_zone == "UTC", f"polars: {c} is {sch[c]}")
    df = lf.with_columns(pl.col("open_time").dt.epoch("us"), pl.col("close_time").dt.epoch("us")).collect()
    return df.to_dicts()


def spark_session(work):
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        if os.environ.get("CI"):
            fail("pyspark is not installed (scripts/test.sh installs it)")
        return None
    # One session for every dataset and the README's DDL (a Hive catalog in `work`).
    work = work or os.getcwd()
    spark = (
        SparkSession.builder.master("local[1]")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.shuffle.partitions", "1")
        .config("spark.sql.warehouse.dir", os.path.join(work, "spark-warehouse"))
        .config("spark.driver.extraJavaOptions", f"-Dderby.system.home={os.path.join(work, 'derby')}")
        .enableHiveSupport()
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def readme_blocks(text, heading):
    """The fenced code blocks (language, body) of the README section under `heading`."""
    lines = text.splitlines()
    start = next((i for i, l in enumerate(lines) if l.strip() == heading), None)
    check(start is not None, f"README: no section {heading!r}")
    level = heading.split(" ")[0]
    out, block, lang = [], None, None
    for l in lines[start + 1:]:
        if block is None and l.startswith("#") and l.split(" ")[0] in {"#" * n for n in range(1, len(level) + 1)}:
            break
        if l.startswith("```"):
            if block is None:
                block, lang = [], l[3:].strip()
            else:
                out.append((lang, "\n".join(block)))
                block = None
        elif block is not None:
            block.append(l)
    return out


def count_rows(x):
    """Rows of whatever a reader call returned."""
    if type(x).__module__.startswith("duckdb"):
        return len(x.fetchall())  # DuckDB relation
    if hasattr(x, "num_rows"):
        return x.num_rows  # pyarrow
    if hasattr(x, "to_table"):
        return x.to_table().num_rows  # pyarrow.dataset
    if hasattr(x, "collect") and hasattr(x, "collect_schema"):
        return x.collect().height  # polars LazyFrame
    if hasattr(x, "height"):
        return x.height  # polars
    if hasattr(x, "count") and hasattr(x, "rdd"):
        return x.count()  # Spark
    return len(x)  # pandas


def check_trino(body):
    """The Trino statement cannot run here (no Trino): it must declare the same table, the
    partition keys last and in the layout's order."""
    import re

    cols = re.search(r"CREATE TABLE [\w.]+ \((.*?)\)\s*WITH", body, re.S)
    check(cols, f"README Trino DDL: no column list in {body!r}")
    names = [c.strip().split()[0].strip('"') for c in cols.group(1).split(",") if c.strip() and not c.strip().startswith("--")]
    check(names == DATA + KEYS, f"README Trino DDL columns {names}, expected {DATA + KEYS}")
    check("partitioned_by = ARRAY['market', 'symbol', 'year']" in body, "README Trino DDL partitioned_by")
    check("sync_partition_metadata" in body, "README Trino DDL: partitions are registered")


def reader_lines(body, env, d):
    """The README's reader lines of a code block, run: `(code, value)` for each, `DIR`
    pointed at `d`; statements before the last `;` are executed first, and a `spark.` line
    is skipped when `env` has no Spark session."""
    for line in body.splitlines():
        code = line.split("  #")[0].strip()
        if not code:
            continue
        if code.startswith("DIR ="):
            env["DIR"] = d
            continue
        *stmts, expr = [c.strip() for c in code.split(";") if c.strip()]
        for st in stmts:
            exec(st, env)
        if expr.startswith("spark.") and env.get("spark") is None:
            continue
        yield code, eval(expr, env)


def run_readme(spark, readme, d, want):
    """Run the README's reader snippets on the dataset directory `d` (`want` rows)."""
    with open(readme) as f:
        text = f.read()
    ran = 0
    # "Reading the output": one reader per line, `DIR` pointed at the dataset.
    (lang, body), = [b for b in readme_blocks(text, "## Reading the output") if b[0] == "python"][:1]
    for code, value in reader_lines(body, {"spark": spark}, d):
        n = count_rows(value)
        check(n == want, f"README `{code}`: {n} rows, expected {want}")
        ran += 1
    # "Reading the dataset from a warehouse": DuckDB, Spark and the Hive/Athena DDL.
    s3 = "s3://my-bucket/warehouse/binance/klines"
    for lang, body in readme_blocks(text, "### Reading the dataset from a warehouse"):
        if lang == "sql" and "read_parquet" in body:
            rows = duckdb.sql(body.replace(s3, d)).fetchall()
            check(rows and all(r[0] for r in rows), f"README DuckDB query: {rows}")
            ran += 1
        elif lang == "python" and spark is not None:
            env = {"spark": spark}
            exec(body.replace("s3a://my-bucket/warehouse/binance/klines", d), env)
            check(env["df"].count() == want, "README Spark line")
            ran += 1
        elif lang == "sql" and "CREATE EXTERNAL TABLE" in body and spark is not None:
            sql = "\n".join(l.split("--")[0] for l in body.splitlines())
            for st in [x.strip() for x in sql.split(";") if x.strip()]:
                spark.sql(st.replace(s3 + "/", "file://" + d + "/"))
            n = spark.sql("select count(*) from klines").collect()[0][0]
            check(n == want, f"README Hive DDL: {n} rows, expected {want}")
            types = dict(spark.table("klines").dtypes)
            check(types["interval"] == "string" and types["year"] == "int", f"README Hive DDL types {types}")
            spark.sql("drop table klines")
            ran += 1
        elif lang == "sql" and "CREATE TABLE" in body:
            check_trino(body)
    print(f"README snippets: works ({ran} run)")


def read_spark(spark, d, spec):
    from pyspark.sql import functions as F

    df = spark.read.parquet(d)
    check_columns("spark", df.columns)
    types = dict(df.dtypes)
    check_key_types("spark.read.parquet", types)
    for c in ("open_time", "close_time"):
        check(types[c] == "timestamp", f"spark: {c} is {types[c]}")
    out = df.select(
        "market", "symbol", "interval", "year",
        F.unix_micros("open_time").alias("open_time"), F.unix_micros("close_time").alias("close_time"),
        *VALUES, "trades",
    )
    return [r.asDict() for r in out.collect()], types


def read_table_everywhere(spark, t):
    """Every reader's default call on another dataset directory: all its rows, its keys."""
    d, keys = t["dir"], t["keys"]
    files = [os.path.join(r, f) for r, _, fs in os.walk(d) for f in fs if f.endswith(".parquet")]
    files = [f for f in files if not any(p.startswith(("_", ".")) for p in os.path.relpath(f, d).split(os.sep))]
    check(files, f"no data files under {d}")
    total = sum(pq.ParquetFile(f).metadata.num_rows for f in files)
    glob = f"{d}/**/*.parquet"
    got = {
        "pyarrow.parquet.read_table": lambda: pq.read_table(d),
        "pandas.read_parquet": lambda: pd.read_parquet(d),
        "pyarrow.dataset(hive)": lambda: ds.dataset(d, partitioning="hive").to_table(),
        "duckdb read_parquet": lambda: duckdb.sql(f"select * from read_parquet('{glob}', hive_partitioning = true)"),
        "polars scan_parquet": lambda: pl.scan_parquet(glob, hive_partitioning=True).collect(),
    }
    if spark is not None:
        got["spark.read.parquet"] = lambda: spark.read.parquet(d)
    for name, read in got.items():
        x = read()
        cols = list(x.columns) if not hasattr(x, "column_names") else x.column_names
        check(all(k in cols for k in keys), f"{name} on {d}: keys {keys} not in {cols}")
        n = count_rows(x)
        check(n == total, f"{name} on {d}: {n} rows, the files hold {total}")
        print(f"{name}: works ({total} rows, {os.path.relpath(d, os.path.dirname(os.path.dirname(d)))})")


def main():
    if len(sys.argv) != 2:
        fail(__doc__)
    with open(sys.argv[1]) as f:
        spec = json.load(f)
    spark = spark_session(spec.get("work"))
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
    for t in spec.get("tables", []):
        read_table_everywhere(spark, t)
    if spec.get("readme"):
        first = spec["datasets"][0]
        run_readme(spark, spec["readme"], first["dir"], len(expected_rows(first)))
    print(f"interop ok: pyarrow {pa.__version__}, pandas {pd.__version__}, polars {pl.__version__}, duckdb {duckdb.__version__}")


if __name__ == "__main__":
    main()
