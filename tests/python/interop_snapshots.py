"""Check that pyarrow, pandas, polars and DuckDB read the snapshot datasets and kline families.

Usage: interop_snapshots.py ROOT PRICES TIME_UNIT

ROOT is an output root holding `ticker_price/`, `depth/`, and the kline family roots
`mark_price/klines/` and `continuous/` as kline-etl writes them. PRICES is `float64` or `decimal`, TIME_UNIT `ms`
or `us`. Row counts are taken from the files' footers and every reader must see the same
rows, the documented columns and types, and the hive keys. Exits non-zero with a message on
the first disagreement.
"""

import glob
import os
import sys

import duckdb
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq


def fail(msg):
    print(f"interop_snapshots: {msg}", file=sys.stderr)
    sys.exit(1)


def check(cond, msg):
    if not cond:
        fail(msg)


def footer_rows(root):
    files = glob.glob(os.path.join(root, "**", "*.parquet"), recursive=True)
    files = [f for f in files if not os.path.basename(f).startswith(("_", "."))]
    check(files, f"no parquet files under {root}")
    return sum(pq.ParquetFile(f).metadata.num_rows for f in files)


def value_type_ok(ty, prices):
    return ty == (pa.decimal128(38, 8) if prices == "decimal" else pa.float64())


def check_dataset(root, prices, unit, time_col, value_cols, file_cols, hive_keys, pattern):
    total = footer_rows(root)
    name = os.path.basename(root.rstrip(os.sep))

    # pyarrow.dataset with its default hive call (plain string keys: no column is in both a
    # path and a file, so nothing conflicts).
    t = ds.dataset(root, format="parquet", partitioning="hive").to_table()
    check(t.num_rows == total, f"{name} pyarrow: {t.num_rows} rows, expected {total}")
    for c in file_cols + hive_keys:
        check(c in t.column_names, f"{name} pyarrow: column {c} missing: {t.column_names}")
    ty = t.schema.field(time_col).type
    check(pa.types.is_timestamp(ty) and ty.tz == "UTC" and ty.unit == unit, f"{name} pyarrow: {time_col} is {ty}")
    for c in value_cols:
        check(value_type_ok(t.schema.field(c).type, prices), f"{name} pyarrow: {c} is {t.schema.field(c).type}")

    # pyarrow.parquet.read_table and pandas: the directory.
    t2 = pq.read_table(root)
    check(t2.num_rows == total, f"{name} read_table: {t2.num_rows} rows, expected {total}")
    df = pd.read_parquet(root)
    check(len(df) == total, f"{name} pandas: {len(df)} rows, expected {total}")
    dt = df[time_col].dtype
    check(isinstance(dt, pd.DatetimeTZDtype) and str(dt.tz) == "UTC", f"{name} pandas: {time_col} is {dt}")
    for c in file_cols + hive_keys:
        check(c in df.columns, f"{name} pandas: column {c} missing")

    # polars with hive partitioning.
    pf = pl.scan_parquet(os.path.join(root, pattern), hive_partitioning=True).collect()
    check(pf.height == total, f"{name} polars: {pf.height} rows, expected {total}")
    for c in file_cols + hive_keys:
        check(c in pf.columns, f"{name} polars: column {c} missing: {pf.columns}")
    dt = pf.schema[time_col]
    check(isinstance(dt, pl.Datetime) and dt.time_zone == "UTC" and dt.time_unit == unit, f"{name} polars: {time_col} is {dt}")
    for c in value_cols:
        dt = pf.schema[c]
        ok = (isinstance(dt, pl.Decimal) and dt.scale == 8) if prices == "decimal" else dt == pl.Float64
        check(ok, f"{name} polars: {c} is {dt}")

    # DuckDB with hive partitioning.
    con = duckdb.connect()
    src = f"read_parquet('{os.path.join(root, pattern)}', hive_partitioning = true)"
    n = con.execute(f"select count(*) from {src}").fetchone()[0]
    check(n == total, f"{name} duckdb: {n} rows, expected {total}")
    types = {r[0]: r[1] for r in con.execute(f"describe select * from {src}").fetchall()}
    for c in file_cols + hive_keys:
        check(c in types, f"{name} duckdb: column {c} missing: {types}")
    check(types[time_col] == "TIMESTAMP WITH TIME ZONE", f"{name} duckdb: {time_col} is {types[time_col]}")
    want = "DECIMAL(38,8)" if prices == "decimal" else "DOUBLE"
    for c in value_cols:
        check(types[c] == want, f"{name} duckdb: {c} is {types[c]}, expected {want}")
    # Time values agree between readers.
    first_duck = con.execute(f"select epoch_ms(min({time_col})) from {src}").fetchone()[0]
    first_pa = min(t.column(time_col).cast(pa.timestamp("ms", tz="UTC")).cast(pa.int64()).to_pylist())
    check(first_duck == first_pa, f"{name}: duckdb min {time_col} {first_duck} != pyarrow {first_pa}")
    return total, con, src


