"""Check that every reader's default call reads the funding_rate dataset as one table.

Usage: interop_funding.py ROOT PRICES TIME_UNIT ROWS

ROOT is `<output.path>/funding_rate`. PRICES is `float64` or `decimal`, TIME_UNIT `ms` or
`us`, ROWS the number of records written. Exits non-zero with a message on the first
disagreement.
"""

import sys

import duckdb
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq


def check(cond, msg):
    if not cond:
        print(f"interop_funding: {msg}", file=sys.stderr)
        sys.exit(1)


def main(root, prices, unit, rows):
    value = pa.decimal128(38, 8) if prices == "decimal" else pa.float64()
    t = ds.dataset(root, format="parquet", partitioning="hive").to_table()
    check(t.num_rows == rows, f"pyarrow: {t.num_rows} rows, expected {rows}")
    for c in ["funding_time", "symbol", "funding_rate", "mark_price", "market", "year"]:
        check(c in t.column_names, f"pyarrow: column {c} missing: {t.column_names}")
    ty = t.schema.field("funding_time").type
    check(pa.types.is_timestamp(ty) and ty.tz == "UTC" and ty.unit == unit, f"funding_time is {ty}")
    for c in ["funding_rate", "mark_price"]:
        check(t.schema.field(c).type == value, f"{c} is {t.schema.field(c).type}")
    check(t.column("funding_rate").null_count == 0, "null funding rates")
    check(t.schema.field("mark_price").nullable, "mark_price is not nullable")

    df = pd.read_parquet(root)
    check(len(df) == rows, f"pandas: {len(df)} rows, expected {rows}")
    check(str(df["funding_time"].dt.tz) == "UTC", f"pandas: funding_time tz {df['funding_time'].dt.tz}")
    for sym, g in df.groupby("symbol", observed=True):
        times = g["funding_time"].sort_values()
        check(times.is_unique, f"pandas: duplicate funding times for {sym}")
        gaps = times.diff().dropna().dt.total_seconds() / 3600
        check(((gaps > 7.99) & (gaps < 8.01)).all(), f"pandas: {sym} records not 8 h apart")
    rate = df["funding_rate"].astype(float)
    check(rate.abs().max() < 0.01 and (rate < 0).any(), "pandas: implausible funding rates")
    t2 = pq.read_table(root)
    check(t2.num_rows == rows, f"read_table: {t2.num_rows} rows, expected {rows}")
    check(sorted(t2.column_names) == sorted(t.column_names), f"read_table: {t2.column_names}")
    glob = f"{root}/**/*.parquet"
    con = duckdb.connect()
    src = f"read_parquet('{glob}', hive_partitioning = true)"
    n, syms = con.execute(f"select count(*), count(distinct symbol) from {src}").fetchone()
    check(n == rows, f"duckdb: {n} rows, expected {rows}")
    types = {r[0]: r[1] for r in con.execute(f"describe select * from {src}").fetchall()}
    check(types["funding_time"] == "TIMESTAMP WITH TIME ZONE", f"duckdb: {types}")
    pf = pl.scan_parquet(glob, hive_partitioning=True).collect()
    check(pf.height == rows, f"polars: {pf.height} rows, expected {rows}")
    check(pf["symbol"].n_unique() == syms, "polars and duckdb disagree on the symbols")
    print(f"interop_funding: {rows} rows ok ({prices}, {unit})")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]))
