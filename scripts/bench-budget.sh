#!/usr/bin/env bash
# Budget-bound end-to-end benchmark: kline-etl against the built-in simulator with realistic
# latency (50 ms) and the real spot weight limit (6000 per wall-clock minute), on a backfill
# that needs more than three minutes of weight. Reports the share of the budget used in every
# full window, 429s/418s, rows/s and peak RSS; then times python-binance 1.0.37's
# get_historical_klines on a slice of the same job against the same simulator.
#
#   ./scripts/bench-budget.sh            # needs a release build; builds it if missing
#
# Environment: KLINE_ETL_PYTHON (a python with python-binance; default .venv/bin/python).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${KLINE_ETL_BIN:-target/release/kline-etl}
[ -x "$BIN" ] || cargo build --release --locked --bin kline-etl
PY=${KLINE_ETL_PYTHON:-.venv/bin/python}
LATENCY_MS=${LATENCY_MS:-50}
work=$(mktemp -d)
trap 'kill $sim 2>/dev/null || true; rm -rf "$work"' EXIT

"$BIN" simulate --port 0 --market spot --latency-ms "$LATENCY_MS" > "$work/sim.out" &
sim=$!
for _ in $(seq 100); do grep -q listening "$work/sim.out" 2>/dev/null && break; sleep 0.1; done
url=$(sed -n 's/^simulator listening on //p' "$work/sim.out")
echo "simulator at $url (latency ${LATENCY_MS} ms, spot limit 6000 weight/min)"

cat > "$work/bench.yaml" <<EOF
name: bench-budget
source:
  market: spot
  base_url: $url
  weight_share: 1.0
symbols: [BTCUSDT, ETHUSDT, BNBUSDT, XRPUSDT]
intervals: [1m]
range:
  start: 2019-01-01
  end: 2024-01-01
output:
  path: $work/out
EOF

start=$(date +%s.%N)
/usr/bin/time -v "$BIN" -q --no-progress run "$work/bench.yaml" --concurrency 16 2> "$work/time.txt" || true
end=$(date +%s.%N)
curl -s "$url/__sim/stats" > "$work/stats.json"

python3 - "$work" "$start" "$end" <<'EOF'
import json, re, sys
work, start, end = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
s = json.load(open(f"{work}/out/klines/_summary.json"))["run"]
st = json.load(open(f"{work}/stats.json"))
rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", open(f"{work}/time.txt").read())
windows = sorted(w["weight"] for w in st["weight_windows"])
full = [w["weight"] for w in st["weight_windows"]][1:-1]  # drop the partial first and last minute
wall = end - start
print(f"rows written       {s['rows_new']:,}")
print(f"requests           {s['requests']:,}  weight {s['weight_used']:,}")
print(f"wall time          {wall:.1f} s  ({s['rows_new'] / wall:,.0f} rows/s)")
print(f"full windows       {len(full)}: weight per window {full}")
if full:
    print(f"budget used        {min(full) / 6000:.1%} (worst full window), {sum(full) / (6000 * len(full)):.1%} (mean)")
print(f"429s / 418s        {s['http_429']} / {s['http_418']} (simulator sent {st['sent_429']} / {st['sent_418']})")
print(f"peak RSS           {int(rss.group(1)) / 1024:.0f} MiB" if rss else "peak RSS           n/a")
EOF

if "$PY" -c "import binance" 2>/dev/null; then
  echo "python-binance 1.0.37 get_historical_klines, BTCUSDT 1m, 2019-01-01 .. 2019-01-15 (same simulator):"
  "$PY" - "$url" <<'EOF'
import sys, time
from binance.client import Client
Client.API_URL = sys.argv[1] + "/api"
c = Client(ping=False)
t = time.time()
rows = c.get_historical_klines("BTCUSDT", "1m", 1546300800000, 1547510400000)
dt = time.time() - t
print(f"  {len(rows):,} rows in {dt:.1f} s = {len(rows) / dt:,.0f} rows/s")
EOF
fi
