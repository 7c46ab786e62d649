#!/usr/bin/env bash
# The README's comparison: MiniONN-BN on the embedded mnist-10k with each activation, the
# paper's MiniONN recipe scaled to the data (fewer epochs, 1 epoch of learning-rate warm-up).
# Usage: scripts/mnist_activations.sh [OUT_DIR] [EPOCHS]
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-runs/mnist}"
epochs="${2:-8}"
bin="${PILLAR:-./target/release/pillar}"
for act in relu poly naive-poly amm quail; do
  extra=()
  if [ "$act" = quail ]; then
    # Teacher and fine-tuning share the budget; one imitation epoch per activation layer.
    extra=(--config scripts/quail_mnist.toml)
  fi
  "$bin" train --model minionn --dataset mnist --activation "$act" --epochs "$epochs" \
    --lr-warmup-epochs 1 --out "$out/$act" "${extra[@]}"
done
for act in relu poly; do
  "$bin" eval --model "$out/$act/model.onnx" --dataset mnist --mode plain --json > "$out/$act/eval-plain.json"
  "$bin" eval --model "$out/$act/model.onnx" --dataset mnist --mode fixed --json > "$out/$act/eval-fixed.json"
done
