#!/usr/bin/env bash
# Installs the dependencies, builds, starts the server on the shipped default
# model, segments an example image with the CLI, and keeps serving until
# Ctrl-C. PORT (default 50051) and METRICS_PORT (default 9090) pick the ports.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh
port=${PORT:-50051}
metrics_port=${METRICS_PORT:-9090}
build/bin/segmentation_server --port "$port" --metrics_port "$metrics_port" &
server=$!
trap 'kill -TERM $server 2>/dev/null; wait $server' EXIT INT TERM

# /readyz answers 200 once the model is loaded and warm.
ready() {
  exec 3<>"/dev/tcp/127.0.0.1/$metrics_port" &&
    printf 'GET /readyz HTTP/1.0\r\n\r\n' >&3 &&
    head -n 1 <&3 | grep -q ' 200'
}
echo "demo: loading the model (on CPUs the server first times its execution" \
     "plans, about 15 s)"
for _ in $(seq 300); do
  if ! kill -0 "$server" 2>/dev/null; then
    echo "demo: the server stopped" >&2
    exit 1
  fi
  if (ready) 2>/dev/null; then
    build/bin/segment --server "localhost:$port" --output demo_output \
      --overlay --overwrite tests/data/isbi_unlabeled_0.png
    echo "Mask written to demo_output/isbi_unlabeled_0_mask.png" \
         "(class index per pixel: 0 = cell, 1 = membrane), and an overlay" \
         "to view to demo_output/isbi_unlabeled_0_overlay.png."
    echo "Serving on localhost:$port (metrics on :$metrics_port); Ctrl-C stops."
    wait $server
    exit 0
  fi
  sleep 0.5
done
echo "demo: the server was not ready within 150 s" >&2
exit 1
