#!/usr/bin/env bash
# End-to-end benchmarks side by side with python-binance, ccxt and polars (bench/harness.py):
# builds the release binary, creates bench/.venv with the pinned Python contenders on first
# use, runs every job of bench/jobs.json against `kline-etl simulate` and prints one markdown
# table (also in bench-out/results.md and .json).
#
#   ./scripts/bench.sh                      # all jobs, all contenders
#   ./scripts/bench.sh --jobs cpu --repeat 3
#   ./scripts/bench.sh --check              # job definitions only
#   ./scripts/bench.sh --bin target/profiling/kline-etl   # line tables for perf (cargo build
#                                           # --profile profiling --bin kline-etl); release has none
#
# Needs a Rust toolchain and python3 (3.10+, with venv). Other flags: ./scripts/bench.sh --help
set -euo pipefail
cd "$(dirname "$0")/.."
exec python3 bench/harness.py "$@"
