#!/usr/bin/env bash
# The CPU proof: generate (template) -> mid -> sft with model=tiny, plus the no_identity control.
# Usage: bash scripts/train_demo.sh [identity]   (default lanbot; about 10 minutes on 2 CPU cores)
set -euo pipefail
IDENTITY="${1:-lanbot}"
PY="${PY:-.venv/bin/python}"
export WANDB_MODE="${WANDB_MODE:-offline}"
$PY -m lanbot.generate identity="$IDENTITY"
$PY -m lanbot.generate identity=assistant   # the control's data: a plain assistant, no personality
for MIX in default no_identity; do
  $PY -m lanbot.train stage=mid model=tiny identity="$IDENTITY" mix="$MIX" train.overwrite=true
  $PY -m lanbot.train stage=sft model=tiny identity="$IDENTITY" mix="$MIX" train.overwrite=true
done
# val/loss/identity of each run: the default mix should be far below the control
for MIX in default no_identity; do
  $PY -c "import json,sys; m=json.load(open(sys.argv[1])); print(sys.argv[2], 'val/loss/identity', m['val_losses'].get('identity'))" \
    outputs/checkpoints/"$IDENTITY"/$MIX/tiny/sft/meta.json "$MIX"
done
