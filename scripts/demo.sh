#!/usr/bin/env bash
# Installs the dependencies, builds, starts the server on the shipped default
# model, segments an example image with the CLI, and keeps serving until
# Ctrl-C. PORT (default 50051) picks the port.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh
port=${PORT:-50051}
build/bin/segmentation_server --port "$port" &
server=$!
trap 'kill -TERM $server 2>/dev/null; wait $server' EXIT INT TERM
# Loading and warming up takes a few seconds; the CLI waits for the server.
for _ in $(seq 60); do
  if build/bin/segment --server "localhost:$port" --output demo_output \
      --overlay --deadline_ms 2000 tests/data/isbi_unlabeled_0.png \
      2>/dev/null; then
    echo "Mask written to demo_output/isbi_unlabeled_0_mask.png" \
         "(class index per pixel: 0 = cell, 1 = membrane), and an overlay" \
         "to view to demo_output/isbi_unlabeled_0_overlay.png."
    echo "Serving on localhost:$port; Ctrl-C stops."
    wait $server
    exit 0
  fi
  sleep 1
done
echo "demo: the server did not answer" >&2
exit 1
