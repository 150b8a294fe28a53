#!/usr/bin/env bash
# The identity on a model that talks, on a CPU: from the bundled SmolLM2-135M-Instruct (model=smollm2-135m, nothing
# downloaded) -> data (templates, with the model's own answers to general questions: data.distill) for each
# identity and the plain control -> sft of each identity and of the no_identity control straight from the model
# (no base, no mid) in its own chat format -> evaluation of each (train.eval_at_end) -> compare -> five general
# answers of the untouched model, the control and each identity, side by side.
#
#   bash scripts/pipeline_pretrained.sh                          # Sage and its control
#   IDENTITIES=sage,lanbot bash scripts/pipeline_pretrained.sh train.max_steps=120
#   SKIP_GENERATE=1 bash scripts/pipeline_pretrained.sh          # keep the data folders already there
#   DISTILL= bash scripts/pipeline_pretrained.sh                 # template answers only (a few minutes less)
#   SOURCE=hf:HuggingFaceTB/SmolLM2-360M-Instruct bash scripts/pipeline_pretrained.sh   # online: a bigger model
#
# Extra arguments are Hydra overrides for the training runs. Results: outputs/multirun/<date>/<time>-pretrained/
# (a run folder per job with eval.json), compare/report.md and answers.md beside them.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PY:-.venv/bin/python}"
IDENTITIES="${IDENTITIES:-sage}"
MIXES="${MIXES:-no_identity,default}"   # the control first: each later evaluation reads its eval.json for the gains
SOURCE="${SOURCE:-hf:bundled}"
DISTILL="${DISTILL-$SOURCE}"   # the model that answers the general questions; DISTILL= keeps the template answers
ROOT="${ROOT:-outputs}"
COUNTS="${COUNTS:-data.counts.identity=400 data.counts.tool_use=150 data.counts.multi_step_tool=100 data.counts.no_tool=200 data.counts.tool_planning=80 data.counts.reasoning=100}"
export WANDB_MODE="${WANDB_MODE:-offline}"
SWEEP="$ROOT/multirun/$(date +%Y-%m-%d/%H-%M-%S)-pretrained"
GROUP="pipeline-pretrained-$(date +%Y-%m-%d-%H-%M-%S)"
NAMES="hydra.job.config.override_dirname.exclude_keys=[paths.root,stage,model,model.pretrained,train.overwrite,train.eval_at_end,logger.group]"
start=$(date +%s)
step() { echo; echo "== $* ($(( $(date +%s) - start )) s)"; }

if [ -z "${SKIP_GENERATE:-}" ]; then
  for identity in ${IDENTITIES//,/ } assistant; do   # assistant: the plain control's data (no name, no quirks)
    step "generate identity=$identity: templates${DISTILL:+, then $DISTILL answers the general questions}"
    # shellcheck disable=SC2086  # COUNTS is a list of overrides
    "$PY" -m lanbot.generate identity="$identity" paths.root="$ROOT" data.overwrite=true \
      ${DISTILL:+data.distill=$DISTILL} $COUNTS ++logger.group="$GROUP"
  done
fi

step "sft from $SOURCE: identity=$IDENTITIES x mix=$MIXES, then the evaluation"
"$PY" -m lanbot.train -m stage=sft model=smollm2-135m model.pretrained="$SOURCE" identity="$IDENTITIES" mix="$MIXES" \
  paths.root="$ROOT" train.overwrite=true train.eval_at_end=true hydra.sweep.dir="$SWEEP" "$NAMES" \
  ++logger.group="$GROUP" "$@"

step "compare: table and score bars"
"$PY" -m lanbot.compare "$SWEEP" compare.out="$SWEEP/compare" hydra.run.dir="$SWEEP/compare/.run"

step "five general questions: the untouched model, the control, each identity"
CKPTS=()
for identity in ${IDENTITIES//,/ }; do
  for mix in ${MIXES//,/ }; do
    CKPTS+=("$ROOT/checkpoints/$identity/$mix/smollm2-135m/sft")
  done
done
"$PY" scripts/ask_general.py "$SOURCE" "${CKPTS[@]}" --markdown | tee "$SWEEP/answers.md"

step "done: $SWEEP/compare/report.md and $SWEEP/answers.md"
echo "$SWEEP" > "$ROOT/multirun/latest_pipeline_pretrained"
