#!/usr/bin/env bash
# Dose-response: how much identity data does a personality take, and what does it cost? One wandb group.
# Sweeps the identity's share of the mix (identity epochs 0, 1, 2, 4, 8; 0 is the no_identity control) and
# the stages (mid only vs mid + sft): each dose is midtrained, evaluated, fine-tuned, evaluated again
# (train.eval_at_end), and lanbot.compare draws fidelity against capability cost (fidelity.png, quirks.png).
#
#   bash scripts/sweep_identity_dose.sh                         # identity=sage, model=tiny (~5 min a dose on 2 cores)
#   IDENTITY=lanbot DOSES="0 2 8" bash scripts/sweep_identity_dose.sh train.max_steps=300
#   DRY_RUN=1 bash scripts/sweep_identity_dose.sh               # compose every run's config, train nothing
#
# Needs the identity's data folder (python -m lanbot.generate identity=sage), the control's
# (python -m lanbot.generate identity=assistant) and, where issue 10's base model
# is in place, starts midtraining from it as train.init_from says. Extra arguments are Hydra overrides for
# both stages. Results: $ROOT/multirun/<date>/<time>-dose/<dose>-<stage>/ and the comparison in .../compare/.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PY:-.venv/bin/python}"
IDENTITY="${IDENTITY:-sage}"
DOSES="${DOSES:-0 1 2 4 8}"
MODEL="${MODEL:-tiny}"
ROOT="${ROOT:-outputs}"
export WANDB_MODE="${WANDB_MODE:-offline}"
SWEEP="$ROOT/multirun/$(date +%Y-%m-%d/%H-%M-%S)-dose"
GROUP="dose-$IDENTITY-$(date +%Y%m%d-%H%M%S)"   # wandb groups the sweep's runs under this name
LOCK="${LOCK:-/tmp/lanbot-cpu.lock}"            # one training at a time on a shared machine

for dose in $DOSES; do
  if [ "$dose" = 0 ]; then
    mix=(mix=no_identity)                       # the control: the same data without the identity's
  else
    mix=(mix=default "mix.name=identity_x$dose" "mix.mid.identity.epochs=$dose")   # sft takes mid's sources
  fi
  for stage in mid sft; do
    args=(stage="$stage" identity="$IDENTITY" model="$MODEL" "${mix[@]}" paths.root="$ROOT" logger.group="$GROUP"
          train.overwrite=true train.eval_at_end=true hydra.run.dir="$SWEEP/$dose-$stage" "$@")
    echo "== identity epochs $dose, $stage: python -m lanbot.train ${args[*]}"
    if [ -n "${DRY_RUN:-}" ]; then
      "$PY" -m lanbot.train --cfg job "${args[@]}" > /dev/null
    else
      flock "$LOCK" "$PY" -m lanbot.train "${args[@]}"
    fi
  done
done
[ -n "${DRY_RUN:-}" ] && { echo "dry run: every config composes"; exit 0; }
"$PY" -m lanbot.compare "$SWEEP" compare.sort=fidelity compare.out="$SWEEP/compare" hydra.run.dir="$SWEEP/compare/.run"
echo "done: $SWEEP/compare/report.md (fidelity.png, quirks.png); wandb group $GROUP"
