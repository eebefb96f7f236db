#!/usr/bin/env bash
# The test command: sets up the Python peers (python-binance, pyarrow, pandas, polars, DuckDB,
# pyspark, moto, deltalake)
# in .venv once, then runs every Rust test (unit, property, integration) against the built-in
# simulator on loopback. Nothing here needs the internet except PyPI for the first set-up.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=${KLINE_ETL_VENV:-.venv}
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import binance, pyarrow, pandas, polars, duckdb, deltalake, pyspark, moto.server' 2>/dev/null; then
    echo "setting up Python test peers in $venv (tests/python/requirements.txt)" >&2
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r tests/python/requirements.txt
fi
case "$venv" in /*) ;; *) venv="$PWD/$venv" ;; esac
export KLINE_ETL_PYTHON="$venv/bin/python"

# `cloud`: the object-store outputs are tested too (tests/it/store.rs runs S3 on moto).
cargo test --locked --features cloud "$@"
