"""Generate an identity's training conversations: the pipeline behind `python -m lanbot.generate`.

Check what is asked (`plan_targets`) -> open the identity's data folder, which resumes what is already
there -> the configured backend writes what is missing (lanbot.generation.backends: template or LLM, one
contract), every conversation validated and deduplicated -> all_conversations.jsonl -> stats.json ->
wandb and the console. A run killed half-way keeps every line it wrote; run again, it finishes the rest
with no duplicates.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from lanbot.core.conversation import TYPE_SPECS, TYPES
from lanbot.core.identity import ModelIdentity, to_identity
from lanbot.core.tracking import Tracker
from lanbot.generation.backends import GenerationError, backend_for
from lanbot.generation.datafolder import DataFolder
from lanbot.generation.personas import load_personas
from lanbot.generation.report import SAMPLES_PER_TYPE, log_to_tracker, print_summary, sample_rows
from lanbot.generation.stats import compute_stats

__all__ = ["GenerationError", "generate", "plan_targets"]


def plan_targets(data: DictConfig) -> dict[str, int]:
    """{type: conversations wanted} from the data preset: `data.count` sets every selected type's count."""
    types = list(data.types or [])
    unknown = [t for t in types if t not in TYPES]
    if unknown:
        raise GenerationError(
            f"data.types has unknown type(s) {', '.join(map(repr, unknown))}; the types are {', '.join(TYPES)} "
            "(or pick a preset: data=all, identity, agentic, reasoning)."
        )
    if not types:
        raise GenerationError(f"data.types is empty; select at least one of {', '.join(TYPES)}.")
    counts = dict(data.get("counts") or {})
    unknown = [t for t in counts if t not in TYPES]
    if unknown:
        raise GenerationError(
            f"data.counts has unknown type(s) {', '.join(map(repr, unknown))}; the types are {', '.join(TYPES)}."
        )
    targets = {}
    for kind in dict.fromkeys(types):
        value, where = (data.count, "data.count") if data.get("count") is not None else (
            counts.get(kind, TYPE_SPECS[kind].count), f"data.counts.{kind}")
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise GenerationError(
                f"{where}={value!r} is not a count; it must be a whole number >= 0 (e.g. {where}=100)."
            )
        targets[kind] = value
    return targets


def generate(cfg: DictConfig, run_dir: str | Path, preset: str | None = None, console: Any = None) -> dict:
    """The whole run for a composed config: returns stats.json's contents. Raises GenerationError."""
    start = time.perf_counter()
    identity = to_identity(cfg.identity)
    preset = preset or cfg.data.get("name") or "custom"
    targets = plan_targets(cfg.data)  # every check before anything is written or removed
    backend_for(cfg.backend).check(cfg.backend)  # a missing API key stops the run before any folder or wandb run
    folder_root = Path(cfg.paths.data_dir)
    overwrite = bool(cfg.data.get("overwrite"))
    # overwrite empties the folder: load the personas first, so a bad persona source loses nothing
    personas = load_personas(cfg.personas, int(cfg.seed), sum(targets.values())) if overwrite else None
    with DataFolder(folder_root, list(targets), overwrite=overwrite) as folder:
        resumed = {k: folder.count(k) for k in targets}
        missing = {k: max(0, n - resumed[k]) for k, n in targets.items()}
        if personas is None:
            personas = load_personas(cfg.personas, int(cfg.seed), sum(missing.values()))
        tracker = Tracker(cfg, run_dir, job_type="generate", name=f"generate-{identity.slug}-{preset}",
                          tags=[identity.slug, str(preset)])
        wandb_dir = tracker.wandb_dir
        try:
            figures = _write(cfg, identity, personas, folder, missing, tracker, console)
            invalid = figures.pop("invalid", {})  # {type: invalid conversations dropped}
            combined = folder.finalize()
            extra = {
                "identity": identity.name, "identity_slug": identity.slug, "preset": preset,
                "targets": targets, "resumed_from": resumed,
                "duplicates_dropped": {k: folder.duplicates(k) for k in targets},
                "invalid_dropped": {k: invalid.get(k, 0) for k in targets},
                "seconds": round(time.perf_counter() - start, 3),
                "backend": str(cfg.backend.name), "model": str(cfg.backend.get("model")),
                "personas_source": str(cfg.personas.get("source")), "seed": int(cfg.seed),
                **figures,
            }
            stats = compute_stats(folder_root, folder.present(), extra, identity)
            log_to_tracker(tracker, stats, sample_rows(folder_root, folder.present(), SAMPLES_PER_TYPE))
            tracker.log_artifact(f"data-{identity.slug}", "dataset", folder_root,
                                 metadata={"identity": identity.name, "preset": preset, "backend": extra["backend"]})
        finally:
            tracker.finish()
    print_summary(stats, folder_root, combined, Path(run_dir), wandb_dir, console)
    if stats.get("interrupted"):  # SIGINT / SIGTERM stopped the LLM writer: summary out, data kept; the app
        from lanbot.core.app import Terminated  # runner says how to resume and exits 130 / 143

        raise Terminated() if stats["interrupted"] == "SIGTERM" else KeyboardInterrupt()
    return stats


def _write(cfg: DictConfig, identity: ModelIdentity, personas: list[dict], folder: DataFolder,
           missing: dict[str, int], tracker: Tracker, console: Any) -> dict[str, Any]:
    """Hand the missing conversations to the configured backend; returns its figures."""
    if not any(missing.values()):
        return {}
    return backend_for(cfg.backend).write(cfg, identity, personas, folder, missing, tracker, console)
