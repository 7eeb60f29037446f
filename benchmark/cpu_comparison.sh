#!/bin/bash
# Holds the server against the CPU limit and against a plain Python server,
# in one run, on the same image and with the same load generator:
#   1. segment_benchmark in-process: the server's plan, every candidate plan
#      timed raw (the limit), then the concurrency sweep;
#   2. the segmentation_server binary at its defaults, as users start it;
#   3. benchmark/python_baseline_server.py (grpcio, one PyTorch forward per
#      request, torch.set_num_threads(2), a thread pool of 8).
# Each runs alone on the machine. Before the load, the masks both servers
# return for the image are compared pixel by pixel.
#
#   bash benchmark/cpu_comparison.sh [SECONDS_PER_LEVEL] [CONCURRENCY]
#
# Needs a build (scripts/build.sh) and Debian's python3-torch, python3-grpcio,
# python3-opencv and protobuf-compiler-grpc (scripts/install_deps.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-20}
concurrency=${2:-1,8}
bin=build/bin
version_dir=model/repository/unet/3
image=tests/data/isbi_train_0.png
work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

free_port() {
  /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
wait_for_port() {
  for _ in $(seq 600); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "nothing listens on port $1" >&2
  return 1
}
# Our server listens before it has planned and loaded: wait for SERVING.
wait_for_log() {
  for _ in $(seq 1200); do
    grep -q "$2" "$1" && return 0
    sleep 0.1
  done
  echo "no '$2' in $1" >&2
  return 1
}

echo "# CPU comparison, $(date -u +%FT%TZ), $(nproc) usable CPUs," \
  "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "# commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)," \
  "$seconds s per level, concurrency $concurrency"
echo

echo "## 1. segment_benchmark, in-process server at its defaults"
echo
"$bin/segment_benchmark" --seconds="$seconds" --concurrency="$concurrency" \
  --image="$image" 2>"$work/inprocess.log"
grep -oE 'event=(cpu_plan|planning_failed).*' "$work/inprocess.log" || true
echo

echo "## 2. segmentation_server binary at its defaults"
echo
port=$(free_port)
"$bin/segmentation_server" --address=127.0.0.1 --port="$port" \
  --metrics_address=127.0.0.1 --metrics_port=0 >"$work/server.log" 2>&1 &
pids+=($!)
wait_for_log "$work/server.log" "event=serving"
grep -oE 'event=(cpu_plan|planning_failed).*' "$work/server.log" || true
"$bin/segment" --server="127.0.0.1:$port" --output="$work/ours" "$image" \
  >/dev/null
"$bin/segment_benchmark" --server="127.0.0.1:$port" \
  --label="segmentation_server" --seconds="$seconds" \
  --concurrency="$concurrency" --image="$image" \
  --raw_version_dir="$version_dir" 2>/dev/null
kill "${pids[-1]}"
wait "${pids[-1]}" 2>/dev/null || true
echo

echo "## 3. Python baseline server"
echo
mkdir -p "$work/stubs"
protoc -I proto --python_out="$work/stubs" --grpc_python_out="$work/stubs" \
  --plugin=protoc-gen-grpc_python="$(command -v grpc_python_plugin)" \
  proto/segmentation/v1/segmentation.proto
port=$(free_port)
PYTHONPATH="$work/stubs" /usr/bin/python3 benchmark/python_baseline_server.py \
  --port="$port" --version_dir="$version_dir" >"$work/python.log" 2>&1 &
pids+=($!)
wait_for_port "$port"
"$bin/segment" --server="127.0.0.1:$port" --output="$work/python" "$image" \
  >/dev/null
/usr/bin/python3 - "$work/ours" "$work/python" <<'EOF'
import sys, os, cv2, numpy as np
ours, python = sys.argv[1:]
name = os.listdir(ours)[0]
a = cv2.imread(os.path.join(ours, name), cv2.IMREAD_UNCHANGED)
b = cv2.imread(os.path.join(python, name), cv2.IMREAD_UNCHANGED)
print(f"masks agree on {100.0 * np.mean(a == b):.4f} % of {a.size} pixels")
EOF
echo
"$bin/segment_benchmark" --server="127.0.0.1:$port" \
  --label="python_baseline_server.py" --seconds="$seconds" \
  --concurrency="$concurrency" --image="$image" 2>/dev/null
