#!/usr/bin/env bash
# Installs the Debian 12 packages the service, its tests and its tools need.
# Idempotent: installs nothing when everything is there. Used by the README,
# .ci/run and the Dockerfile.
set -euo pipefail

packages=(
  # build
  build-essential cmake ninja-build ccache pkg-config
  # the service
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libopencv-dev libabsl-dev prometheus-cpp-dev libtorch-dev
  # tests: GoogleTest, Python interop (TorchScript export), promtool and a
  # real Prometheus server
  libgtest-dev libgmock-dev python3-torch python3-grpcio python3-opencv
  prometheus
  # tests: fuzzing (clang 14 with libFuzzer and the sanitizer runtimes)
  clang libclang-rt-14-dev
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
    missing+=("$p")
done
if ((${#missing[@]} == 0)); then
  exit 0
fi
echo "install_deps: installing ${missing[*]}" >&2
sudo=""
if [[ $(id -u) != 0 ]]; then sudo="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
