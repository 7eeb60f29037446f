#!/usr/bin/env bash
# Installs the Debian 12 packages the service needs. Idempotent: installs
# nothing when everything is there. Used by the README, .ci/run and the
# Dockerfile.
#
#   usage: scripts/install_deps.sh [all|build|runtime]
#     all (default): build, test and tooling packages (a developer machine, CI)
#     build:   what compiling the service needs (the image's build stage)
#     runtime: the shared libraries the binaries load (the image's runtime)
#   UNET_DEBIAN_TORCH=0 leaves out Debian's LibTorch (libtorch-dev,
#   libtorch1.13): for a build against another LibTorch, such as CUDA's.
set -euo pipefail
group=${1:-all}

build_packages=(
  build-essential cmake ninja-build ccache pkg-config
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libopencv-dev libabsl-dev prometheus-cpp-dev libssl-dev libdcmtk-dev
)
runtime_packages=(
  libgrpc++1.51 libprotobuf32 libabsl20220623 libopencv-core406
  libopencv-imgproc406 libopencv-imgcodecs406 libprometheus-cpp-core1.0
  libcivetweb1 libssl3 libdcmtk17 ca-certificates curl
)
if [[ ${UNET_DEBIAN_TORCH:-1} == 1 ]]; then
  # oneDNN's headers: Debian's LibTorch links it as a shared library, and
  # the CPU pass calls it directly to fuse each ReLU (model/onednn_conv.h).
  # Its CMake package needs OpenCL's headers, which it only recommends.
  build_packages+=(libtorch-dev libdnnl-dev ocl-icd-opencl-dev)
  runtime_packages+=(libtorch1.13)
fi
test_packages=(
  # GoogleTest, Python interop (TorchScript export, the Python client),
  # promtool and a real Prometheus server
  libgtest-dev libgmock-dev python3-torch python3-grpcio python3-opencv
  prometheus
  # fuzzing: clang 14 with libFuzzer and the sanitizer runtimes
  clang libclang-rt-14-dev
  # TLS tests make their certificates; the image test drives Docker
  openssl curl
  # DICOM tests: David Clunie's validator, pydicom, DCMTK's tools
  dicom3tools python3-pydicom dcmtk
)

case $group in
  all) packages=("${build_packages[@]}" "${test_packages[@]}") ;;
  build) packages=("${build_packages[@]}") ;;
  runtime) packages=("${runtime_packages[@]}") ;;
  *) echo "usage: $0 [all|build|runtime]" >&2; exit 2 ;;
esac

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
