#!/usr/bin/env bash
# Budget-bound end-to-end benchmark, now one job of the benchmark harness (bench/jobs.json,
# job `budget`): kline-etl, ccxt and python-binance against `kline-etl simulate` with 50 ms
# latency and the spot budget on a 10-second window (1000 weight = 6000 per minute); prints the
# share of the budget used in every full window, 429s/418s, rows/s and peak RSS.
#
#   ./scripts/bench-budget.sh                 # same as ./scripts/bench.sh --jobs budget
#   ./scripts/bench-budget.sh --contenders kline-etl
set -euo pipefail
cd "$(dirname "$0")/.."
exec python3 bench/harness.py --jobs budget "$@"
