#!/usr/bin/env bash
# GPU figures in one call: LBM MLUPS at 128^3 and 256^3 against the copy-bandwidth
# roofline, pVAE training samples/s at 32^3, 64^3 and 128^3 (fp32 and bf16 autocast),
# surrogate samples/s, a 4-trial smoke study at gpu 0.25 with memory peaks.
# Writes bench/results/gpu.json and gpu.md. Needs a CUDA build of torch, e.g.
#   .venv/bin/pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128
# On a machine without CUDA it says so in one line and exits with status 2.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
if ! "$PY" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
    echo "bench/gpu.sh: no CUDA device here (torch.cuda.is_available() is False); nothing measured" >&2
    exit 2
fi
exec "$PY" bench/bench_gpu.py "$@"
