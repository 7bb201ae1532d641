#!/usr/bin/env bash
# Build .venv with the pinned stack: gcpbench with its `detect` extra, mmcv's ops compiled.
# Idempotent: re-running only installs what changed. pip caches a CPU build of mmcv, so a
# second machine-local build takes seconds.
#
#   bash scripts/bootstrap.sh                 # VENV=.venv, PYTHON=python3.11 (else python3 >= 3.11)
#   bash scripts/bootstrap.sh --plan          # print what would be done (torch, mmcv kernels) and stop
#   bash scripts/bootstrap.sh --rebuild-mmcv  # compile mmcv again (e.g. after installing nvcc)
#
# mmcv's ops get CUDA kernels when torch is a CUDA build, nvcc of the same major CUDA version is
# found ($CUDA_HOME, nvcc's toolkit on PATH, /usr/local/cuda) and a GPU is visible: only the
# visible GPUs' architectures are built, headers missing from a bare toolkit come from pip's
# nvidia-* wheels (gcpbench/buildplan.py; GCPBENCH_MMCV_CUDA=0|1 overrides). A torch
# that the venv already sees (a GPU image's own, through --system-site-packages, or installed
# by hand with GCPBENCH_KEEP_TORCH=1) is kept when it is >= 2.6: its stack's pins are dropped
# from the constraints and a matching torchvision is added when it lacks one.
set -euo pipefail
cd "$(dirname "$0")/.."
MODE=install
for arg in "$@"; do
  case "$arg" in
    --plan) MODE=plan ;;
    --rebuild-mmcv) REBUILD_MMCV=1 ;;
    *) echo "usage: bash scripts/bootstrap.sh [--plan] [--rebuild-mmcv]" >&2; exit 2 ;;
  esac
done
VENV=${VENV:-.venv}
PY=${PYTHON:-$(command -v python3.11 || command -v python3)}
C=requirements/constraints.txt
export PIP_DISABLE_PIP_VERSION_CHECK=1
torch_ok() { "$1" -c "import sys, torch; v = tuple(int(x) for x in torch.__version__.split('+')[0].split('.')[:2]); sys.exit(v < (2, 6))" 2>/dev/null; }

if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -c "import sys; sys.exit(sys.version_info < (3, 11))" || { echo "[bootstrap] $PY is older than Python 3.11; set PYTHON=" >&2; exit 2; }
  SITE=""
  if torch_ok "$PY"; then SITE="--system-site-packages"; fi   # keep the image's torch (and its CUDA)
  [ "$MODE" = plan ] && { echo "[plan] create $VENV from $PY ${SITE:-(own site-packages)}"; VENV_PY=$PY; } || "$PY" -m venv $SITE "$VENV"
