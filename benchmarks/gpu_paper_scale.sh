#!/usr/bin/env bash
# NRF training at the paper's size on one GPU (H100/H200 class), < 8 min:
# training-step throughput of the 8 x 4096 predictor with CLIP-sized features
# (2 x 196 x 768 float16 tokens, 512-d embedding), batch 32 images x 2,000
# voxels, split first layer vs per-pair concatenation, shared vs per-image
# voxel sampling, bf16 autocast (and TF32 fp32 for comparison); FLOPs per step,
# fraction of the device's peak, peak device memory, chunked-inference
# throughput and an estimate of one subject's training + evaluation time.
#
#   bash benchmarks/gpu_paper_scale.sh            # writes benchmarks/gpu_paper_scale.{md,json}
#   OUT=/some/dir bash benchmarks/gpu_paper_scale.sh
#
# Python: $PYTHON, else .venv/bin/python, else python3 (needs torch with CUDA).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
OUT=${OUT:-benchmarks}
mkdir -p "$OUT"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"

nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv || true
"$PY" -c "import torch; assert torch.cuda.is_available(), 'no CUDA device visible to torch'; print('torch', torch.__version__, torch.cuda.get_device_name())"

timeout 450 "$PY" benchmarks/split_first_layer.py --device cuda --steps 20 \
    --sizes "default, paper batch" "paper (CLIP, 8 x 4096)" \
    --modes shared per_image --precisions bf16 fp32 \
    --out "$OUT/gpu_paper_scale.md" --json "$OUT/gpu_paper_scale.json"

# Features of a training batch on the GPU: CLIP ViT-B/16 rerun every batch (the
# authors' way; random weights, same arithmetic) vs the cache (file / memory).
timeout 150 "$PY" benchmarks/against_authors.py --only features --extractors clip_vitb16 --device cuda \
    --feature-images 300 --out "$OUT/gpu_features.md" --json "$OUT/gpu_features.json" \
    || echo "features benchmark on cuda failed (open_clip missing?); the NRF figures above stand" >&2