def run_readme(root):
    """The README's "Reading them" block, paths pointed at `root`: every expression returns
    rows."""
    import ast

    readme = os.path.join(os.path.dirname(__file__), "..", "..", "README.md")
    with open(readme) as f:
        text = f.read()
    start = text.index("### Reading them")
    block = text[text.index("```python\n", start) + len("```python\n"):]
    block = block[: block.index("```")]
    block = block.replace("data/snapshots", root).replace("data/futures", root)
    env = {}
    n = 0
    for node in ast.parse(block).body:
        code = ast.get_source_segment(block, node)
        if isinstance(node, ast.Expr):
            x = eval(code, env)
            if hasattr(x, "collect") and hasattr(x, "collect_schema"):
                x = x.collect()
            rows = len(x.fetchall()) if hasattr(x, "fetchall") else len(x)
            check(rows > 0, f"README `{code}`: no rows")
            n += 1
        else:
            exec(code, env)
    check(n >= 4, f"README: {n} reader lines")


def main():
    if len(sys.argv) != 4:
        fail(__doc__)
    root, prices, unit = sys.argv[1], sys.argv[2], sys.argv[3]
    run_readme(root)

    n_ticker, _, _ = check_dataset(
        os.path.join(root, "ticker_price"), prices, unit, "snapshot_time", ["price"],
        ["snapshot_time", "symbol", "price"], ["market", "date"],
        os.path.join("**", "*.parquet"),
    )
    n_depth, con, src = check_dataset(
        os.path.join(root, "depth"), prices, unit, "snapshot_time", ["price", "quantity"],
        ["snapshot_time", "symbol", "last_update_id", "side", "level", "price", "quantity"],
        ["market", "date"],
        os.path.join("**", "*.parquet"),
    )
    # Books are plausible in SQL too: best bid below best ask per snapshot.
    bad = con.execute(
        f"""select count(*) from (
              select symbol, snapshot_time,
                     max(price) filter (where side = 'bid') as bid,
                     min(price) filter (where side = 'ask') as ask
              from {src} group by all) where bid >= ask"""
    ).fetchone()[0]
    check(bad == 0, f"depth: {bad} crossed books")

    kline_cols = ["open_time", "close_time", "open", "high", "low", "close", "symbol", "interval"]
    n_mark, _, _ = check_dataset(
        os.path.join(root, "mark_price", "klines"), prices, unit, "open_time",
        ["open", "high", "low", "close"], kline_cols, ["market", "year"],
        os.path.join("**", "*.parquet"),
    )
    t = pd.read_parquet(os.path.join(root, "mark_price", "klines"))
    for c in ("volume", "quote_volume", "trades", "taker_buy_base_volume"):
        check(c not in t.columns, f"mark_price/klines: unexpected column {c}")
    n_cont, _, _ = check_dataset(
        os.path.join(root, "continuous"), prices, unit, "open_time",
        ["open", "close", "volume", "quote_volume"], kline_cols + ["volume", "trades"],
        ["contract_type", "market", "year"],
        os.path.join("contract_type=*", "klines", "**", "*.parquet"),
    )
    print(
        f"interop_snapshots ok: ticker {n_ticker}, depth {n_depth}, mark {n_mark}, continuous {n_cont} rows; "
        f"pyarrow {pa.__version__}, pandas {pd.__version__}, polars {pl.__version__}, duckdb {duckdb.__version__}"
    )


if __name__ == "__main__":
    main()
