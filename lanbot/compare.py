"""Runs side by side: `python -m lanbot.compare outputs/multirun/<date>/<time>` (a table, plots, compare.md).

    python -m lanbot.compare outputs/multirun/2026-12-01/10-00-00 compare.sort=identity_rate
    python -m lanbot.compare compare.source=wandb compare.project=lanbot
    python -m lanbot.compare outputs/runs/2026-12-01/10-00-00_train outputs/runs/2026-12-01/11-00-00_train

The work is lanbot.comparison.compare_runs (the comparison package; the fidelity-against-cost figure is
lanbot.evaluation.tradeoff, which the evaluation shares).
"""

from __future__ import annotations

from lanbot.comparison.compare_runs import compare_app
from lanbot.core.app import run_app


def main() -> None:
    run_app("compare", compare_app, positional="compare.paths")


if __name__ == "__main__":
    main()
