"""Pretraining, midtraining and SFT of a nanochat-style GPT: `python -m lanbot.train stage=mid|sft`.

    python -m lanbot.train stage=mid identity=sage model=tiny
    python -m lanbot.train stage=sft identity=sage model=tiny
    python -m lanbot.train -m stage=mid model=tiny mix=default,no_identity identity=lanbot,sage
    torchrun --nproc_per_node=2 -m lanbot.train stage=mid hydra.run.dir=outputs/runs/ddp

The work is lanbot.training.run.train (the training package: model, optimizers, packing, mix, checkpoints);
checkpoints are atomic and a killed run resumes from its last one.
"""

from __future__ import annotations

from lanbot.core.app import run_app
from lanbot.training.run import train_app


def main() -> None:
    run_app("train", train_app)


if __name__ == "__main__":
    main()
