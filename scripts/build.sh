#!/usr/bin/env bash
# Installs the dependencies and builds everything into build/ (binaries in
# build/bin/). Extra arguments go to CMake's configure step.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install_deps.sh
# Let ccache share results between checkouts at different paths.
export CCACHE_BASEDIR="$PWD" CCACHE_NOHASHDIR=1
cmake -S . -B build -G Ninja "$@" >/dev/null
# Two compile jobs need about 3 GB each for the LibTorch files.
cmake --build build -j "$(nproc)"
