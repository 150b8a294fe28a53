"""Does the model say who it is? `python -m lanbot.evaluate identity=sage` scores a checkpoint on held-out probes.

    python -m lanbot.evaluate identity=sage                       # the newest sft checkpoint of Sage
    python -m lanbot.evaluate eval.checkpoint=outputs/checkpoints/sage/default/tiny/mid
    python -m lanbot.evaluate identity=sage eval.stage=mid eval.samples=8 eval.families=[identity,pressure]

The work is lanbot.evaluation.evaluate_checkpoint.evaluate_run (the evaluation package: engine, probes, scores,
judge, control); the scores go to eval.json (run folder and checkpoint) and wandb.
"""

from __future__ import annotations

from lanbot.core.app import run_app
from lanbot.evaluation.evaluate_checkpoint import evaluate_app


def main() -> None:
    run_app("evaluate", evaluate_app)


if __name__ == "__main__":
    main()
