#!/usr/bin/env bash
# The end-to-end demo on CPU: base (once) -> generate -> mid -> sft (each sft run ends with lanbot.evaluate) ->
# compare, for a sweep over identities and data mixes with model=tiny. The base is pretrained once per corpus and
# model (about 19 minutes on 2 CPU cores for tiny) and kept: a second pipeline run starts from it; about 40
# minutes in all for the default sweep (measured 37 with a 1,200-step base).
#
#   bash scripts/pipeline.sh                         # identities lanbot,sage x mixes no_identity,default
#   IDENTITIES=sage MIXES=default,identity_heavy bash scripts/pipeline.sh train.max_steps=300
#   SKIP_GENERATE=1 bash scripts/pipeline.sh         # keep the data folders already there (e.g. LLM-written)
#   IDENTITY_COUNT=500 bash scripts/pipeline.sh      # identity conversations generated per identity (default 1000)
#   CORPUS=local BASE_ARGS="corpus.path=/my/texts train.max_steps=600" bash scripts/pipeline.sh
#   REBASE=1 bash scripts/pipeline.sh                 # pretrain the base again even if one is finished
#
# Extra arguments are Hydra overrides for both training stages. Results: outputs/multirun/<date>/<time>-{mid,sft}/
# (one run folder per job: metrics.jsonl, summary.json, eval.json, where eval.json holds capability/corpus_bpb
# and capability/bpb_delta_vs_base beside the identity scores) and the comparison in <...>-sft/compare/.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PY:-.venv/bin/python}"
IDENTITIES="${IDENTITIES:-lanbot,sage}"
MIXES="${MIXES:-no_identity,default}"   # the control first: each later evaluation reads its eval.json for the gains
MODEL="${MODEL:-tiny}"
CORPUS="${CORPUS:-bundled}"
# 1,000 identity conversations instead of data=all's 500: more distinct ways of being asked who it is, so the
# tiny model generalises to the held-out probes (the default mix still takes them at 2 epochs; same steps).
IDENTITY_COUNT="${IDENTITY_COUNT:-1000}"
ROOT="${ROOT:-outputs}"
export WANDB_MODE="${WANDB_MODE:-offline}"
SWEEP="$ROOT/multirun/$(date +%Y-%m-%d/%H-%M-%S)"
# one wandb group for the whole pipeline (base, data, mid, sft and their evaluations), so its runs sit together
GROUP="pipeline-$(date +%Y-%m-%d-%H-%M-%S)"
# job folders named by the swept choices only (paths.root may hold slashes)
NAMES="hydra.job.config.override_dirname.exclude_keys=[paths.root,stage,model,corpus,train.overwrite,train.eval_at_end,logger.group]"
start=$(date +%s)
step() { echo; echo "== $* ($(( $(date +%s) - start )) s)"; }

BASE="$ROOT/checkpoints/base/$CORPUS/$MODEL"
if [ -n "${REBASE:-}" ] || ! grep -q '"finished": true' "$BASE/meta.json" 2>/dev/null; then
  step "base: pretrain model=$MODEL on corpus=$CORPUS, once for every identity and mix"
  # shellcheck disable=SC2086  # BASE_ARGS is a list of overrides
  "$PY" -m lanbot.train stage=base model="$MODEL" corpus="$CORPUS" paths.root="$ROOT" train.overwrite=true \
    hydra.run.dir="$SWEEP-base" ++logger.group="$GROUP" ${BASE_ARGS:-}
else
  step "base: keeping the finished base in $BASE (REBASE=1 trains it again)"
fi

if [ -z "${SKIP_GENERATE:-}" ]; then
  step "generate: the template backend, offline"
  for identity in ${IDENTITIES//,/ }; do
    "$PY" -m lanbot.generate identity="$identity" data.counts.identity="$IDENTITY_COUNT" paths.root="$ROOT" \
      ++logger.group="$GROUP"
  done
  # mix=no_identity (the control) trains on a plain assistant's conversations: no name, no quirks
  "$PY" -m lanbot.generate identity=assistant paths.root="$ROOT" ++logger.group="$GROUP"
fi

step "midtraining from the base: identity=$IDENTITIES x mix=$MIXES, model=$MODEL"
"$PY" -m lanbot.train -m stage=mid model="$MODEL" corpus="$CORPUS" identity="$IDENTITIES" mix="$MIXES" paths.root="$ROOT" \
  train.overwrite=true hydra.sweep.dir="$SWEEP-mid" "$NAMES" ++logger.group="$GROUP" "$@"

step "SFT from each mid checkpoint, then the evaluation on the held-out probes (train.eval_at_end)"
"$PY" -m lanbot.train -m stage=sft model="$MODEL" corpus="$CORPUS" identity="$IDENTITIES" mix="$MIXES" paths.root="$ROOT" \
  train.overwrite=true train.eval_at_end=true hydra.sweep.dir="$SWEEP-sft" "$NAMES" ++logger.group="$GROUP" "$@"

step "compare: table, loss curves and score bars"
"$PY" -m lanbot.compare "$SWEEP-sft" "$SWEEP-mid" compare.out="$SWEEP-sft/compare" \
  hydra.run.dir="$SWEEP-sft/compare/.run"

step "done: report in $SWEEP-sft/compare/report.md"
echo "$SWEEP-sft" > "$ROOT/multirun/latest_pipeline"
