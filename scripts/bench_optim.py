"""Optimizer benchmark: AdamW against Muon (`train.optimizer`) on lanbot's own task.

Generates one identity's data folder (template backend), then runs the real training app (stage=mid from
scratch, eval off) once per optimizer and matrix learning rate, all with the same seed, data and steps,
and prints the held-out validation loss (overall and per source), bits per byte and time per step.

    .venv/bin/python scripts/bench_optim.py                                 # tiny, 200 steps, lr 3e-3
    .venv/bin/python scripts/bench_optim.py --lrs 0.003,0.01 --steps 300
    .venv/bin/python scripts/bench_optim.py --model d4 --optimizers muon --lrs 0.02
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from lanbot.core.config import compose_config
from lanbot.generation.generate_data import generate
from lanbot.training.run import train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="tiny")
    parser.add_argument("--identity", default="lanbot")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--optimizers", default="adamw,muon")
    parser.add_argument("--lrs", default="0.003", help="matrix learning rates, comma-separated")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    os.environ.setdefault("WANDB_MODE", "disabled")
    root = Path(tempfile.mkdtemp(prefix="lanbot-bench-optim-"))
    base = [f"paths.root={root}", f"identity={args.identity}", "logger=none", f"seed={args.seed}"]
    generate(compose_config(base), root / "gen")
    results = []
    for name in args.optimizers.split(","):
        for lr in (float(x) for x in args.lrs.split(",")):
            cfg = compose_config([*base, "stage=mid", f"model={args.model}", f"train.max_steps={args.steps}",
                                  f"train.optimizer={name}", f"train.matrix_lr={lr}", "train.eval_at_end=false", "train.init_from=scratch",
                                  "train.overwrite=true", f"train.eval_every={args.steps}"])
            t0 = time.perf_counter()
            summary = train(cfg, root / f"run-{name}-{lr}")
            per_step = (time.perf_counter() - t0) / args.steps
            results.append((name, lr, summary, per_step))
    sources = sorted(k[9:] for k in results[0][2] if k.startswith("val/loss/"))
    print(f"\n{args.model}, {args.steps} steps of mid from scratch, seed {args.seed}, identity {args.identity}:")
    header = ["optimizer", "matrix_lr", "val/loss", "val/bpb", *sources, "s/step"]
    print(" | ".join(header))
    for name, lr, summary, per_step in results:
        row = [name, f"{lr:g}", f"{summary['val/loss']:.4f}", f"{summary['val/bpb']:.4f}",
               *(f"{summary[f'val/loss/{s}']:.4f}" for s in sources), f"{per_step:.3f}"]
        print(" | ".join(row))


if __name__ == "__main__":
    main()
