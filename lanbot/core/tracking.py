"""Run tracking: wandb (offline unless told otherwise) and, always, `metrics.jsonl` in the run folder.

Every app opens one Tracker per run. The run folder keeps its own copy of every metric so that
`lanbot.compare` and other offline tools never need wandb; wandb gets the same figures plus tables
and histograms, and artifacts: the data folder (generate), the checkpoint (train) and eval.json (evaluate),
each run using the one before it, so the lineage base -> mid -> sft -> evaluation is wandb's own. The config
given to wandb is lanbot's resolved config, which never holds secrets.

wandb as its users expect: every run is named after what it is (`run_name`); an artifact carries its files
up to `logger.artifact_max_mb` (so a run synced from another machine has them) and holds `file://` references
only above that, saying so on the console and in its metadata (`stored`).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from lanbot.core.config import to_plain
from lanbot.core.files import io_error, make_dirs, write_json_atomic
from lanbot.core.layout import METRICS_FILE, SUMMARY_FILE

# A tiny or d4 checkpoint (6-40 MB) and any data folder of the presets (under 10 MB) are copied; a d20
# checkpoint (about 2 GB) is a reference: copying it would double its disk use for every run that logs it.
ARTIFACT_MAX_MB = 100


# The artifact names are the lineage's keys: lanbot.train uses what lanbot.generate logged and lanbot.evaluate
# what lanbot.train logged, by name, so each name is built here only. The identity part is the identity's
# folder name (`identity_slug`), as in the data and checkpoint folders the artifacts hold.


def base_artifact(cfg: DictConfig) -> str:
    """The wandb artifact of a base checkpoint: `model-base-<corpus>-<model>` (where lineage starts)."""
    return f"model-base-{cfg.corpus.name}-{cfg.model.name}"


def data_artifact(identity: str) -> str:
    """The wandb artifact of an identity's data folder: `data-<identity>` (lanbot.generate logs it)."""
    from lanbot.core.identity import identity_slug

    return f"data-{identity_slug(identity)}"


def slot_artifact(kind: str, identity: str, mix: object, model: object, stage: object) -> str:
    """The wandb artifact of a checkpoint slot: `model-sage-default-tiny-sft` (the checkpoint, lanbot.train)
    or `eval-sage-default-tiny-sft` (its eval.json, lanbot.evaluate)."""
    from lanbot.core.identity import identity_slug

    return f"{kind}-{identity_slug(identity)}-{mix}-{model}-{stage}"


