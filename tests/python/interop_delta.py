"""Delta Lake tables written by kline-etl (`output.format: delta`) are read exactly by
delta-rs (the `deltalake` package) and polars, at the latest version and by time travel.

Usage: interop_delta.py SPEC.json

SPEC.json: {"klines": {"dir": ".../klines",
                       "versions": {"0": [series...], "1": [series...]}},
            "tables": [{"dir": ".../funding_rate", "hive": ".../funding_rate", "key": [...]}],
            "readme": "README.md" (optional)}
where each series is {"market", "symbol", "interval", "rows": [the simulator's JSON rows]}.
- klines: at every listed version, `DeltaTable(dir, version=v).to_pyarrow_table()`,
  `polars.read_delta(dir, version=v)` and (for the latest) the plain `polars.read_delta(dir)` and
  `DeltaTable(dir).to_pandas()` return exactly the served rows (values compared as decimals of
  the served strings), with `open_time` a UTC timestamp and `market`, `symbol`, `year` the
  partition columns; the table's history has one version per listed version.
- tables (a kline family, snapshot datasets, the funding-rate history): the Delta table read by
  delta-rs and polars equals the `parquet`-format dataset of the same run read by
  `pyarrow.dataset(hive)`, sorted by `key`.
Prints one line per reader and table ("works"), exits non-zero on the first disagreement.
"""

import json
import os
import sys
from datetime import datetime, timezone
from decimal import Decimal

import polars as pl

# The README's sections, its reader lines and row counts, as interop.py reads them.
from interop import count_rows, reader_lines, readme_blocks
import pyarrow as pa
import pyarrow.dataset as ds
from deltalake import DeltaTable

VALUES = ["open", "high", "low", "close", "volume", "quote_volume", "taker_buy_base_volume", "taker_buy_quote_volume"]
SERVED_VALUE_INDEX = [1, 2, 3, 4, 5, 7, 9, 10]


def fail(msg):
    print(f"FAIL: {msg}")
    sys.exit(1)


def us(t):
    """A timestamp (datetime or integer microseconds) as integer microseconds since the epoch."""
    if isinstance(t, datetime):
        if t.tzinfo is None:
            fail(f"timestamp {t} has no time zone")
        return int((t - datetime(1970, 1, 1, tzinfo=timezone.utc)).total_seconds() * 1_000_000)
    return int(t)


def dec(v):
    return Decimal(str(v)).normalize()


def served(series):
    out = []
    for s in series:
        for r in s["rows"]:
            year = datetime.fromtimestamp(r[0] / 1000, tz=timezone.utc).year
            out.append((s["market"], s["symbol"], s["interval"], year, r[0] * 1000, r[6] * 1000,
                        *[dec(r[i]) for i in SERVED_VALUE_INDEX], int(r[8])))
    return sorted(out)


def rows_of(records):
    out = []
    for r in records:
        year = r["year"] if "year" in r else datetime.fromtimestamp(us(r["open_time"]) / 1e6, tz=timezone.utc).year
        out.append((r["market"], r["symbol"], r["interval"], int(year), us(r["open_time"]),
                    us(r["close_time"]), *[dec(r[c]) for c in VALUES], int(r["trades"])))
    return sorted(out)


def compare(name, got, want):
    if got != want:
        missing = sorted(set(want) - set(got))[:3]
        extra = sorted(set(got) - set(want))[:3]
        fail(f"{name}: {len(got)} rows, expected {len(want)}; missing {missing}, unexpected {extra}")
    print(f"{name}: works ({len(got)} rows)")


