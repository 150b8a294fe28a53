"""Generate an identity's training conversations: the pipeline behind `python -m lanbot.generate`.

Check what is asked (`plan_targets`) -> open the identity's data folder, which resumes what is already
there -> the configured backend writes what is missing (lanbot.generation.backends: template or LLM, one
contract), every conversation validated and deduplicated -> all_conversations.jsonl -> stats.json ->
wandb and the console. A run killed half-way keeps every line it wrote; run again, it finishes the rest
with no duplicates.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from lanbot.core.conversation import TYPE_SPECS, TYPES
from lanbot.core.identity import ModelIdentity, check_consistent, to_identity
from lanbot.core.layout import STATS_FILE, conversations_file
from lanbot.core.tracking import Tracker, data_artifact
from lanbot.generation.backends import GenerationError, backend_for
from lanbot.generation.datafolder import DataFolder
from lanbot.generation.personas import load_personas
from lanbot.generation.report import SAMPLES_PER_TYPE, log_to_tracker, print_summary, sample_rows
from lanbot.generation.stats import compute_stats

__all__ = ["GenerationError", "check_plan_size", "generate", "plan_targets"]

# A plan past these stops before it starts, saying what it would take (data.allow_large=true runs it anyway)
LARGE_PLAN = 200_000                # conversations still to write
BYTES_PER_CONVERSATION = 3_000      # its line, its sidecar line and its copy in all_conversations.jsonl


def plan_targets(data: DictConfig) -> dict[str, int]:
    """{type: conversations wanted} from the data preset: `data.count` sets every selected type's count."""
    types = list(TYPES) if data.types is None else list(data.types)  # null: every registered type
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


def _on_disk(folder: Path) -> tuple[dict[str, int], int]:
    """({type: conversations} per stats.json, bytes of the type files): what a resumed run already has."""
    try:
        counts = json.loads((folder / STATS_FILE).read_text(encoding="utf-8")).get("counts") or {}
    except (OSError, ValueError, AttributeError):
        counts = {}
    size = sum((folder / conversations_file(k)).stat().st_size for k in TYPES if (folder / conversations_file(k)).is_file())
    return {k: v for k, v in counts.items() if isinstance(v, int)}, size


def _free_bytes(folder: Path) -> int:
    existing = next((p for p in [folder, *folder.absolute().parents] if p.exists()), Path("/"))
    return shutil.disk_usage(existing).free


def check_plan_size(data: DictConfig, backend: DictConfig, targets: dict[str, int], folder: Path) -> dict[str, Any]:
    """What the plan will take (conversations, bytes, seconds, free disk); GenerationError past LARGE_PLAN or the
    free disk unless data.allow_large=true. Returns the estimate."""
    have, size = _on_disk(folder)
    total = sum(targets.values())
    missing = sum(max(0, n - have.get(k, 0)) for k, n in targets.items())
    per = size * 2 / max(sum(have.values()), 1) if have and size else BYTES_PER_CONVERSATION  # x2: the combined copy
    need = int(missing * per)
    writer = backend_for(backend)
    seconds = writer.seconds(backend, missing)
    free = _free_bytes(folder)
    estimate = {"conversations": total, "to_write": missing, "bytes": need, "seconds": round(seconds, 1), "free": free}
    if (missing > LARGE_PLAN or need > free) and not data.get("allow_large"):
        key = "data.count" if data.get("count") is not None else "data.counts"
        what = f"{key}={data.count}" if key == "data.count" else key
        cost = f", at least {missing:,} requests to {backend.get('model')}" if writer.requests else ""
        raise GenerationError(
            f"{what} plans {total:,} conversations ({missing:,} still to write): about {_size(need)} on disk and "
            f"{_duration(seconds)} with backend {backend.name}{cost}; {_size(free)} free under {folder}. Lower "
            f"{key}, or pass data.allow_large=true to run it anyway")
    return estimate


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1000
    return f"{n} TB"


def _duration(seconds: float) -> str:
    for unit, size in (("days", 86400), ("hours", 3600), ("minutes", 60)):
        if seconds >= size:
            return f"{seconds / size:,.1f} {unit}"
    return f"{seconds:.0f} s"


