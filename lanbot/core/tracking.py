"""Run tracking: wandb (offline unless told otherwise) and, always, `metrics.jsonl` in the run folder.

Every app opens one Tracker per run. The run folder keeps its own copy of every metric so that
`lanbot.compare` and other offline tools never need wandb; wandb gets the same figures plus tables
and histograms. The config given to wandb is lanbot's resolved config, which never holds secrets.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from lanbot.core.config import to_plain
from lanbot.core.files import write_json_atomic
from lanbot.core.layout import METRICS_FILE, SUMMARY_FILE


class Tracker:
    """Logs metrics to `<run_dir>/metrics.jsonl` and, with `logger=wandb`, to a wandb run."""

    def __init__(
        self,
        cfg: DictConfig,
        run_dir: str | Path,
        job_type: str,
        name: str | None = None,
        tags: list[str] | None = None,
        group: str | None = None,
    ) -> None:
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._metrics = open(self.run_dir / METRICS_FILE, "a", encoding="utf-8")
        self._summary: dict[str, Any] = {}
        self.wandb_run = None
        logger = cfg.get("logger") or {}
        if logger.get("kind") == "wandb":
            import wandb  # imported here: apps with logger=none never pay for it

            os.environ.setdefault("WANDB_SILENT", "true")
            if not os.environ.get("WANDB_MODE", "x").strip():  # `WANDB_MODE=` (empty) means unset, not an error
                os.environ.pop("WANDB_MODE")
            self.wandb_run = wandb.init(
                project=logger.get("project") or "lanbot",
                entity=logger.get("entity"),
                mode=logger.get("mode") or "offline",
                group=group or logger.get("group"),
                job_type=job_type,
                name=name,
                tags=[str(t) for t in [*(logger.get("tags") or []), *(tags or [])]],
                config=to_plain(cfg),
                dir=str(self.run_dir),
                reinit="finish_previous",
                settings=wandb.Settings(console="off", x_disable_stats=True),
            )

    @property
    def wandb_dir(self) -> str | None:
        """The folder wandb writes this run to (for `wandb sync` when offline)."""
        return getattr(self.wandb_run, "dir", None) and str(Path(self.wandb_run.dir).parent)

    def log(self, metrics: dict[str, Any], step: int | None = None) -> None:
        """One row of metrics, to metrics.jsonl and wandb."""
        row = {"time": round(time.time(), 3), **({"step": step} if step is not None else {}), **metrics}
        self._metrics.write(json.dumps(row) + "\n")
        self._metrics.flush()
        if self.wandb_run is not None:
            self.wandb_run.log(metrics, step=step)

    def summary(self, values: dict[str, Any]) -> None:
        """Final figures of the run: wandb's summary and `summary.json` in the run folder."""
        self._summary.update(values)
        write_json_atomic(self.run_dir / SUMMARY_FILE, self._summary)
        if self.wandb_run is not None:
            self.wandb_run.summary.update(values)

    def table(self, key: str, columns: list[str], rows: list[list[Any]]) -> None:
        """A table (sample conversations, sampled answers): wandb only, the run folder has the files."""
        if self.wandb_run is not None:
            import wandb

            self.wandb_run.log({key: wandb.Table(columns=columns, data=rows)})

    def histogram(self, key: str, values: list[float]) -> None:
        """A histogram of values: wandb only."""
        if self.wandb_run is not None and values:
            import wandb

            self.wandb_run.log({key: wandb.Histogram(values)})

    def finish(self) -> None:
        self._metrics.close()
        if self.wandb_run is not None:
            self.wandb_run.finish()
            self.wandb_run = None

    def __enter__(self) -> Tracker:
        return self

    def __exit__(self, *exc) -> None:
        self.finish()
