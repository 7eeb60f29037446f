#!/usr/bin/env bash
# Renders every kustomization under deploy/k8s with `kubectl kustomize`,
# validates each object against the Kubernetes schemas (npm's
# kubernetes-models, offline once installed) and checks the properties
# operators rely on (k8s_manifests_check.mjs).
#
#   usage: tests/deploy/k8s_manifests_test.sh WORK_DIR
# Exits 77 (CTest: skipped) when kubectl or npm is missing.
set -euo pipefail
cd "$(dirname "$0")/../.."
work=${1:?usage: $0 WORK_DIR}
for tool in kubectl node npm; do
  command -v "$tool" >/dev/null || { echo "skipped: no $tool" >&2; exit 77; }
done
mkdir -p "$work"
if [[ ! -d $work/node_modules/kubernetes-models ]]; then
  npm install --prefix "$work" --silent --no-audit --no-fund \
    kubernetes-models@5.1.0 yaml@2.9.1 >/dev/null ||
    { echo "skipped: npm could not install kubernetes-models" >&2; exit 77; }
fi
rendered=()
for dir in overlays/cpu overlays/gpu training; do
  out=$work/${dir//\//_}.yaml
  kubectl kustomize "deploy/k8s/$dir" >"$out"
  rendered+=("$dir=$out")
done
NODE_PATH=$work/node_modules node tests/deploy/k8s_manifests_check.mjs \
  "$work/node_modules" "${rendered[@]}"
