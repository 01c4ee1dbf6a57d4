#!/usr/bin/env bash
# Swap the CPU FAISS wheel for the CUDA 12 one (same `faiss` module) on a machine with an
# NVIDIA GPU. textlatent then searches collections on the GPU (TEXTLATENT_DEVICE=auto).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
"$PY" -m pip uninstall -y faiss-cpu
"$PY" -m pip install 'faiss-gpu-cu12>=1.9'
"$PY" -c 'import faiss; print("faiss GPUs:", faiss.get_num_gpus())'
