#!/usr/bin/env bash
# CPU-seconds per million candles of two kline-etl binaries, side by side (issue 25): one
# `kline-etl simulate` (no latency, no weight limit) serves both; the binaries run in turn,
# A B A B ..., each run into an empty output directory, and only the client's own user + system
# time is counted (GNU time), so the server's CPU is not in the figure. Prints every run and the
# medians, and the ratio new / old per pair.
#
#   ./scripts/bench-cpu.sh OLD_BIN NEW_BIN [rest|archive|zstd3|delta] [PAIRS]
#   COUNT=instructions ./scripts/bench-cpu.sh OLD_BIN NEW_BIN rest 1
#
# COUNT=instructions runs each binary under valgrind's callgrind instead of timing it, and
# reports the instructions it executed in user space (the kernel's work is not counted): the
# same count for the same binary and input however busy the machine is, so one pair shows a
# change of a fraction of a percent that CPU time on a shared machine hides. Instructions are
# not seconds (zstd and memcpy do more per cycle than the parser; under valgrind SHA-256 runs
# its software code, no SHA extensions): compare builds, not shares, and confirm in time
# too. Each run takes about 50x as long; callgrind's profile of each run is kept with
# KEEP=DIR (`callgrind_annotate DIR/cg-new-1` for the first pair's).
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
count=${COUNT:-cpu}
case $count in cpu|instructions) ;; *) echo "COUNT is cpu or instructions, not $count" >&2; exit 2 ;; esac
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

run() { # which bin [pair] -> "cpu wall rss_kib bytes server_cpu" (cpu: G instructions with COUNT)
  rm -rf "$work/out-$1"
  local s0 wrap=()
  s0=$(sim_cpu)
  if [ "$count" = instructions ]; then
    wrap=(valgrind --tool=callgrind --log-file="$work/vg" --callgrind-out-file="$work/cg-$1-${3:?pair}")
  fi
  /usr/bin/time -f "%U %S %e %M" -o "$work/time" "${wrap[@]}" "$2" -q --no-progress run "$work/$1.yaml" \
    >/dev/null 2>"$work/err-$1" || { cat "$work/err-$1" >&2; exit 1; }
  local bytes
  bytes=$(find "$work/out-$1" -name '*.parquet' ! -name '_*' -printf '%s\n' | awk '{s+=$1} END {print s}')
  local instr=-1
  [ "$count" = instructions ] && instr=$(awk '/Collected :/ {print $NF}' "$work/vg")
  awk -v b="$bytes" -v s="$(( $(sim_cpu) - s0 ))" -v t="$tick" -v i="$instr" \
    '{printf "%.3f %.3f %d %d %.3f\n", i < 0 ? $1 + $2 : i / 1e9, $3, $4, b, s / t}' "$work/time"
}

count=cpu run old "$old" >/dev/null # warm-up (never under valgrind): page cache, simulator
count=cpu run new "$new" >/dev/null
: >"$work/runs"
for i in $(seq "$pairs"); do
  a=$(run old "$old" "$i"); b=$(run new "$new" "$i")
  echo "$a $b" >>"$work/runs"
  if [ "$count" = instructions ]; then
    echo "pair $i: old ${a%% *} G instructions, new ${b%% *} G"
  else
    echo "pair $i: old cpu ${a%% *} s, new cpu ${b%% *} s"
  fi
done
if [ -n "${KEEP:-}" ] && [ "$count" = instructions ]; then
  mkdir -p "$KEEP" && cp "$work"/cg-* "$KEEP"/
fi
python3 - "$work/runs" "$candles" "$job" "$count" <<'EOF'
import statistics as st, sys
rows = [list(map(float, l.split())) for l in open(sys.argv[1])]
m = int(sys.argv[2]) / 1e6
med = lambda i: st.median(r[i] for r in rows)
what = "G instructions per M candles (user space)" if sys.argv[4] == "instructions" else "CPU-s per M candles"
print(f"job {sys.argv[3]}, {len(rows)} interleaved pairs, {int(sys.argv[2]):,} candles")
if sys.argv[4] == "instructions":
    print("(wall time and peak RSS are under valgrind)")
print(f"| binary | {what} (median) | wall s | peak RSS MiB | output MB | server CPU-s per M |")
print("|---|--:|--:|--:|--:|--:|")
for name, o in (("old", 0), ("new", 5)):
    print(f"| {name} | {med(o) / m:.2f} | {med(o + 1):.2f} | {med(o + 2) / 1024:.0f} | {med(o + 3) / 1e6:.1f} | {med(o + 4) / m:.2f} |")
ratios = sorted(r[5] / r[0] for r in rows)
print(f"{'instructions' if sys.argv[4] == 'instructions' else 'CPU'} new / old per pair: median {st.median(ratios):.2f} (min {ratios[0]:.2f}, max {ratios[-1]:.2f})")
EOF
