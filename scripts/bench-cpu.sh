#!/usr/bin/env bash
# CPU-seconds per million candles of two kline-etl binaries, side by side (issue 25): one
# `kline-etl simulate` (no latency, no weight limit) serves both; the binaries run in turn,
# A B A B ..., each run into an empty output directory, and only the client's own user + system
# time is counted (GNU time), so the server's CPU is not in the figure. Prints every run and the
# medians, and the ratio new / old per pair.
#
#   ./scripts/bench-cpu.sh OLD_BIN NEW_BIN [rest|archive|zstd3] [PAIRS]
#
# rest:    BTCUSDT + ETHUSDT 1m for 2023 through REST pages (1,051,200 candles)
# archive: BTCUSDT 1m for 2023 from the 12 monthly archive zips (525,600 candles)
# zstd3:   the rest job with `compression: zstd:3` for NEW_BIN (OLD_BIN keeps its default),
#          to compare compression levels
# delta:   the rest job with `output.format: delta` for NEW_BIN (OLD_BIN writes `parquet`),
#          to measure what the Delta table costs (pass the same binary twice)
set -euo pipefail
old=${1:?old binary}
new=${2:?new binary}
job=${3:-rest}
pairs=${4:-5}
port=${PORT:-18325}
work=$(mktemp -d)
trap 'kill "$sim" 2>/dev/null || true; rm -rf "$work"' EXIT

# The server keeps every page it rendered (`--memo-pages`): after the warm-up runs every page
# is served from memory, so the server costs next to nothing beside the client (its CPU per
# run is printed too). SIM_BIN picks the binary that serves (default NEW_BIN), SIM_ARGS its
# extra flags (default `--memo-pages`; SIM_ARGS= renders every page afresh).
# shellcheck disable=SC2086
"${SIM_BIN:-$new}" simulate --port "$port" --weight-limit 4000000000 ${SIM_ARGS---memo-pages} >"$work/sim.log" 2>&1 &
sim=$!
for _ in $(seq 50); do
  curl -fs "http://127.0.0.1:$port/api/v3/time" >/dev/null 2>&1 && break
  sleep 0.2
done

pipeline() { # name mode symbols compression [format]
  cat >"$work/$1.yaml" <<EOF
name: bench-$1
source:
  market: spot
  base_url: http://127.0.0.1:$port
  mode: $2
  weight_share: 1.0
symbols: [$3]
intervals: [1m]
range:
  start: 2023-01-01
  end: 2024-01-01
output:
  path: $work/out-$1
  compression: $4
${5:+  format: $5}
EOF
}
case $job in
  rest) pipeline old rest "BTCUSDT, ETHUSDT" zstd; cp "$work/old.yaml" "$work/new.yaml"
        sed -i "s|out-old|out-new|" "$work/new.yaml"; candles=1051200 ;;
  archive) pipeline old archive BTCUSDT zstd; cp "$work/old.yaml" "$work/new.yaml"
        sed -i "s|out-old|out-new|" "$work/new.yaml"; candles=525600 ;;
  zstd3) pipeline old rest "BTCUSDT, ETHUSDT" zstd; pipeline new rest "BTCUSDT, ETHUSDT" zstd:3
        candles=1051200 ;;
  delta) pipeline old rest "BTCUSDT, ETHUSDT" zstd; pipeline new rest "BTCUSDT, ETHUSDT" zstd delta
        candles=1051200 ;;
  *) echo "unknown job $job" >&2; exit 2 ;;
esac

sim_cpu() { # the server's user + system ticks so far
  awk '{print $14 + $15}' "/proc/$sim/stat"
}
tick=$(getconf CLK_TCK)

run() { # which bin -> "cpu wall rss_kib bytes server_cpu"
  rm -rf "$work/out-$1"
  local s0
  s0=$(sim_cpu)
  /usr/bin/time -f "%U %S %e %M" -o "$work/time" "$2" -q --no-progress run "$work/$1.yaml" \
    >/dev/null 2>"$work/err-$1" || { cat "$work/err-$1" >&2; exit 1; }
  local bytes
  bytes=$(find "$work/out-$1" -name '*.parquet' ! -name '_*' -printf '%s\n' | awk '{s+=$1} END {print s}')
  awk -v b="$bytes" -v s="$(( $(sim_cpu) - s0 ))" -v t="$tick" \
    '{printf "%.3f %.3f %d %d %.3f\n", $1 + $2, $3, $4, b, s / t}' "$work/time"
}

run old "$old" >/dev/null # warm-up: page cache, simulator
run new "$new" >/dev/null
: >"$work/runs"
for i in $(seq "$pairs"); do
  a=$(run old "$old"); b=$(run new "$new")
  echo "$a $b" >>"$work/runs"
  echo "pair $i: old cpu ${a%% *} s, new cpu ${b%% *} s"
done
python3 - "$work/runs" "$candles" "$job" <<'EOF'
import statistics as st, sys
rows = [list(map(float, l.split())) for l in open(sys.argv[1])]
m = int(sys.argv[2]) / 1e6
med = lambda i: st.median(r[i] for r in rows)
print(f"job {sys.argv[3]}, {len(rows)} interleaved pairs, {int(sys.argv[2]):,} candles")
print("| binary | CPU-s per M candles (median) | wall s | peak RSS MiB | output MB | server CPU-s per M |")
print("|---|--:|--:|--:|--:|--:|")
for name, o in (("old", 0), ("new", 5)):
    print(f"| {name} | {med(o) / m:.2f} | {med(o + 1):.2f} | {med(o + 2) / 1024:.0f} | {med(o + 3) / 1e6:.1f} | {med(o + 4) / m:.2f} |")
ratios = sorted(r[5] / r[0] for r in rows)
print(f"CPU new / old per pair: median {st.median(ratios):.2f} (min {ratios[0]:.2f}, max {ratios[-1]:.2f})")
EOF