def check_klines(spec):
    d = spec["dir"]
    versions = sorted(int(v) for v in spec["versions"])
    latest = DeltaTable(d)
    if latest.version() != versions[-1]:
        fail(f"klines: latest version {latest.version()}, expected {versions[-1]}")
    history = latest.history()
    if len(history) != len(versions):
        fail(f"klines: {len(history)} versions in the history, expected {len(versions)}: {history}")
    if latest.metadata().partition_columns != ["market", "symbol", "year"]:
        fail(f"klines: partition columns {latest.metadata().partition_columns}")
    for v in versions:
        want = served(spec["versions"][str(v)])
        t = DeltaTable(d, version=v).to_pyarrow_table()
        if t.schema.field("open_time").type != pa.timestamp("us", tz="UTC"):
            fail(f"klines v{v}: open_time is {t.schema.field('open_time').type}")
        compare(f"deltalake DeltaTable(version={v}).to_pyarrow_table klines", rows_of(t.to_pylist()), want)
        df = pl.read_delta(d, version=v)
        if str(df.schema["open_time"]) != "Datetime(time_unit='us', time_zone='UTC')":
            fail(f"klines v{v}: polars open_time is {df.schema['open_time']}")
        compare(f"polars.read_delta(version={v}) klines", rows_of(df.to_dicts()), want)
    want = served(spec["versions"][str(versions[-1])])
    compare("polars.read_delta klines", rows_of(pl.read_delta(d).to_dicts()), want)
    pdf = DeltaTable(d).to_pandas()
    compare("deltalake to_pandas klines", rows_of(pdf.to_dict("records")), want)
    # kline_etl.read (the Python module of the wheel, from the source tree) reads only the
    # latest version's files.
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "python"))
    import kline_etl

    compare("kline_etl.read klines", rows_of(kline_etl.read(d).to_dicts()), want)
    got = kline_etl.read(d, symbols="BTCUSDT", intervals="1h", backend="pandas")
    compare("kline_etl.read(pandas, filtered) klines", rows_of(got.to_dict("records")),
            [r for r in want if r[1] == "BTCUSDT" and r[2] == "1h"])
    # Partition pruning through the log's partition values.
    one = DeltaTable(d).to_pyarrow_table(filters=[("symbol", "=", "BTCUSDT")])
    if set(one.column("symbol").to_pylist()) != {"BTCUSDT"}:
        fail("klines: the partition filter on symbol did not prune")
    print("deltalake partition filter klines: works")


def norm(v):
    if isinstance(v, datetime):
        return us(v)
    if isinstance(v, (float, Decimal)):
        return dec(v)
    if hasattr(v, "isoformat"):
        return v.isoformat()
    return v


def table_rows(records, columns):
    return sorted(tuple(norm(r[c]) for c in columns) for r in records)


def check_table(spec):
    d, hive, key = spec["dir"], spec["hive"], spec["key"]
    want_t = ds.dataset(hive, partitioning="hive").to_table()
    columns = sorted(c for c in want_t.column_names)
    want = table_rows(want_t.to_pylist(), columns)
    if not want:
        fail(f"{hive}: the parquet twin is empty")
    t = DeltaTable(d)
    got_cols = sorted(t.schema().to_arrow().names) if hasattr(t.schema(), "to_arrow") else None
    got = table_rows(t.to_pyarrow_table().to_pylist(), columns)
    compare(f"deltalake {d.split('/')[-1]}", got, want)
    got = table_rows(pl.read_delta(d).to_dicts(), columns)
    compare(f"polars.read_delta {d.split('/')[-1]}", got, want)
    if got_cols is not None and got_cols != columns:
        fail(f"{d}: columns {got_cols}, the parquet twin has {columns}")
    _ = key


def run_readme(readme, d):
    """The README's reader lines of the Delta section, `DIR` pointed at the table the
    section's pipeline wrote (one run: version 0 is the latest)."""
    text = open(readme).read()
    blocks = [b for lang, b in readme_blocks(text, "## Delta Lake tables: `output.format: delta`") if lang == "python"]
    if len(blocks) != 1:  # (readme_blocks stops at the next heading of the same level)
        fail(f"README Delta section: {len(blocks)} python blocks")
    want = DeltaTable(d).to_pyarrow_table().num_rows
    if want == 0:
        fail("README Delta pipeline wrote no rows")
    ran = 0
    for code, value in reader_lines(blocks[0], {}, d):
        n = count_rows(value)
        if n != want:
            fail(f"README `{code}`: {n} rows, expected {want}")
        ran += 1
    print(f"README Delta snippets: works ({ran} run)")


def main():
    spec = json.load(open(sys.argv[1]))
    check_klines(spec["klines"])
    for t in spec["tables"]:
        check_table(t)
    if spec.get("readme"):
        run_readme(spec["readme"], spec["readme_table"])


if __name__ == "__main__":
    main()
