#!/usr/bin/env bash
# gpu_check.sh: the GPU path in one command. Builds the project against the
# machine's CUDA LibTorch, runs the device tests and the whole test suite,
# trains a wider U-Net on the GPU and benchmarks the server against the raw
# forward pass; every log and result goes into OUT (docs/gpu.md).
#
#   on the GPU machine, with .carry/ beside the tree (made here by
#   scripts/pack_gpu_carry.sh: deps.tar.xz, devpkgs.tar.xz, isbi/train):
#     scripts/gpu_check.sh "$OUT"                    # about 9 minutes
#   here, to try the script itself on the CPU (Debian's LibTorch, build/):
#     scripts/gpu_check.sh /tmp/gpu-check --cpu
#
# Environment: STAGES (default build,devtest,train,ctest,bench),
# TRAIN_SECONDS (200), TRAIN_WIDTH (32), BENCH_SECONDS (4), DEADLINE (seconds
# from the start by which everything is collected; 540), BUILD_DIR.
# Each stage runs under its own timeout, cut to what is left before the
# deadline; the training runs on the GPU while the rest builds and the whole
# suite (ctest) runs; the device tests, which measure the card's memory, and
# the benchmark have the GPU to themselves.
# OUT gets summary.txt, highlights.txt, bench.txt (the benchmark tables),
# results.tar.gz (all logs, the trained version's model.json and training
# log) and the trained weights in parts of 15 MiB (model.pt.part-*): at
# most 8 files, which the device tool brings back.
set -uo pipefail
out=$(realpath -m "${1:?usage: gpu_check.sh OUT [--cpu]}")
mode=gpu
[[ ${2:-} == --cpu ]] && mode=cpu
cd "$(dirname "$0")/.."
stages=,${STAGES:-build,devtest,train,ctest,bench},
train_seconds=${TRAIN_SECONDS:-200}
train_width=${TRAIN_WIDTH:-32}
bench_seconds=${BENCH_SECONDS:-4}
deadline=${DEADLINE:-540}
jobs=$(nproc)
logs=$out/logs
work=$(mktemp -d)
mkdir -p "$logs"
summary=$out/summary.txt
: >"$summary"

if [[ $mode == gpu ]]; then
  deps=/opt/deps
  mkdir -p "$deps"
  tar -C "$deps" -xJf .carry/deps.tar.xz
  tar -C "$deps" -xJf .carry/devpkgs.tar.xz
  export LD_LIBRARY_PATH=$deps/lib:$deps/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}
  export LIBRARY_PATH=$deps/usr/lib/x86_64-linux-gnu:$deps/lib
  export LDFLAGS=-Wl,-rpath-link,$deps/lib
  export PATH=$deps/usr/bin:$PATH:/usr/local/cuda/bin
  # The benchmark and the end-to-end tests serve on 127.0.0.1; on the H200
  # of 2026-11-26 nothing could bind there (docs/gpu.md), as if the VM's
  # loopback interface were down.
  ip link set lo up 2>/dev/null
  # Hopper; spares LibTorch's CMake from probing the card for it.
  export TORCH_CUDA_ARCH_LIST=9.0
  prefix="$deps/usr;$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)')"
  build=${BUILD_DIR:-build-gpu}
  device=cuda:0 precision=fp16 data=.carry/isbi/train
  bench_width=64 bench_batch=32
else
  prefix=""
  build=${BUILD_DIR:-build}
  PATH=/usr/bin:$PATH  # Debian's python3, with its python3-torch
  device=cpu precision=fp32 data=../shared/data/isbi2012-em/train
  bench_width=16 bench_batch=2
  train_width=${TRAIN_WIDTH:-4} train_seconds=${TRAIN_SECONDS:-20}
fi

# stage NAME LIMIT COMMAND...: runs COMMAND under `timeout`, cut to the time
# left before the deadline, logging to logs/NAME.log and one summary line.
stage() {
  local name=$1 limit=$2 begin=$SECONDS rc
  shift 2
  local left=$((deadline - 20 - SECONDS))
  ((limit > left)) && limit=$left
  if ((limit < 10)); then
    echo "$(printf '%-9s' "$name") skipped: out of time" | tee -a "$summary"
    return 1
  fi
  timeout -k 10 "$limit" "$@" >"$logs/$name.log" 2>&1
  rc=$?
  echo "$(printf '%-9s' "$name") rc=$rc $((SECONDS - begin)) s (limit $limit s)" |
    tee -a "$summary"
  return $rc
}
wants() { [[ $stages == *,$1,* ]]; }

