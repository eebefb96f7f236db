"""The wheel test's Python half (scripts/wheel-test.sh): runs in the fresh venv the wheel was
installed into, against the demo dataset the venv's `kline-etl` just wrote.

Usage: check_wheel.py DEMO_OUTPUT_DIR VENV_DIR

Checks that the command is the wheel's, that `kline_etl.read` returns the exact rows of the
files (polars and pandas, with and without filters), that filters prune directories before
any file is opened, that `kline_etl.run` runs a pipeline given as a mapping, and that a failing
run raises `KlineEtlError` with the exit code and the message. Exits non-zero on the first
failure.
"""

import os
import subprocess
import sys
import tempfile
from datetime import date, datetime, timezone
from pathlib import Path

import pandas as pd
import polars as pl
import pyarrow.parquet as pq

import kline_etl
from kline_etl import _layout

SYMBOLS = ["BNBUSDT", "BTCUSDT", "ETHUSDT"]
HOURS = (31 + 29) * 24  # 2024-01-01 .. 2024-03-01
DAYS = 31 + 29
FILE_COLUMNS = [
    "open_time", "close_time", "open", "high", "low", "close", "volume", "quote_volume",
    "taker_buy_base_volume", "taker_buy_quote_volume", "trades", "interval",
]


def check(cond, msg):
    if not cond:
        print(f"check_wheel: {msg}", file=sys.stderr)
        sys.exit(1)


def direct(root: Path) -> pl.DataFrame:
    """Every row of every data file, read one file at a time with pyarrow (no kline_etl)."""
    frames = []
    for f in sorted(root.glob("klines/**/*.parquet")):
        if any(p.startswith("_") for p in f.parts):
            continue
        key = dict(p.split("=", 1) for p in f.parts if p.startswith(("market=", "symbol=")))
        t = pq.read_table(f)
        frames.append(pl.from_arrow(t).with_columns(
            pl.lit(key["market"]).alias("market"), pl.lit(key["symbol"]).alias("symbol")))
    keys = ["market", "symbol", "interval", "open_time"]
    frame = pl.concat(frames, how="vertical_relaxed")
    return frame.sort([pl.col(k).cast(pl.String) if k != "open_time" else pl.col(k) for k in keys])


def same(a: pl.DataFrame, b: pl.DataFrame, what: str):
    a = a.with_columns(pl.col("symbol", "interval").cast(pl.String))
    b = b.with_columns(pl.col("symbol", "interval").cast(pl.String)).select(a.columns)
    check(a.shape == b.shape, f"{what}: shape {a.shape} != {b.shape}")
    check(a.equals(b), f"{what}: rows differ")