def run_name(cfg: DictConfig, job_type: str) -> str:
    """The wandb display name of a run: what it is, so runs read apart in the UI without opening them."""
    from lanbot.core.identity import identity_slug  # the folder's slug: the same name the data folder has

    get = cfg.get
    model = str((get("model") or {}).get("name", "?"))
    if job_type == "base":
        return f"base-{(get('corpus') or {}).get('name', '?')}-{model}"
    who = identity_slug(str((get("identity") or {}).get("name", "?")))
    mix = str((get("mix") or {}).get("name", "?"))
    if job_type == "generate":
        return f"data-{who}-{(get('data') or {}).get('preset', (get('data') or {}).get('name', '?'))}"
    if job_type == "eval":
        stage = str((get("eval") or {}).get("stage") or "sft")
        return f"eval-{who}-{mix}-{model}-{stage}"
    return f"{job_type}-{who}-{mix}-{model}"


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
        self.run_dir = make_dirs(run_dir)
        try:
            self._metrics = open(self.run_dir / METRICS_FILE, "a", encoding="utf-8")
        except OSError as exc:
            raise io_error("opening", self.run_dir / METRICS_FILE, exc) from None
        self._summary: dict[str, Any] = {}
        self.wandb_run = None
        self.inputs: list[dict[str, str]] = []  # artifacts this run used (name, type, digest)
        self.outputs: set[str] = set()  # artifacts this run logged: never also an input of it
        logger = cfg.get("logger") or {}
        self.max_mb = float(logger.get("artifact_max_mb", ARTIFACT_MAX_MB))
        self.max_bytes = int(self.max_mb * 2**20)
        if logger.get("kind") == "wandb":
            import wandb  # imported here: apps with logger=none never pay for it

            from lanbot.core.secrets import check_no_secret

            config = to_plain(cfg)
            check_no_secret(json.dumps(config, default=str), "the wandb run's config", shapes=True)

            os.environ.setdefault("WANDB_SILENT", "true")
            if not os.environ.get("WANDB_MODE", "x").strip():  # `WANDB_MODE=` (empty) means unset, not an error
                os.environ.pop("WANDB_MODE")
            self.wandb_run = wandb.init(
                project=logger.get("project") or "lanbot",
                entity=logger.get("entity"),
                mode=logger.get("mode") or "offline",
                group=group or logger.get("group"),
                job_type=job_type,
                name=name or run_name(cfg, job_type),
                tags=[str(t) for t in [*(logger.get("tags") or []), *(tags or [])]],
                config=config,
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
        try:
            self._metrics.write(json.dumps(row) + "\n")
            self._metrics.flush()
        except OSError as exc:
            raise io_error("appending to", self.run_dir / METRICS_FILE, exc) from None
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

    def _artifact(self, name: str, kind: str, path: str | Path, reference: bool, metadata: dict | None,
                  files: tuple[str, ...] | None = None):
        import wandb

        path = Path(path).resolve()
        if files is not None:  # these files of the folder only (a checkpoint's weights, not its later eval.json)
            members = [path / f for f in files if (path / f).is_file()]
        elif path.is_dir():
            members = sorted(p for p in path.rglob("*") if p.is_file() and not p.is_symlink())
        else:
            members = [path]
        size = sum(p.stat().st_size for p in members)
        by_reference = reference and size > self.max_bytes
        stored = "reference" if by_reference else "files"
        artifact = wandb.Artifact(name, type=kind, metadata={**(metadata or {}), "stored": stored, "bytes": size})
        base = path if path.is_dir() else path.parent
        for member in members:
            relative = member.relative_to(base).as_posix()
            if by_reference:  # checksums only: too big to copy into wandb's cache
                artifact.add_reference(member.as_uri(), name=relative)
            else:
                artifact.add_file(str(member), name=relative)
        return artifact, size, by_reference

    def log_artifact(self, name: str, kind: str, path: str | Path, reference: bool = True,
                     metadata: dict | None = None, aliases: list[str] | None = None,
                     files: tuple[str, ...] | None = None) -> None:
        """`path` (a folder or a file) as an output artifact of this run, its files copied up to
        `logger.artifact_max_mb` and by reference (file:// with checksums) above it (`reference=False`: always
        copied). Its metadata lists the inputs this run used (`inputs`: name, type, digest), offline too."""
        if self.wandb_run is not None and Path(path).exists():
            meta = {**(metadata or {}), "inputs": list(self.inputs)}
            artifact, size, by_reference = self._artifact(name, kind, path, reference, meta, files)
            if by_reference:
                import sys

                print(f"wandb: artifact {name} holds file:// references, not its files ({size / 2**20:,.1f} MB > "
                      f"logger.artifact_max_mb={self.max_mb:g}); raise it to copy them", file=sys.stderr)
            self.outputs.add(name)
            self.wandb_run.log_artifact(artifact, aliases=aliases)

    def use_artifact(self, name: str, kind: str, path: str | Path, files: tuple[str, ...] | None = None) -> None:
        """`path` as an input of this run, built with the same name and checksums as the run that logged it,
        so wandb links the two (data -> train -> evaluate). wandb refuses inputs offline: there the input is
        recorded by digest in the summary (`lineage/inputs`) and in the metadata of the artifacts logged after."""
        if self.wandb_run is None or not Path(path).exists() or name in self.outputs:
            return
        artifact, _, _ = self._artifact(name, kind, path, True, None, files)
        self.inputs.append({"name": name, "type": kind, "digest": artifact.manifest.digest()})
        if self.wandb_run.settings._offline:
            self.summary({"lineage/inputs": list(self.inputs)})
        else:
            self.wandb_run.use_artifact(artifact)

    def finish(self) -> None:
        self._metrics.close()
        if self.wandb_run is not None:
            self.wandb_run.finish()
            self.wandb_run = None

    def __enter__(self) -> Tracker:
        return self

    def __exit__(self, *exc) -> None:
        self.finish()
