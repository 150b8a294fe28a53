#!/usr/bin/env bash
# base + mid + sft at nanochat's d20 shape (561M parameters) on one GPU, then tokens/s and MFU of each stage,
# sized to fit one 10-minute command on an H100/H200 (about 2 minutes of base, 1 of mid, 1 of sft, plus start-up).
#
#   bash scripts/gpu_d20.sh                                  # corpus=bundled (installed by setup.sh, offline)
#   FINEWEB_DIR=/data/fineweb-shards bash scripts/gpu_d20.sh # corpus=fineweb from local parquet shards
#   BASE_STEPS=200 MODEL=d20 COMPILE=true bash scripts/gpu_d20.sh
#
# nanochat's own base_train on the same GPU and shape, side by side (a nanochat checkout with its data shards):
#   cd $NANOCHAT_DIR && python -m scripts.base_train --depth=20 --num_iterations=60 --device_batch_size=32
#   (it prints tok/sec and mfu each step; its published figures: about 41% MFU at d12 and 46% at d18 on H100).
# Both count FLOPs the same way (6 x matmul parameters + 12 x layers x heads x head_dim x seq per token) against
# 989 TFLOP/s bf16 dense for an H100/H200, so the two MFU columns compare directly.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PY:-.venv/bin/python}"
MODEL="${MODEL:-d20}"
BASE_STEPS="${BASE_STEPS:-60}"
MID_STEPS="${MID_STEPS:-40}"
SFT_STEPS="${SFT_STEPS:-20}"
COMPILE="${COMPILE:-true}"
ROOT="${ROOT:-outputs/gpu}"
export WANDB_MODE="${WANDB_MODE:-offline}"
[ -x "$PY" ] || bash scripts/setup.sh  # a fresh GPU box: setup picks PyPI's CUDA torch when nvidia-smi answers
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
if [ -n "${FINEWEB_DIR:-}" ]; then CORPUS=(corpus=fineweb "corpus.path=$FINEWEB_DIR"); else CORPUS=(corpus=bundled); fi
# nanochat's d20 batch: 524,288 tokens a step = 32 rows x 2,048 tokens x 8 accumulation steps on one GPU
COMMON=(model="$MODEL" "${CORPUS[@]}" paths.root="$ROOT" logger=none train.device=cuda train.compile="$COMPILE"
        train.overwrite=true train.resume=false)
start=$(date +%s)
"$PY" -m lanbot.train stage=base "${COMMON[@]}" train.max_steps="$BASE_STEPS" train.device_batch_size=32 \
  train.total_batch_tokens=524288 train.eval_every="$BASE_STEPS" train.checkpoint_every=100000 train.log_every=5 \
  train.val_tokens=1048576 train.tokenizer_chars=30000000 hydra.run.dir="$ROOT/runs/base"
"$PY" -m lanbot.generate identity=sage paths.root="$ROOT" logger=none
for stage in mid sft; do
  steps=$MID_STEPS; [ "$stage" = sft ] && steps=$SFT_STEPS
  "$PY" -m lanbot.train stage=$stage identity=sage "${COMMON[@]}" train.max_steps="$steps" \
    train.device_batch_size=32 train.total_batch_tokens=65536 train.eval_every="$steps" train.log_every=5 \
    train.eval_at_end=false hydra.run.dir="$ROOT/runs/$stage"
done
echo "whole run: $(( $(date +%s) - start )) s"
# tokens/s and MFU per stage, from each run's metrics.jsonl (the first 3 steps, compile and warm-up, left out)
"$PY" - "$ROOT" <<'EOF'
import json, sys
from pathlib import Path
root = Path(sys.argv[1])
for stage in ("base", "mid", "sft"):
    rows = [json.loads(line) for line in (root / "runs" / stage / "metrics.jsonl").read_text().splitlines()]
    rows = [r for r in rows if "tok_per_sec" in r and r.get("step", 0) > 3]
    if not rows:
        print(f"{stage}: no steps logged after warm-up"); continue
    tps = sorted(r["tok_per_sec"] for r in rows)[len(rows) // 2]
    mfus = sorted(r["mfu"] for r in rows if "mfu" in r)
    mfu = f"{100 * mfus[len(mfus) // 2]:.1f}%" if mfus else "n/a (no mfu logged: base logs it on CUDA)"
    print(f"{stage:>4}: median {tps:,.0f} tokens/s, MFU {mfu}, final train loss {rows[-1]['train/loss']:.3f}")
EOF
