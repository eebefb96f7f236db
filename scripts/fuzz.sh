#!/usr/bin/env bash
# Fuzz every target for SECONDS each (default 300): the pipeline parser, time expressions,
# interval names and grid arithmetic, the /klines page parser and the archive CSV reader.
#
#   scripts/fuzz.sh            # 5 minutes per target
#   scripts/fuzz.sh 3600 time  # one hour, one target
#
# cargo-fuzz (from crates.io) is installed if missing. It needs nightly-only compiler flags;
# on a stable toolchain RUSTC_BOOTSTRAP=1 enables them. New inputs go to fuzz/.work/<target>
# (seeded from fuzz/corpus/<target>); builds are release with debug assertions (overflow checks on). A crash is saved under fuzz/artifacts/<target>/: copy it
# to fuzz/regressions/<target>/, fix the bug, and CI replays it from then on
# (tests/it/fuzz_regressions.rs).
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
secs=${1:-300}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(pipeline time interval klines_page archive_csv)
command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz
export RUSTC_BOOTSTRAP=1
for t in "${targets[@]}"; do
    mkdir -p ".work/$t" "corpus/$t"
    echo "fuzzing $t for ${secs}s" >&2
    cargo fuzz run --sanitizer none --release --debug-assertions "$t" ".work/$t" "corpus/$t" -- \
        -max_total_time="$secs" -max_len=65536 -timeout=10 -rss_limit_mb=2048 -print_final_stats=1
done