def main():
    out, venv = Path(sys.argv[1]), Path(sys.argv[2])

    # The command is the wheel's, in the venv's scripts directory.
    binary = Path(kline_etl.find_binary())
    check(binary == venv / "bin" / "kline-etl", f"binary {binary} is not the venv's")
    version = subprocess.run(
        [sys.executable, "-m", "kline_etl", "--version"], capture_output=True, text=True
    )
    check(version.returncode == 0 and "kline-etl" in version.stdout, f"--version: {version}")
    check(kline_etl.__version__ in version.stdout, f"{kline_etl.__version__} vs {version.stdout}")

    # Everything: the output root and the dataset directory read the same, exactly the files.
    everything = kline_etl.read(out)
    check(everything.height == len(SYMBOLS) * (HOURS + DAYS), f"{everything.height} rows")
    check(set(FILE_COLUMNS + ["market", "symbol"]) == set(everything.columns), f"{everything.columns}")
    check(everything.schema["open_time"] == pl.Datetime("ms", "UTC"), "open_time UTC ms")
    same(everything, direct(out), "read(out) vs the files")
    same(kline_etl.read(out / "klines"), everything, "read(out/klines)")

    # Filters: one symbol, one interval, one day of February.
    day = kline_etl.read(
        out, symbols=["BTCUSDT"], intervals="1h", start="2024-02-01", end=date(2024, 2, 2)
    )
    check(day.height == 24, f"one day of 1h: {day.height} rows")
    check(day["open_time"].min() == datetime(2024, 2, 1, tzinfo=timezone.utc), "start inclusive")
    check(day["open_time"].max() == datetime(2024, 2, 1, 23, tzinfo=timezone.utc), "end exclusive")
    check(set(day["symbol"].cast(pl.String)) == {"BTCUSDT"}, "symbol filter")
    ms = kline_etl.read(out, intervals=["1d"], start=1706745600000)  # epoch ms: 2024-02-01
    check(ms.height == 3 * 29, f"1d from February: {ms.height}")

    # pandas: the same rows as polars.
    pdf = kline_etl.read(out, symbols="ETHUSDT", intervals="1d", backend="pandas")
    check(isinstance(pdf, pd.DataFrame) and len(pdf) == DAYS, f"pandas: {type(pdf)} {len(pdf)}")
    check(str(pdf["open_time"].dtype) == "datetime64[ms, UTC]", f"{pdf['open_time'].dtype}")
    polars_eth = kline_etl.read(out, symbols="ETHUSDT", intervals="1d")
    same(polars_eth, pl.from_pandas(pdf).with_columns(
        pl.col("open_time", "close_time").dt.cast_time_unit("ms")), "pandas vs polars")
    pday = kline_etl.read(out, symbols="BTCUSDT", intervals="1h", start="2024-02-01",
                          end="2024-02-02", backend="pandas")
    check(len(pday) == 24, f"pandas filtered: {len(pday)}")

    # Pushdown: the filters prune directories, so excluded files are never opened.
    groups = _layout.file_groups(
        out / "klines", {"BTCUSDT"}, {"1h"}, datetime(2024, 2, 1, tzinfo=timezone.utc), None
    )
    files = [f for g in groups for f in g.files]
    check(len(files) == 1 and "symbol=BTCUSDT/year=2024/1h-2024.parquet" in str(files[0]), f"{files}")
    later = datetime(2025, 1, 1, tzinfo=timezone.utc)
    check(_layout.file_groups(out / "klines", None, {"1h"}, later, None) == [], "2025 pruned")
    check(kline_etl.read(out, intervals="1h", start=later).height == 0, "empty read")
    check(kline_etl.read(out, symbols="NOPE").height == 0, "unknown symbol")
    check(_layout._period("2024-12")[1] == datetime(2025, 1, 1, tzinfo=timezone.utc),
          "December ends at the new year")
    check(_layout._period("2024-02-29")[1] == datetime(2024, 3, 1, tzinfo=timezone.utc),
          "a day")

    # Bad arguments are errors that say what is wrong.
    for bad, kwargs in [("backend", {"backend": "spark"}), ("start", {"start": "yesterday"})]:
        try:
            kline_etl.read(out, **kwargs)
            check(False, f"{bad} accepted")
        except ValueError as e:
            check(bad in str(e), f"{bad}: {e}")
    try:
        kline_etl.read(out / "missing")
        check(False, "a missing path was read")
    except FileNotFoundError as e:
        check("missing" in str(e), str(e))

    # run(): a pipeline given as a mapping, then a failing one.
    with tempfile.TemporaryDirectory() as tmp:
        pipeline = {
            "name": "wheel",
            "source": {"market": "spot", "simulator": {"seed": 7}},
            "symbols": ["BTCUSDT"],
            "intervals": ["1d"],
            "range": {"start": "2024-01-01", "end": "2024-01-11"},
            "output": {"path": "out"},
        }
        result = kline_etl.run(pipeline, cwd=tmp)
        check(result.exit_code == 0, f"run: {result}")
        check(kline_etl.read(os.path.join(tmp, "out")).height == 10, "ten days written")
        try:
            kline_etl.run({**pipeline, "intervals": ["7m"]}, cwd=tmp)
            check(False, "an invalid pipeline ran")
        except kline_etl.KlineEtlError as e:
            check(e.exit_code == 2 and e.name == "usage", f"exit {e.exit_code} {e.name}")
            check("7m" in e.message and "7m" in str(e), f"message: {e.message!r}")
    print("check_wheel: ok")


if __name__ == "__main__":
    main()
