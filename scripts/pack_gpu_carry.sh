#!/usr/bin/env bash
# pack_gpu_carry.sh: makes .carry/, what scripts/gpu_check.sh needs beside
# the working tree on the offline GPU machine (docs/gpu.md):
#   .carry/deps.tar.xz     gRPC, Abseil, OpenCV, prometheus-cpp, DCMTK
#                          (../shared/tools/offline-deps.sh, about 2 min)
#   .carry/devpkgs.tar.xz  GoogleTest's headers and libraries
#   .carry/isbi/train      the labelled ISBI slices, for the training run
# Add /.carry/ to .git/info/exclude; pass .carry in the device tool's carry.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .carry
[[ -f .carry/deps.tar.xz ]] || bash ../shared/tools/offline-deps.sh .carry/deps.tar.xz
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
packages="libgtest-dev libgmock-dev"
(cd "$work" && apt-get download $packages 2>&1 |
  grep -v '^W: Download is performed unsandboxed' || true)
mkdir "$work/root"
for deb in "$work"/*.deb; do dpkg -x "$deb" "$work/root"; done
tar -C "$work/root" -cJf .carry/devpkgs.tar.xz .
rm -rf .carry/isbi
mkdir -p .carry/isbi
cp -r ../shared/data/isbi2012-em/train .carry/isbi/train
du -sh .carry/*
