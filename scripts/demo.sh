#!/usr/bin/env bash
# The main job on the built-in synthetic data. Grows as the commands land.
set -euo pipefail
cd "$(dirname "$0")/.."
G=".venv/bin/gcpbench"
OUT=${DEMO_OUT:-runs/demo}
mkdir -p "$OUT"
start=$(date +%s)
echo "== model zoo"
$G zoo
echo "== demo finished in $(( $(date +%s) - start )) s; results under $OUT"
