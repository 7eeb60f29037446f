#!/usr/bin/env bash
# Installs the dependencies, builds, and runs every test, then each fuzzer
# briefly.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh
ctest --test-dir build --output-on-failure -j "$(nproc)"
# Each libFuzzer target for a minute, under ASan and UBSan: a smoke test
# (docs/reliability.md has the long runs).
scripts/fuzz.sh 60
