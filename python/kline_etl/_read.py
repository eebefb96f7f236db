"""`kline_etl.read`: a kline dataset as one polars or pandas DataFrame, filters pushed down.

Symbol, interval and time-partition filters prune directories (`_layout.file_groups`); the
time range is then a predicate on `open_time` that polars and pyarrow evaluate against each
file's row-group statistics, so only row groups that can match are decoded.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from datetime import date, datetime, timezone
from typing import Any

from ._layout import FileGroup, dataset_dir, file_groups

UTC = timezone.utc
TimeLike = datetime | date | str | int


def read(
    path: str | os.PathLike[str],
    symbols: str | Iterable[str] | None = None,
    intervals: str | Iterable[str] | None = None,
    start: TimeLike | None = None,
    end: TimeLike | None = None,
    backend: str = "polars",
) -> Any:
    """Read a kline dataset written by `kline-etl run`.

    `path` is the dataset directory (`data/demo/klines`) or the pipeline's `output.path`
    (`data/demo`). `symbols` and `intervals` (one name or several, Binance spelling) keep those
    series; `start` (inclusive) and `end` (exclusive) bound `open_time`: a `datetime` (naive
    means UTC), a `date`, an ISO 8601 string or epoch milliseconds. `backend` is `"polars"`
    (a `polars.DataFrame`, the default) or `"pandas"` (a `pandas.DataFrame` through pyarrow).

    Columns: the files' own (`open_time`, `close_time`, prices, volumes, `trades`,
    `interval`) plus `market` and `symbol` from the directories (strings). Rows are sorted by market, symbol, interval
    and open time. Raises `FileNotFoundError` when `path` is not a directory and
    `ValueError` for an unknown backend or an unreadable time.
    """
    lo, hi = _utc(start, "start"), _utc(end, "end")
    root = dataset_dir(path)
    groups = file_groups(root, _names(symbols), _names(intervals), lo, hi)
    if backend == "polars":
        return _polars(groups, lo, hi)
    if backend == "pandas":
        return _pandas(groups, lo, hi)
    raise ValueError(f"backend must be 'polars' or 'pandas', not {backend!r}")


SORT = ["market", "symbol", "interval", "open_time"]


def _polars(groups: list[FileGroup], lo: datetime | None, hi: datetime | None) -> Any:
    pl = _import("polars", "polars")
    frames = []
    for g in groups:
        lf = pl.scan_parquet(g.files, hive_partitioning=False)
        if lo is not None:
            lf = lf.filter(pl.col("open_time") >= lo)
        if hi is not None:
            lf = lf.filter(pl.col("open_time") < hi)
        frames.append(
            lf.with_columns(pl.lit(g.market).alias("market"), pl.lit(g.symbol).alias("symbol"))
        )
    if not frames:
        return pl.DataFrame()
    # Names sort as text (a categorical column would sort by its codes).
    keys = [pl.col(c).cast(pl.String) if c != "open_time" else pl.col(c) for c in SORT]
    return pl.concat(frames, how="vertical_relaxed").sort(keys).collect()


def _pandas(groups: list[FileGroup], lo: datetime | None, hi: datetime | None) -> Any:
    pd = _import("pandas", "pandas")
    pa = _import("pyarrow", "pandas")
    ds = _import("pyarrow.dataset", "pandas")
    pc = _import("pyarrow.compute", "pandas")
    tables = []
    for g in groups:
        dataset = ds.dataset([str(f) for f in g.files], format="parquet")
        unit = dataset.schema.field("open_time").type
        cond = None
        for bound, op in ((lo, "ge"), (hi, "lt")):
            if bound is None:
                continue
            value = pa.scalar(bound, type=unit)
            c = ds.field("open_time") >= value if op == "ge" else ds.field("open_time") < value
            cond = c if cond is None else cond & c
        t = dataset.to_table(filter=cond)
        t = t.append_column("market", pa.array([g.market] * t.num_rows, pa.string()))
        tables.append(t.append_column("symbol", pa.array([g.symbol] * t.num_rows, pa.string())))
    if not tables:
        return pd.DataFrame()
    table = pa.concat_tables(tables, promote_options="permissive")
    # pyarrow cannot sort by a dictionary column: sort by the names as text, keep the types.
    keys = pa.table(
        {c: table[c].cast(pa.string()) if c != "open_time" else table[c] for c in SORT}
    )
    order = pc.sort_indices(keys, sort_keys=[(c, "ascending") for c in SORT])
    return table.take(order).to_pandas()


def _names(v: str | Iterable[str] | None) -> set[str] | None:
    if v is None:
        return None
    return {v} if isinstance(v, str) else set(v)


def _utc(v: TimeLike | None, what: str) -> datetime | None:
    """A bound as an aware UTC datetime."""
    if v is None:
        return None
    if isinstance(v, bool):
        raise ValueError(f"{what}: expected a time, not {v!r}")
    if isinstance(v, int):
        return datetime.fromtimestamp(v / 1000, tz=UTC)
    if isinstance(v, str):
        try:
            v = datetime.fromisoformat(v.replace("Z", "+00:00"))
        except ValueError as e:
            raise ValueError(f"{what}: {v!r} is not an ISO 8601 time (2024-01-31T00:00:00Z)") from e
    if isinstance(v, datetime):
        return v.replace(tzinfo=UTC) if v.tzinfo is None else v.astimezone(UTC)
    if isinstance(v, date):
        return datetime(v.year, v.month, v.day, tzinfo=UTC)
    raise ValueError(f"{what}: expected a datetime, date, ISO string or epoch ms, not {v!r}")


def _import(module: str, extra: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise ImportError(
            f"kline_etl.read needs `{module}`: pip install 'kline-etl[{extra}]'"
        ) from e