def generate(cfg: DictConfig, run_dir: str | Path, preset: str | None = None, console: Any = None) -> dict:
    """The whole run for a composed config: returns stats.json's contents. Raises GenerationError."""
    start = time.perf_counter()
    identity = to_identity(cfg.identity)
    check_consistent(identity)  # before anything is written: the data would contradict itself
    preset = preset or cfg.data.get("name") or "custom"
    targets = plan_targets(cfg.data)  # every check before anything is written or removed
    folder_root = Path(cfg.paths.data_dir)
    check_plan_size(cfg.data, cfg.backend, targets, folder_root)
    backend_for(cfg.backend).check(cfg.backend)  # a missing API key stops the run before any folder or wandb run
    overwrite = bool(cfg.data.get("overwrite"))
    # overwrite empties the folder: load the personas first, so a bad persona source loses nothing
    personas = load_personas(cfg.personas, int(cfg.seed), sum(targets.values())) if overwrite else None
    with DataFolder(folder_root, list(targets), overwrite=overwrite, identity=identity.name) as folder:
        _report_repairs(folder, console)
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
            if cfg.data.get("distill"):  # the model's own answers to general questions, in the identity's voice
                from lanbot.generation.distill import distill_folder

                figures["distilled"] = distill_folder(str(cfg.data.distill), folder, identity,
                                                      list(cfg.data.get("distill_types") or ["no_tool"]), int(cfg.seed),
                                                      bool(cfg.data.get("distill_card")))
            combined = folder.finalize()
            extra = {
                "identity": identity.name, "identity_slug": identity.slug, "preset": preset,
                "targets": targets, "resumed_from": resumed,
                "duplicates_dropped": {k: folder.duplicates(k) for k in targets},
                "invalid_dropped": {k: invalid.get(k, 0) for k in targets},
                "repaired": folder.repairs, "temps_removed": len(folder.removed_temps),
                "seconds": round(time.perf_counter() - start, 3),
                "backend": str(cfg.backend.name), "model": str(cfg.backend.get("model")),
                "personas_source": str(cfg.personas.get("source")), "seed": int(cfg.seed),
                **figures,
            }
            stats = compute_stats(folder_root, folder.present(), extra, identity)
            log_to_tracker(tracker, stats, sample_rows(folder_root, folder.present(), SAMPLES_PER_TYPE))
            tracker.log_artifact(data_artifact(identity.name), "dataset", folder_root,
                                 metadata={"identity": identity.name, "preset": preset, "backend": extra["backend"]})
        finally:
            tracker.finish()
    print_summary(stats, folder_root, combined, Path(run_dir), wandb_dir, console)
    if stats.get("interrupted"):  # SIGINT / SIGTERM stopped the LLM writer: summary out, data kept; the app
        from lanbot.core.app import Terminated  # runner says how to resume and exits 130 / 143

        raise Terminated() if stats["interrupted"] == "SIGTERM" else KeyboardInterrupt()
    return stats


def _report_repairs(folder: DataFolder, console: Any) -> None:
    """One line per repaired type, and the temp files of killed runs removed."""
    from rich.console import Console

    console = console or Console(highlight=False, stderr=True)
    for kind, fixed in folder.repairs.items():
        console.print(f"[yellow]repaired[/yellow] {folder.root / conversations_file(kind)}: cut {fixed['lines_cut']} "
                      f"unreadable or torn line(s), replaced {fixed['sidecar_replaced']} unreadable sidecar line(s)",
                      soft_wrap=True)
    if folder.removed_temps:
        console.print(f"[yellow]cleaned[/yellow] {len(folder.removed_temps)} temp file(s) of an interrupted run in "
                      f"{folder.root}", soft_wrap=True)


def _write(cfg: DictConfig, identity: ModelIdentity, personas: list[dict], folder: DataFolder,
           missing: dict[str, int], tracker: Tracker, console: Any) -> dict[str, Any]:
    """Hand the missing conversations to the configured backend; returns its figures."""
    if not any(missing.values()):
        return {}
    return backend_for(cfg.backend).write(cfg, identity, personas, folder, missing, tracker, console)
