#!/usr/bin/env bash
# Regenerates the ONNX fixtures of pillar-nn's import tests with real PyTorch exports:
# crates/pillar-nn/tests/fixtures/*.onnx (and .onnx.data), each with a .json holding a fixed
# input and PyTorch's output for it (and onnxruntime's, for the models users bring). The
# fixtures are committed; run this only to change them.
#
# Needs python3 and PyPI. torch (CPU wheel where the PyTorch index is reachable, else the
# plain PyPI wheel), onnx, onnxscript and onnxruntime go into a virtual environment under
# ${PILLAR_CACHE:-$HOME/.cache/pillar}/torch-venv, created on first use.
set -euo pipefail
cd "$(dirname "$0")/.."

cache="${PILLAR_CACHE:-$HOME/.cache/pillar}"
venv="$cache/torch-venv"
if [ ! -x "$venv/bin/python" ]; then
  mkdir -p "$cache"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --upgrade pip
fi
if ! "$venv/bin/python" -c 'import torch' 2>/dev/null; then
  "$venv/bin/pip" install --quiet torch --index-url https://download.pytorch.org/whl/cpu \
    || "$venv/bin/pip" install --quiet torch
fi
# onnxscript is what the torch.export-based exporter (dynamo=True) needs; onnxruntime computes
# the outputs the tests compare with.
"$venv/bin/python" -c 'import onnx, onnxscript, onnxruntime' 2>/dev/null \
  || "$venv/bin/pip" install --quiet onnx onnxscript onnxruntime

"$venv/bin/python" scripts/make_onnx_fixtures.py crates/pillar-nn/tests/fixtures
