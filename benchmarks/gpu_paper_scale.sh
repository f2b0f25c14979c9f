#!/usr/bin/env bash
# One GPU call that records everything about NRF training at the paper's size
# (issue 22), in at most 8 minutes on one H100, each result appended to
# $OUT/gpu_paper_scale.{md,jsonl} as soon as it is measured (a run cut short
# keeps what it measured):
#
#   1. the pipeline's own training loop (train_nrf) at 8 x 4096, 32 images x
#      2,000 voxels per image, bf16: model build timed apart from the steps,
#      set-up (the training split to the device), warm-up, steady ms per step,
#      TFLOP/s against the device's peak, peak memory; a check that no step
#      synchronises (torch.cuda.set_sync_debug_mode); one validation pass
#      (907 images x 15,724 voxels); the per-subject estimate (epochs that fit
#      in 15 minutes)
#   2. CLIP ViT-B/16 extraction throughput (skipped, with the reason, without open_clip)
#   3. host milliseconds per step's batch, old path vs new (benchmarks/host_step.py)
#   4. the same training at fp32 (TF32), then split vs concatenated first layer,
#      then train.compile: true, as long as the time lasts
#
# Needs only this repository and `pip install -e .` (torch with CUDA).
#
#   bash benchmarks/gpu_paper_scale.sh                    # writes benchmarks/gpu_run/
#   OUT=/some/dir bash benchmarks/gpu_paper_scale.sh
#   SIZE=tiny DEVICE=cpu COMPILE=0 OUT=/tmp/x bash benchmarks/gpu_paper_scale.sh   # CPU smoke run, ~1 min
#
# Python: $PYTHON, else .venv/bin/python, else python3. BUDGET_S (default 460)
# bounds the whole run; every stage gets its own limit within it. STEPS: warm-up
# and timed steps (20 each); EXTRAS=0 stops after stage 3; COMPILE=0 skips compile.
set -uo pipefail  # no -e: a stage that fails is recorded and the next one runs
cd "$(dirname "$0")/.."
if [ -n "${PYTHON:-}" ]; then PY=$PYTHON; elif [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
OUT=${OUT:-benchmarks/gpu_run}
DEVICE=${DEVICE:-cuda}
SIZE=${SIZE:-paper}
STEPS=${STEPS:-20}
COMPILE=${COMPILE:-1}
EXTRAS=${EXTRAS:-1}
BUDGET_S=${BUDGET_S:-460}
mkdir -p "$OUT"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
R="$OUT/gpu_paper_scale"
DEADLINE=$(( $(date +%s) + BUDGET_S ))

note() { printf '%s\n' "$*" >> "$R.md"; printf '%s\n' "$*"; }

stage() {  # stage LIMIT_S NAME COMMAND...: run within min(LIMIT_S, time left); a failure is noted, not fatal
    local limit=$1 name=$2 left rc t0
    shift 2
    left=$(( DEADLINE - $(date +%s) ))
    if [ "$left" -lt 15 ]; then
        note "- $name: not run, the ${BUDGET_S} s budget is spent"
        printf '{"stage": "%s", "skipped": "budget spent"}\n' "$name" >> "$R.jsonl"
        return
    fi
    [ "$limit" -gt "$left" ] && limit=$left
    t0=$(date +%s)
    timeout "$limit" "$@"
    rc=$?
    if [ "$rc" -ne 0 ]; then
        note "- **$name did not finish** (exit $rc$([ "$rc" -eq 124 ] && echo ", over its $limit s limit"))"
        printf '{"stage": "%s", "failed": %d, "limit_s": %d}\n' "$name" "$rc" "$limit" >> "$R.jsonl"
    fi
    note "<sub>$name: $(( $(date +%s) - t0 )) s wall</sub>"
    note ""
}

note "# NRF at the paper's size on one device: $(date -u '+%Y-%m-%d %H:%M UTC'), $(git rev-parse --short HEAD 2>/dev/null || echo 'no git')"
note ""
if [ "$DEVICE" = cuda ]; then
    note "$(nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv,noheader 2>&1 | head -1)"
    if ! "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
        note "**torch sees no CUDA device**: nothing measured"
        exit 1
    fi
fi
note "$("$PY" -c "import torch; print('torch', torch.__version__, '| device', torch.cuda.get_device_name() if torch.cuda.is_available() else 'cpu')")"
note ""

P=(benchmarks/paper_training.py --device "$DEVICE" --size "$SIZE" --steps "$STEPS" --record "$R")
stage 190 "train + sync + val + estimate (bf16)" "$PY" "${P[@]}" --stages train sync val estimate
stage 50 "CLIP extraction" "$PY" "${P[@]}" --stages clip
if [ "$SIZE" = paper ]; then HOST=(--steps 20 --rounds 3); else HOST=(--shape tiny --steps 3 --rounds 2); fi
stage 30 "host ms per step" "$PY" benchmarks/host_step.py --device "$DEVICE" "${HOST[@]}" \
    --out "$OUT/host_step_$DEVICE.md" --json "$OUT/host_step_$DEVICE.json"
[ -f "$OUT/host_step_$DEVICE.md" ] && cat "$OUT/host_step_$DEVICE.md" >> "$R.md" && note ""
if [ "$EXTRAS" != 1 ]; then
    note "Done (EXTRAS=0): $(( BUDGET_S - (DEADLINE - $(date +%s)) )) s of the ${BUDGET_S} s budget."
    exit 0
fi
stage 45 "train fp32 (TF32)" "$PY" "${P[@]}" --stages train --precision fp32
if [ "$SIZE" = paper ]; then SPLIT=(--sizes "paper (CLIP, 8 x 4096)" --steps 5); else SPLIT=(--sizes tiny --steps 1); fi
stage 40 "split vs concat first layer" "$PY" benchmarks/split_first_layer.py --device "$DEVICE" "${SPLIT[@]}" \
    --modes per_image --precisions "$([ "$DEVICE" = cuda ] && echo bf16 || echo fp32)" --infer 64 4096 \
    --out "$OUT/split_first_layer_$DEVICE.md" --json "$OUT/split_first_layer_$DEVICE.json"
[ -f "$OUT/split_first_layer_$DEVICE.md" ] && cat "$OUT/split_first_layer_$DEVICE.md" >> "$R.md" && note ""
if [ "$COMPILE" = 1 ]; then
    stage 240 "train bf16 + torch.compile" "$PY" "${P[@]}" --stages train --compile
else
    note "- train.compile: true not run (COMPILE=0)"
    printf '{"stage": "train", "compile": true, "skipped": "COMPILE=0"}\n' >> "$R.jsonl"
fi
note "Done: $(( BUDGET_S - (DEADLINE - $(date +%s)) )) s of the ${BUDGET_S} s budget."