fi
VENV_PY=${VENV_PY:-$VENV/bin/python}
pip() { "$VENV_PY" -m pip "$@"; }
plan() { PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" "$VENV_PY" scripts/buildplan.py "$@"; }

# A torch from outside the venv (or any, with GCPBENCH_KEEP_TORCH=1) is kept; the venv's own follows the pins.
outside() { "$VENV_PY" -c "import os, sys, torch; sys.exit(os.path.realpath(torch.__file__).startswith(os.path.realpath(sys.argv[1]) + os.sep))" "$VENV" 2>/dev/null; }
if torch_ok "$VENV_PY" && { [ "${GCPBENCH_KEEP_TORCH:-0}" = 1 ] || outside; }; then
  KEEP=$(mktemp "${TMPDIR:-/tmp}/gcpbench-constraints.XXXXXX")
  [ "$MODE" = install ] && trap 'rm -f "$KEEP"' EXIT   # --plan leaves it to be read
  plan constraints "$C" "$KEEP"
  C=$KEEP
  echo "[bootstrap] keeping the installed torch $("$VENV_PY" -c 'import torch; print(torch.__version__, "CUDA", torch.version.cuda)'); its stack's pins are left out ($KEEP)"
  if [ "$MODE" = install ]; then
    TV=()
    "$VENV_PY" -c "import torchvision" 2>/dev/null || TV=("torchvision==$(plan torchvision)")
    pip install -q -c "$C" ${TV[@]+"${TV[@]}"} setuptools wheel ninja numpy   # ninja: parallel builds, PYTORCH_NVCC
  fi
elif [ "$MODE" = install ]; then
  echo "[bootstrap] torch, build tools"
  pip install -q -c "$C" torch torchvision setuptools wheel ninja numpy
else
  echo "[plan] install torch $(sed -n 's/^torch==//p' "$C") and torchvision from the constraints"
fi

if [ "$MODE" = plan ]; then
  if torch_ok "$VENV_PY"; then plan mmcv | sed 's/^/[plan] /'; else echo "[plan] mmcv: decided once torch is installed"; fi
  exit 0
fi

eval "$(plan mmcv --shell)"   # exports MMCV_WITH_OPS, FORCE_CUDA, MMCV_PLAN (+ TORCH_CUDA_ARCH_LIST, CUDA_HOME, CPATH for CUDA)
mmcv_ops() { "$VENV_PY" -c "from mmcv.ops import get_compiling_cuda_version as v; print('cpu' if v() == 'not available' else 'cuda')" 2>/dev/null || echo none; }
HAVE=$(mmcv_ops)
if [ "${REBUILD_MMCV:-0}" = 1 ] || [ "$HAVE" = none ] || { [ "$FORCE_CUDA" = 1 ] && [ "$HAVE" = cpu ]; }; then
  echo "[bootstrap] mmcv 2.1.0: $MMCV_PLAN"
  export MAX_JOBS=${MAX_JOBS:-$(nproc)}
  echo "[bootstrap]   $(pip cache list mmcv 2>/dev/null | plan mmcv-note --cuda "${FORCE_CUDA:-0}" --cores "$MAX_JOBS")"
  # torch 2.14's headers need C++20 while mmcv's setup forces C++14/17: the wrappers make it C++20.
  export CC="$PWD/scripts/cxx20" CXX="$PWD/scripts/cxx20"
  CACHE=()
  if [ "$FORCE_CUDA" = 1 ]; then
    export PYTORCH_NVCC="$PWD/scripts/nvcc20" GCPBENCH_REAL_NVCC="${CUDA_HOME:-/usr/local/cuda}/bin/nvcc"
    CACHE=(--no-cache-dir)   # pip's cache keys the wheel by source, not by kernels: keep CUDA builds out of it
  fi
  # mmcv 2.1.0's setup.py needs setuptools < 70; torch wants >= 77 at run time, so the old
  # one is used for this build only and the one before it is put back right after.
  # pip's resolver would report that pin as an "ERROR" (torch requires >= 77): the conflict is
  # intended and lasts two commands, so it is said once here and pip's warning is switched off.
  ST=$("$VENV_PY" -c "import importlib.metadata as m; print(m.version('setuptools'))" 2>/dev/null || true)
  echo "[bootstrap]   $(plan setuptools-note ${ST:+"$ST"})"
  pip install -q --no-warn-conflicts "setuptools==69.5.1"
  pip install -q -c "$C" --no-build-isolation --no-warn-conflicts ${CACHE[@]+"${CACHE[@]}"} --force-reinstall --no-deps mmcv
  pip install -q -c "$C" --no-warn-conflicts "setuptools${ST:+==$ST}"
fi
echo "[bootstrap] gcpbench[detect] and the rest"
pip install -q -c "$C" --no-build-isolation -e ".[detect,dev]"
"$VENV_PY" -c "from mmcv.ops import RoIAlign, nms, get_compiling_cuda_version as v; import mmdet, gcpbench; print('[bootstrap] ok: mmdet', mmdet.__version__, '| mmcv ops:', 'CPU kernels' if v() == 'not available' else 'CUDA ' + v() + ' kernels')"
touch "$VENV/.bootstrapped"
