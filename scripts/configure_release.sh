#!/usr/bin/env bash
# The release configuration, shared by the container image (Dockerfile) and
# the GPU check (scripts/gpu_check.sh), so that the GPU check builds what the
# CUDA image ships.
#
#   usage: scripts/configure_release.sh BUILD_DIR [PREFIX_PATH] [CMAKE ARGS...]
#     PREFIX_PATH: where CMake finds another LibTorch (a CUDA distribution);
#                  empty: Debian's libtorch-dev
set -euo pipefail
cd "$(dirname "$0")/.."
build=$1
prefix=${2:-}
shift $(($# < 2 ? $# : 2))
exec cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_PREFIX_PATH="$prefix" "$@"
