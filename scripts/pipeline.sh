#!/usr/bin/env bash
# The end-to-end demo on CPU: generate -> mid -> sft (each sft run ends with lanbot.evaluate) -> compare,
# for a sweep over identities and data mixes with model=tiny (about 15-20 minutes on 2 CPU cores).
#
#   bash scripts/pipeline.sh                         # identities lanbot,sage x mixes default,no_identity
#   IDENTITIES=sage MIXES=default,identity_heavy bash scripts/pipeline.sh train.max_steps=300
#   SKIP_GENERATE=1 bash scripts/pipeline.sh         # keep the data folders already there (e.g. LLM-written)
#   IDENTITY_COUNT=500 bash scripts/pipeline.sh      # identity conversations generated per identity (default 1000)
#
# Extra arguments are Hydra overrides for both training stages. Results: outputs/multirun/<date>/<time>-{mid,sft}/
# (one run folder per job: metrics.jsonl, summary.json, eval.json) and the comparison in <...>-sft/compare/.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PY:-.venv/bin/python}"
IDENTITIES="${IDENTITIES:-lanbot,sage}"
MIXES="${MIXES:-default,no_identity}"
MODEL="${MODEL:-tiny}"
# 1,000 identity conversations instead of data=all's 500: more distinct ways of being asked who it is, so the
# tiny model generalises to the held-out probes (the default mix still takes them at 2 epochs; same steps).
IDENTITY_COUNT="${IDENTITY_COUNT:-1000}"
ROOT="${ROOT:-outputs}"
export WANDB_MODE="${WANDB_MODE:-offline}"
SWEEP="$ROOT/multirun/$(date +%Y-%m-%d/%H-%M-%S)"
# job folders named by the swept choices only (paths.root may hold slashes)
NAMES="hydra.job.config.override_dirname.exclude_keys=[paths.root,stage,model,train.overwrite,train.eval_at_end]"
start=$(date +%s)
step() { echo; echo "== $* ($(( $(date +%s) - start )) s)"; }

if [ -z "${SKIP_GENERATE:-}" ]; then
  step "generate: the template backend, offline"
  for identity in ${IDENTITIES//,/ }; do
    "$PY" -m lanbot.generate identity="$identity" data.counts.identity="$IDENTITY_COUNT" paths.root="$ROOT"
  done
fi

step "midtraining: identity=$IDENTITIES x mix=$MIXES, model=$MODEL"
"$PY" -m lanbot.train -m stage=mid model="$MODEL" identity="$IDENTITIES" mix="$MIXES" paths.root="$ROOT" \
  train.overwrite=true hydra.sweep.dir="$SWEEP-mid" "$NAMES" "$@"

step "SFT from each mid checkpoint, then the evaluation on the held-out probes (train.eval_at_end)"
"$PY" -m lanbot.train -m stage=sft model="$MODEL" identity="$IDENTITIES" mix="$MIXES" paths.root="$ROOT" \
  train.overwrite=true train.eval_at_end=true hydra.sweep.dir="$SWEEP-sft" "$NAMES" "$@"

step "compare: table, loss curves and score bars"
"$PY" -m lanbot.compare "$SWEEP-sft" "$SWEEP-mid" compare.out="$SWEEP-sft/compare" \
  hydra.run.dir="$SWEEP-sft/compare/.run"

step "done: report in $SWEEP-sft/compare/report.md"
echo "$SWEEP-sft" > "$ROOT/multirun/latest_pipeline"
