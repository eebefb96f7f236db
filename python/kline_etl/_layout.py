"""Where a kline dataset's files are: the one place that knows the on-disk layout.

Layout (dataset format version 1, what the binary writes today)::

    <dataset>/market=spot/symbol=BTCUSDT/interval=1h/year=2024/part.parquet
    <dataset>/market=spot/symbol=BTCUSDT/interval=1m/month=2024-01/part.parquet
    <dataset>/market=spot/symbol=BTCUSDT/interval=1s/date=2024-01-05/part.parquet
    <dataset>/market=spot/symbol=BTCUSDT/interval=1d/part.parquet

A candle is in the partition of its open time. Intervals of different granularity have
different hive keys, so the files are returned in groups that each read as one table
(one group per market and interval). Directories are pruned here by symbol, interval and the
time range, so a reader never opens a file the filters rule out.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

UTC = timezone.utc


@dataclass
class FileGroup:
    """Files that share one set of partition keys (read as one table)."""

    market: str
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
    groups: list[FileGroup] = []
    for market, mdir in _keyed(root, "market"):
        for symbol, sdir in _keyed(mdir, "symbol"):
            if symbols is not None and symbol not in symbols:
                continue
            for interval, idir in _keyed(sdir, "interval"):
                if intervals is not None and interval not in intervals:
                    continue
                files = [idir / "part.parquet"] if (idir / "part.parquet").is_file() else []
                for key in ("year", "month", "date"):
                    for value, pdir in _keyed(idir, key):
                        lo, hi = _period(key, value)
                        if (start is None or hi > start) and (end is None or lo < end):
                            files.extend(sorted(pdir.glob("*.parquet")))
                if not files:
                    continue
                group = next(
                    (g for g in groups if (g.market, g.interval) == (market, interval)), None
                )
                if group is None:
                    group = FileGroup(market, interval)
                    groups.append(group)
                group.files.extend(files)
    return groups


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


def _period(key: str, value: str) -> tuple[datetime, datetime]:
    """The open-time span `[lo, hi)` of a time partition directory (`year=2024`, ...)."""
    try:
        if key == "year":
            y = int(value)
            return datetime(y, 1, 1, tzinfo=UTC), datetime(y + 1, 1, 1, tzinfo=UTC)
        if key == "month":
            y, m = (int(p) for p in value.split("-"))
            lo = datetime(y, m, 1, tzinfo=UTC)
            return lo, datetime(y + m // 12, m % 12 + 1, 1, tzinfo=UTC)
        lo = datetime.strptime(value, "%Y-%m-%d").replace(tzinfo=UTC)
        return lo, lo + timedelta(days=1)
    except ValueError:
        # Not one of ours: never prune what we cannot read.
        return datetime.min.replace(tzinfo=UTC), datetime.max.replace(tzinfo=UTC)
