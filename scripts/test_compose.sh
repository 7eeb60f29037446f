#!/usr/bin/env bash
# Runs deploy/compose.yaml as an operator would and checks it: the server
# turns ready and segments through its published port, Prometheus scrapes
# it, the one-shot trainer writes the next model version into the shared
# volume, and the server serves that version without a restart.
#
#   usage: scripts/test_compose.sh     (needs build/bin/segment and Debian's
#                                       docker-compose; ports 50051, 9090
#                                       and 9091 on this host free)
# Not part of .ci/run (it builds images); see docs/deployment.md.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ -z ${DOCKER_HOST:-} ]] && ! docker info >/dev/null 2>&1; then
  eval "$(bash ../shared/tools/container-base.sh start)"
fi
compose=(docker-compose -f deploy/compose.yaml -p unet-compose-test)
work=$(mktemp -d)
cleanup() {
  "${compose[@]}" --profile train down -v -t 45 >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
step() { echo "test_compose: $*"; }
fail() { echo "test_compose: FAIL: $*" >&2; "${compose[@]}" logs --tail 20 >&2; exit 1; }
wait_for() {  # SECONDS DESCRIPTION COMMAND...
  local limit=$1 what=$2 start=$SECONDS
  shift 2
  until "$@" >/dev/null 2>&1; do
    ((SECONDS - start < limit)) || fail "$what: not after $limit s"
    sleep 1
  done
  step "$what (after $((SECONDS - start)) s)"
}

start=$SECONDS
"${compose[@]}" up -d --build server prometheus >"$work/up.log" 2>&1 ||
  { cat "$work/up.log" >&2; fail "compose up"; }
step "built and started server and prometheus in $((SECONDS - start)) s"
wait_for 180 "server ready" curl -fsS http://127.0.0.1:9090/readyz
build/bin/segment --server localhost:50051 --output "$work/out" \
  tests/data/isbi_unlabeled_0.png >/dev/null || fail "segment"
step "segmented through the published port"
build/bin/segment --server localhost:50051 models | sed 's/^/  /'

scraped() {
  curl -fsS 'http://127.0.0.1:9091/api/v1/query?query=up%7Bjob%3D%22segmentation%22%7D' |
    grep -q '"value":\[[0-9.]*,"1"\]'
}
wait_for 120 "prometheus scrapes the server (up == 1)" scraped

step "training: the one-shot trainer continues the newest version"
start=$SECONDS
"${compose[@]}" --profile train run --rm trainer >"$work/train.log" 2>&1 ||
  { tail -20 "$work/train.log" >&2; fail "trainer"; }
step "trainer finished in $((SECONDS - start)) s; its last line:"
tail -1 "$work/train.log" | tr '\r' '\n' | tail -1 | cut -c1-150 | sed 's/^/  /'
new_version() {
  "${compose[@]}" logs --no-color server | grep -q "event=model_loaded model=unet version=4"
}
wait_for 60 "server loaded version 4 from the shared volume" new_version
build/bin/segment --server localhost:50051 models | sed 's/^/  /'
build/bin/segment --server localhost:50051 --output "$work/out2" \
  tests/data/isbi_unlabeled_0.png >/dev/null || fail "segment after reload"
versions() {
  curl -fsS 'http://127.0.0.1:9091/api/v1/query?query=segmentation_model_version_info' |
    grep -q '"version":"4"'
}
wait_for 60 "prometheus sees version 4 (segmentation_model_version_info)" versions
"${compose[@]}" logs --no-color server | grep -E "event=(model_loaded|model_unloaded|serving)" |
  cut -c1-150 | sed 's/^/  /'
restarts=$(docker inspect -f '{{.RestartCount}}' "$("${compose[@]}" ps -q server)")
step "server restarts: $restarts"
step "PASS"