collect() {
  [[ -n ${train_pid:-} ]] && kill "$train_pid" 2>/dev/null && wait "$train_pid"
  {
    echo "mode $mode, device $device, $(date -u +%FT%TZ)"
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>&1
    python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, "cudnn", torch.backends.cudnn.version())' 2>&1
    g++ --version | head -1
    nproc
  } >"$logs/machine.txt" 2>&1
  local trained
  trained=$(ls -d "$work"/trained/unet/[0-9]* 2>/dev/null | sort -V | tail -1)
  if [[ -n $trained ]]; then
    cp "$trained/model.json" "$logs/trained_model.json"
    cp "$work/trained/unet/training_log.csv" "$logs/" 2>/dev/null
    cp "$work/trained/unet/training_curves.png" "$logs/" 2>/dev/null
    split -b 15M -d "$trained/model.pt" "$out/model.pt.part-"
  fi
  {
    echo "== first build errors"
    grep -h -m 15 -E "error:|FAILED:" "$logs"/build*.log
    echo "== device tests"
    grep -hE "device:|agree|after reload|OK \]|FAILED|SKIPPED|Failure" \
      "$logs/devtest.log"
    echo "== failed tests"
    grep -hE "\((Failed|Timeout|Subprocess aborted|SEGFAULT)\)" "$logs/ctest.log"
  } >"$out/highlights.txt" 2>/dev/null
  tar -C "$out" -czf "$out/results.tar.gz" logs && rm -rf "$logs"
  rm -rf "$work"
  cat "$out/highlights.txt"
  echo "== summary"
  cat "$summary"
  echo "== benchmark tables"
  grep -hE '^(\||limit|model)' "$out/bench.txt" 2>/dev/null
}
trap collect EXIT

python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print("loopback: bound port", s.getsockname()[1])' 2>&1 |
  tail -1 | tee -a "$summary"
# The CUDA image's configuration (Dockerfile), with the tests.
stage configure 120 scripts/configure_release.sh "$build" "$prefix" \
  -DUNET_PYTHON="$(command -v python3)" || exit 1
grep -E "LibTorch|CUDA" "$logs/configure.log" | tee -a "$summary"

# The trainer first, so that it trains while the rest builds.
if wants build || wants train; then
  stage build-train 300 cmake --build "$build" -j "$jobs" --target unet_train
fi
train_pid=
if wants train && [[ -x $build/bin/unet_train ]]; then
  mkdir -p "$work/trained"
  (trap - EXIT; stage train $((train_seconds + 60)) "$build/bin/unet_train" \
    --data "$data" --model_root "$work/trained" --device "$device" \
    --width "$train_width" --steps 1000000 --checkpoint_every 2000 \
    --time_limit_s "$train_seconds") &
  train_pid=$!
fi
if wants build; then
  stage build 400 cmake --build "$build" -j "$jobs"
fi
if wants ctest; then
  stage ctest 150 ctest --test-dir "$build" -j "$((jobs > 1 ? jobs / 2 : 1))" \
    --output-on-failure --timeout 150 -E TorchEngineDeviceTest
  grep -E "tests passed|tests failed|\(Failed\)|\(Timeout\)" "$logs/ctest.log" |
    tee -a "$summary"
fi
[[ -n $train_pid ]] && wait "$train_pid"
grep -E "^step [0-9]+:" "$logs/train.log" 2>/dev/null | tail -3 | tee -a "$summary"
train_pid=
# The device tests measure the card's memory: after the training, alone.
if wants devtest; then
  stage devtest 180 "$build/tests/torch_engine_device_test"
fi

if wants bench; then
  # A full-width U-Net (64..1024; random weights, speed only) and the two
  # shipped models, each on two instances with eager batching.
  stage make-wide 120 "$build/bin/unet_train" --data "$data" \
    --model_root "$work/wide" --device "$device" --width "$bench_width" \
    --steps 1 --checkpoint_every 1
  declare -A roots=([wide]=$work/wide [gpu]=model/gpu_repository
    [cpu]=model/repository)
  for model in wide gpu cpu; do
    root=${roots[$model]}
    stage "bench-$model" 200 "$build/bin/segment_benchmark" \
      --model_root "$root" --device "$device" --precision "$precision" \
      --channels_last --instances 2 --max_batch_size "$bench_batch" \
      --max_queue_delay_us 0 --concurrency 1,64 --seconds "$bench_seconds"
    grep -vE '^[0-9]{4}-' "$logs/bench-$model.log" >>"$out/bench.txt"
  done
fi
