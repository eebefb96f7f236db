"""kline-etl from Python: the `kline-etl` command ships in this package's wheel; this module
reads what it writes and runs pipelines.

    import kline_etl
    kline_etl.run("pipelines/demo.yaml")                 # raises KlineEtlError on a non-zero exit
    df = kline_etl.read("data/demo", symbols=["BTCUSDT"], intervals="1h",
                        start="2024-02-01", end="2024-03-01")   # polars; backend="pandas"
"""

from importlib.metadata import PackageNotFoundError, version

from ._read import read
from ._run import EXIT_NAMES, KlineEtlError, RunResult, find_binary, run

try:
    __version__ = version("kline-etl")
except PackageNotFoundError:  # imported from a source tree, not installed
    __version__ = "0+unknown"

__all__ = ["EXIT_NAMES", "KlineEtlError", "RunResult", "find_binary", "read", "run"]
