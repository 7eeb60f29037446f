#!/usr/bin/env bash
# Builds the libFuzzer targets of tests/fuzz/ with ASan + UBSan into
# build-fuzz/ and runs each for a while.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]
#
# SECONDS_PER_TARGET defaults to 60; TARGETs (image_decoder_encoded,
# image_decoder_raw, dicom_decoder, zlib_inflate, model_config) to all. FUZZ_JOBS=N runs N fuzzing
# processes per target (libFuzzer -fork=N), for long runs; FUZZ_RUNS=N stops
# a target after N executions, if that comes before SECONDS_PER_TARGET.
#
# Each target fuzzes a copy of its seed corpus, build-fuzz/corpus/<target>/,
# which keeps what it finds from run to run; crashes, leaks, timeouts and
# OOMs go to build-fuzz/artifacts/<target>/, its output to
# build-fuzz/logs/<target>.log. Exits non-zero when any target found one.
set -euo pipefail

cd "$(dirname "$0")/.."
seconds=${1:-60}
shift $(($# > 0 ? 1 : 0))
targets=("$@")
if ((${#targets[@]} == 0)); then
  targets=(image_decoder_encoded image_decoder_raw dicom_decoder zlib_inflate
    model_config)
fi
jobs=${FUZZ_JOBS:-1}

scripts/install_deps.sh
CC=clang CXX=clang++ cmake -S tests/fuzz -B build-fuzz -G Ninja >/dev/null
cmake --build build-fuzz

# The number at the end of the last match of $1 in stdin.
last() { grep -o "$1" | tail -1 | grep -o '[0-9]*$' || true; }

status=0
for target in "${targets[@]}"; do
  corpus=build-fuzz/corpus/$target
  artifacts=build-fuzz/artifacts/$target
  log=build-fuzz/logs/$target.log
  mkdir -p "$corpus" "$artifacts" build-fuzz/logs
  cp -u tests/fuzz/corpus/"$target"/* "$corpus"/
  # No allocator purges: past half the RSS limit libFuzzer would purge every
  # second, and ASan's stack depot (which grows with every new call path the
  # JSON parser takes, and is never freed) made that a madvise storm that cut
  # the model_config rate to a twentieth. A single input may still allocate
  # at most 2 GiB.
  options=(-max_total_time="$seconds" -rss_limit_mb=4096 -malloc_limit_mb=2048
    -purge_allocator_interval=-1 -timeout=10 -print_final_stats=1
    -artifact_prefix="$artifacts"/)
  # Encoded images are bigger than raw headers, and those than model.json
  # documents (under 2 KB; longer inputs only slow the parser down).
  case $target in
    image_decoder_encoded) options+=(-max_len=1048576) ;;
    model_config) options+=(-max_len=4096) ;;
    *) options+=(-max_len=65536) ;;
  esac
  if [[ -f tests/fuzz/$target.dict ]]; then
    options+=(-dict="tests/fuzz/$target.dict")
  fi
  if ((jobs > 1)); then options+=(-fork="$jobs"); fi
  if [[ -n ${FUZZ_RUNS:-} ]]; then options+=(-runs="$FUZZ_RUNS"); fi

  echo "fuzz: $target for ${seconds}s (log: $log)" >&2
  touch build-fuzz/logs/.start
  rc=0
  "build-fuzz/bin/${target}_fuzzer" "${options[@]}" "$corpus" >"$log" 2>&1 ||
    rc=$?

  # A single process ends with its stats; in fork mode the parent prints
  # only status lines ("#N: cov: C ft: F corp: K exec/s E ...").
  if ((jobs > 1)); then
    summary=$(grep -E '^#[0-9]+: cov:' "$log" | tail -1 || true)
    execs=$(last '^#[0-9]*' <<<"$summary")
    rate=$(last 'exec/s [0-9]*' <<<"$summary")
  else
    summary=$(grep -E '^#[0-9]+\s.*cov:' "$log" | tail -1 || true)
    execs=$(last 'stat::number_of_executed_units: *[0-9]*' <"$log")
    rate=$(last 'stat::average_exec_per_sec: *[0-9]*' <"$log")
  fi
  cov=$(last 'cov: [0-9]*' <<<"$summary")
  ft=$(last 'ft: [0-9]*' <<<"$summary")
  units=$(last 'corp: [0-9]*' <<<"$summary")
  findings=$(find "$artifacts" -newer build-fuzz/logs/.start -type f \
    \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' \
    -o -name 'oom-*' \) | sort)
  # libFuzzer's corpus, and the files kept (reduced inputs stay there too).
  printf '%s: %s execs, %s exec/s, cov %s, ft %s, corpus %s (%s files), ' \
    "$target" "${execs:-?}" "${rate:-?}" "${cov:-?}" "${ft:-?}" \
    "${units:-?}" "$(find "$corpus" -type f | wc -l)"
  if [[ -n $findings ]]; then
    echo "findings $(wc -l <<<"$findings"): ${findings//$'\n'/ }"
    grep -m5 -E 'ERROR:|SUMMARY:|violated|round trip:' "$log" >&2 || true
    status=1
  elif ((rc != 0)); then
    echo "findings 0, but the fuzzer failed (exit $rc; see $log)"
    status=1
  else
    echo "findings 0"
  fi
done
exit $status
