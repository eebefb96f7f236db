"""`python -m kline_etl ...` runs the bundled `kline-etl` binary."""

from ._run import main

main()
