"""Where a kline dataset's files are: the one place that knows the on-disk layout.

Layout (dataset format version 2, what the binary writes; see `src/layout.rs`)::

    <dataset>/market=spot/symbol=BTCUSDT/year=2024/1h-2024.parquet      a file per year
    <dataset>/market=spot/symbol=BTCUSDT/year=2024/1m-2024-01.parquet   a file per month
    <dataset>/market=spot/symbol=BTCUSDT/year=2024/1s-2024-01-05.parquet  a file per day
    <dataset>/_kline_etl/                                                the run's own files

In a Delta Lake table (`output.format: delta`, a `_delta_log/` in the dataset directory) the
files are named `1h-2024.<16 hex>.parquet` and only those the log's latest version holds are
data (`live_files`); earlier versions' files are skipped.

A candle is in the partition of its open time. `market` and `symbol` live in the path only,
`interval` is a column of the files and the start of their names. Files are returned in
groups of one market, symbol and interval; directories and file names are pruned here by
symbol, interval and the time range, so a reader never opens a file the filters rule out.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

UTC = timezone.utc


@dataclass
class FileGroup:
    """Files that share one set of partition keys (read as one table)."""

    market: str
    symbol: str
    interval: str
    files: list[Path] = field(default_factory=list)


def dataset_dir(path: str | os.PathLike[str]) -> Path:
    """The dataset directory: `path` itself, or `path/klines` when `path` is an output root."""
    root = Path(path)
    if not root.is_dir():
        raise FileNotFoundError(f"no kline-etl dataset at `{root}`: not a directory")
    if not _keyed(root, "market") and (root / "klines").is_dir():
        return root / "klines"
    return root


def file_groups(
    root: Path,
    symbols: set[str] | None,
    intervals: set[str] | None,
    start: datetime | None,
    end: datetime | None,
) -> list[FileGroup]:
    """The data files under `root` that can hold rows matching the filters, grouped by
    (market, interval); `start` is inclusive and `end` exclusive (open time, UTC)."""
    groups: dict[tuple[str, str, str], FileGroup] = {}
    live = live_files(root)
    for market, mdir in _keyed(root, "market"):
        for symbol, sdir in _keyed(mdir, "symbol"):
            if symbols is not None and symbol not in symbols:
                continue
            for _, ydir in _keyed(sdir, "year"):
                for f in sorted(ydir.glob("*.parquet")):
                    if live is not None and f.resolve() not in live:
                        continue
                    stem = _TAG.sub("", f.name[: -len(".parquet")])
                    interval, _, period = stem.partition("-")
                    if not period or (intervals is not None and interval not in intervals):
                        continue
                    lo, hi = _period(period)
                    if (start is None or hi > start) and (end is None or lo < end):
                        key = (market, symbol, interval)
                        groups.setdefault(key, FileGroup(market, symbol, interval)).files.append(f)
    return [groups[k] for k in sorted(groups)]


_TAG = re.compile(r"\.[0-9a-f]{16}$")


def live_files(root: Path) -> set[Path] | None:
    """The files of a Delta table's latest version (its JSON commits replayed: each `add`
    not removed since), `None` when `root` is not a Delta table."""
    from urllib.parse import unquote

    log = root / "_delta_log"
    if not log.is_dir():
        return None
    files: set[str] = set()
    for commit in sorted(log.glob("[0-9]" * 20 + ".json")):
        actions = [json.loads(line) for line in commit.read_text().splitlines() if line.strip()]
        for a in actions:
            if "remove" in a:
                files.discard(a["remove"]["path"])
        for a in actions:
            if "add" in a:
                files.add(a["add"]["path"])
    return {(root / unquote(p)).resolve() for p in files}


def _keyed(directory: Path, key: str) -> list[tuple[str, Path]]:
    """`(value, path)` of the `key=value` subdirectories, sorted by value."""
    prefix = f"{key}="
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return []
    return sorted(
        (e.name[len(prefix) :], Path(e.path))
        for e in entries
        if e.name.startswith(prefix) and e.is_dir()
    )


def _period(value: str) -> tuple[datetime, datetime]:
    """The open-time span `[lo, hi)` of a partition file's period (`2024`, `2024-01`,
    `2024-01-05`)."""
    try:
        parts = [int(p) for p in value.split("-")]
        if len(parts) == 1:
            y = parts[0]
            return datetime(y, 1, 1, tzinfo=UTC), datetime(y + 1, 1, 1, tzinfo=UTC)
        if len(parts) == 2:
            y, m = parts
            lo = datetime(y, m, 1, tzinfo=UTC)
            return lo, datetime(y + m // 12, m % 12 + 1, 1, tzinfo=UTC)
        lo = datetime.strptime(value, "%Y-%m-%d").replace(tzinfo=UTC)
        return lo, lo + timedelta(days=1)
    except ValueError:
        # Not one of ours: never prune what we cannot read.
        return datetime.min.replace(tzinfo=UTC), datetime.max.replace(tzinfo=UTC)
