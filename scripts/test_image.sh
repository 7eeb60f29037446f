#!/usr/bin/env bash
# Builds the container image and checks it as an operator would: starts it
# with published ports, waits for /readyz and Docker's HEALTHCHECK,
# segments an image with the host's `segment` CLI through the published
# port, checks that the server runs as a non-root user, sends SIGTERM while
# requests are in flight and checks that they all complete and the exit code
# is 0, and prints the image size and build time.
#
#   usage: scripts/test_image.sh        (needs build/bin/segment: scripts/build.sh)
#
# Docker: uses DOCKER_HOST when set, else starts the private daemon of
# ../shared/tools/container-base.sh. Not part of .ci/run (a cold image build
# takes about 20 minutes here); run it when the Dockerfile, the dependencies
# or the server's start-up change (docs/deployment.md has the last output).
set -euo pipefail
cd "$(dirname "$0")/.."
image=${IMAGE:-unet-segmentation:test}
name=unet-image-test-$$
work=$(mktemp -d)
if [[ -z ${DOCKER_HOST:-} ]] && ! docker info >/dev/null 2>&1; then
  eval "$(bash ../shared/tools/container-base.sh start)"
fi
[[ -x build/bin/segment ]] || { echo "test_image: build/bin/segment missing (scripts/build.sh)" >&2; exit 1; }
cleanup() {
  docker rm -f "$name" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
step() { echo "test_image: $*"; }
fail() { echo "test_image: FAIL: $*" >&2; docker logs "$name" 2>&1 | tail -20 >&2; exit 1; }

step "building $image"
start=$(date +%s)
docker build -q -t "$image" . >"$work/build.log" 2>&1 || { cat "$work/build.log" >&2; exit 1; }
build_s=$(($(date +%s) - start))
size_mb=$(($(docker image inspect -f '{{.Size}}' "$image") / 1000000))
step "built in ${build_s} s (with Docker's layer cache as it was); image ${size_mb} MB"

# A drain timeout that fits the requests below on a slow 2-core machine,
# and `docker stop` given longer than that, as docs/deployment.md advises.
drain_s=90
docker run -d --name "$name" -p 127.0.0.1::50051 -p 127.0.0.1::9090 \
  "$image" --drain_timeout_s=$drain_s >/dev/null
grpc_port=$(docker port "$name" 50051/tcp | head -1 | sed 's/.*://')
http_port=$(docker port "$name" 9090/tcp | head -1 | sed 's/.*://')
step "published gRPC on 127.0.0.1:$grpc_port, HTTP on 127.0.0.1:$http_port"

start=$(date +%s)
until curl -fsS -o /dev/null "http://127.0.0.1:$http_port/readyz" 2>/dev/null; do
  (($(date +%s) - start < 180)) || fail "/readyz not 200 after 180 s"
  sleep 1
done
step "/readyz 200 after $(($(date +%s) - start)) s"
until [[ $(docker inspect -f '{{.State.Health.Status}}' "$name") == healthy ]]; do
  (($(date +%s) - start < 180)) || fail "HEALTHCHECK not healthy after 180 s"
  sleep 1
done
step "HEALTHCHECK: healthy"

uid=$(docker exec "$name" cat /proc/1/status | awk '/^Uid:/ {print $2}')
[[ $uid != 0 ]] || fail "the server runs as root"
step "server process (pid 1) runs as uid $uid ($(docker exec "$name" id -un))"

build/bin/segment --server "127.0.0.1:$grpc_port" --output "$work/out" \
  --overlay tests/data/isbi_unlabeled_0.png >"$work/cli.log" 2>&1 ||
  { cat "$work/cli.log" >&2; fail "segment through the published port"; }
[[ -s $work/out/isbi_unlabeled_0_mask.png ]] || fail "no mask written"
step "segment CLI from the host: $(tail -1 "$work/cli.log")"

# SIGTERM with requests in flight: large images (seconds each on a CPU),
# one CLI process per image, all accepted before the signal.
calls=4
/usr/bin/python3 - "$work/big.png" <<'PY'
import sys, cv2, numpy as np
tile = cv2.imread("tests/data/isbi_unlabeled_0.png", cv2.IMREAD_GRAYSCALE)
cv2.imwrite(sys.argv[1], np.tile(tile, (2, 2)))  # 1024 x 1024
PY
pids=()
for i in $(seq "$calls"); do
  mkdir -p "$work/in$i" && cp "$work/big.png" "$work/in$i/big$i.png"
  build/bin/segment --server "127.0.0.1:$grpc_port" --output "$work/drain$i" \
    --deadline_ms 600000 "$work/in$i/big$i.png" >"$work/drain$i.log" 2>&1 &
  pids+=($!)
done
start=$(date +%s)
until [[ $(curl -fsS "http://127.0.0.1:$http_port/metrics" |
  awk '/^segmentation_requests_in_flight/ {print int($2)}') -ge $calls ]]; do
  (($(date +%s) - start < 60)) || fail "the $calls requests never were in flight together"
  sleep 0.2
done
step "$calls requests of 1024x1024 in flight; docker stop (SIGTERM)"
start=$SECONDS
docker stop -t $((drain_s + 30)) "$name" >/dev/null &
stopper=$!
completed=0
for i in "${!pids[@]}"; do
  if wait "${pids[$i]}"; then completed=$((completed + 1)); else
    cat "$work/drain$((i + 1)).log" >&2
  fi
done
wait $stopper
exit_code=$(docker inspect -f '{{.State.ExitCode}}' "$name")
step "after SIGTERM: $completed of $calls requests completed; exit code $exit_code; stopped in $((SECONDS - start)) s"
docker logs "$name" 2>&1 | grep -E "event=(draining|drained|stopped)" | cut -c1-160 | sed 's/^/  /'
((completed == calls)) || fail "requests in flight were lost at SIGTERM"
[[ $exit_code == 0 ]] || fail "exit code $exit_code after SIGTERM"
step "PASS"
