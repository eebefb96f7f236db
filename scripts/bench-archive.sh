#!/usr/bin/env bash
# Archive-first benchmark (issue 9): one year of 1m klines for one symbol, `source.mode: auto`
# (data.binance.vision-style files + REST for the last days) versus `rest` only, against the
# built-in simulator with 50 ms latency on every request (REST and archive alike) and the spot
# weight budget (6000 per minute). A second pair of runs lowers the simulator's limit to 600
# per minute: the share one symbol gets when ten symbols backfill together.
#
#   ./scripts/bench-archive.sh           # needs a release build; builds it if missing
#   KLINE_ETL_BIN=target/profiling/kline-etl ./scripts/bench-archive.sh   # with line tables, for
#                                        # perf (cargo build --profile profiling --bin kline-etl)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${KLINE_ETL_BIN:-target/release/kline-etl}
[ -x "$BIN" ] || cargo build --release --locked --bin kline-etl
LATENCY_MS=${LATENCY_MS:-50}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

run() { # mode limit
  local mode=$1 limit=$2 dir="$work/$1-$2"
  mkdir -p "$dir"
  cat > "$dir/p.yaml" <<EOF
name: bench-archive
source:
  market: spot
  mode: $mode
  weight_share: 1.0
  simulator: { latency_ms: $LATENCY_MS, weight_limit: $limit }
symbols: [BTCUSDT]
intervals: [1m]
range:
  start: 365 days ago
  end: now
output:
  path: $dir/out
EOF
  local t0 t1
  t0=$(date +%s.%N)
  /usr/bin/time -v "$BIN" -q --no-progress run "$dir/p.yaml" 2> "$dir/time.txt" || true
  t1=$(date +%s.%N)
  python3 - "$dir" "$mode" "$limit" "$t0" "$t1" <<'EOF'
import json, re, sys
d, mode, limit, t0, t1 = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4]), float(sys.argv[5])
r = json.load(open(f"{d}/out/klines/_kline_etl/summary.json"))["run"]
a = r.get("archive") or {}
rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", open(f"{d}/time.txt").read())
rows = sum(s["rows"] for s in json.load(open(f"{d}/out/klines/_kline_etl/summary.json"))["series"])
print(f"| {mode:4} | {limit:>4}/min | {t1 - t0:6.1f} s | {rows:,} | {r['requests']:,} | {r['weight_used']:,} "
      f"| {a.get('requests', 0):,} | {a.get('files_ingested', 0)} | {a.get('bytes', 0) / 2**20:.1f} MiB | {a.get('elapsed_ms', 0) / 1000:.1f} s "
      f"| {int(rss.group(1)) / 1024:.0f} MiB |" if rss else "")
EOF
}

echo "| mode | limit | wall | rows | REST requests | REST weight | archive requests | files | zip bytes | archive part | peak RSS |"
echo "|---|---|---|---|---|---|---|---|---|---|---|"
run auto 6000
run rest 6000
run auto 600
run rest 600
