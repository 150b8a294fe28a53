"""Generate an identity's training conversations: `python -m lanbot.generate`.

    python -m lanbot.generate identity=sage                  # 1,800 conversations of six types, offline
    python -m lanbot.generate data=agentic data.count=100    # the four tool types, 100 each
    python -m lanbot.generate identity=sage backend=openrouter  # written by an LLM (key in env or .env)
    python -m lanbot.generate data.overwrite=true            # start the data folder afresh

The pipeline: check what is asked (`plan_targets`) -> open the identity's data folder, which resumes what
is already there -> write what is missing (the template writer or an LLM backend), validating and
deduplicating every conversation -> all_conversations.jsonl -> stats.json -> wandb and the console.
A run killed half-way keeps every line it wrote; run again, it finishes the rest with no duplicates.
"""

from __future__ import annotations

import os
import re
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from lanbot.core.config import CONF_DIR, CONFIG_PATH
from lanbot.core.conversation import TYPES, validate
from lanbot.core.identity import IdentityError, ModelIdentity, to_identity
from lanbot.core.tracking import Tracker
from lanbot.generation.datafolder import DataFolder, DataFolderError
from lanbot.generation.personas.builtin import PersonaError, load_personas
from lanbot.generation.report import SAMPLES_PER_TYPE, log_to_tracker, print_summary, sample_rows
from lanbot.generation.stats import compute_stats

PROGRESS_EVERY = 250  # conversations between progress-bar updates: the bar must not slow the writer


class GenerationError(RuntimeError):
    """A generate run that cannot go on; the message says what is wrong and how to fix it."""


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
            counts.get(kind), f"data.counts.{kind}")
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise GenerationError(
                f"{where}={value!r} is not a count; it must be a whole number >= 0 (e.g. {where}=100)."
            )
        targets[kind] = value
    return targets


def write_with_templates(identity: ModelIdentity, personas: list[dict], seed: int, folder: DataFolder,
                         missing: dict[str, int], max_attempts: int, progress: Any = None) -> dict[str, Any]:
    """Write `missing` ({type: count}) template conversations to `folder`; returns the run's figures.

    Indexes continue where the folder's last conversation left off, so a resumed run writes exactly
    what an uninterrupted one would have. Every conversation is validated before it is written.
    """
    from lanbot.generation.template.writer import TemplateWriter

    writer = TemplateWriter(identity, personas, seed=seed)
    for quirk in writer.unperformable:  # named once, at start: the data never claims what it cannot show
        print(f"lanbot.generate: quirk {quirk!r} has no identity.quirk_hints entry, so the template backend cannot "
              "perform it and never claims it; backend=openrouter (or openai/local) writes it with an LLM.",
              file=sys.stderr)
    invalid: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    attempts: Counter[str] = Counter()
    for kind, want in missing.items():
        if want <= 0:
            continue
        last = folder.last_meta(kind) or {}
        index = int(last["index"]) + 1 if isinstance(last.get("index"), int) else folder.count(kind)
        cap = max_attempts * want + 100
        bar = progress.add_task(kind, total=want) if progress is not None else None
        written = 0
        while written < want:
            if attempts[kind] >= cap:
                raise GenerationError(
                    f"the template writer made {attempts[kind]} {kind} conversations but only {written} of the "
                    f"{want} missing were new and valid ({folder.duplicates(kind)} duplicates, {invalid[kind]} "
                    f"invalid{'; first problem: ' + reasons.most_common(1)[0][0] if invalid[kind] else ''}). "
                    "Its variety for this type is spent at this count: lower data.count, or use an LLM backend "
                    "(backend=openrouter). What was written is kept."
                )
            conversation, meta = writer.write(kind, index)
            attempts[kind] += 1
            problems = validate(conversation, kind, identity.name)
            if problems:
                invalid[kind] += 1
                reasons[problems[0]] += 1
            elif folder.add(kind, conversation, {**meta, "index": index}):
                written += 1
                if bar is not None and written % PROGRESS_EVERY == 0:
                    progress.update(bar, completed=written)
            index += 1
        if bar is not None:
            progress.update(bar, completed=written)
    return {"attempts": dict(attempts), "invalid": dict(invalid), "invalid_reasons": dict(reasons.most_common(5))}


def generate(cfg: DictConfig, run_dir: str | Path, preset: str | None = None, console: Any = None) -> dict:
    """The whole run for a composed config: returns stats.json's contents. Raises GenerationError."""
    start = time.perf_counter()
    identity = to_identity(cfg.identity)
    preset = preset or cfg.data.get("name") or "custom"
    targets = plan_targets(cfg.data)  # every check before anything is written or removed
    if cfg.backend.name != "template":  # a missing API key stops the run before any folder, dataset or wandb run
        from lanbot.generation.llm.writer import LLMGenerationError, require_key

        try:
            require_key(cfg.backend)
        except LLMGenerationError as exc:
            raise GenerationError(str(exc)) from None
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
        finally:
            tracker.finish()
    print_summary(stats, folder_root, combined, Path(run_dir), wandb_dir, console)
    return stats


def _write(cfg: DictConfig, identity: ModelIdentity, personas: list[dict], folder: DataFolder,
           missing: dict[str, int], tracker: Tracker, console: Any) -> dict[str, Any]:
    """Hand the missing conversations to the configured backend; returns its figures."""
    if not any(missing.values()):
        return {}
    if cfg.backend.name == "template":
        from rich.progress import Progress

        with Progress(console=console, transient=True) as progress:
            return write_with_templates(identity, personas, int(cfg.seed), folder, missing,
                                        int(cfg.backend.get("max_attempts", 5)), progress)
    from lanbot.generation.llm.writer import LLMGenerationError, generate_with_llm

    try:
        return generate_with_llm(cfg, identity, folder, missing, personas, tracker)
    except LLMGenerationError as exc:
        raise GenerationError(str(exc)) from None


@hydra.main(config_path=CONFIG_PATH, config_name="config", version_base="1.3")
def run(cfg: DictConfig) -> None:
    """The Hydra app: compose, generate, and turn a GenerationError into one paragraph and exit 1."""
    hydra_cfg = HydraConfig.get()
    try:
        generate(cfg, hydra_cfg.runtime.output_dir, hydra_cfg.runtime.choices.get("data"))
    except (GenerationError, DataFolderError, PersonaError) as exc:
        _fail(f"lanbot.generate: {exc}", 1)
    except IdentityError as exc:  # an identity file without `defaults: [identity_schema, _self_]`
        name = hydra_cfg.runtime.choices.get("identity")
        dirs = [Path(s.path) for s in hydra_cfg.runtime.config_sources if s.schema == "file"]
        path = next((d / "identity" / f"{name}.yaml" for d in dirs if (d / "identity" / f"{name}.yaml").exists()),
                    Path("conf") / "identity" / f"{name}.yaml")
        _fail(f"lanbot.generate: {path}: {exc}. Start the file as conf/identity/yourbot.yaml does "
              f"(defaults: [identity_schema, _self_]); the identity fields are: {_identity_fields()}.", 2)


def main(argv: list[str] | None = None) -> None:
    """The command line. Config errors Hydra raises become one paragraph naming the file and the fix."""
    if "HYDRA_FULL_ERROR" in os.environ:  # the user asked for Hydra's own traceback
        run()
        return
    os.environ["HYDRA_FULL_ERROR"] = "1"  # make Hydra raise, so its errors can be explained here
    try:
        run()
    except Exception as exc:  # Hydra's composition errors and an unwritable run folder
        message = explain_config_error(exc, argv if argv is not None else sys.argv[1:])
        if message is None:
            raise
        _fail(message, 2)


def explain_config_error(exc: BaseException, argv: list[str]) -> str | None:
    """A clear paragraph for a config or run-folder error raised before the run started; None if unknown."""
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    text = str(exc).strip()
    config_dirs = [Path(d) for d in _config_dirs(argv)] + [CONF_DIR]
    bad_yaml = _yaml_error(exc)
    if bad_yaml is not None:
        mark = getattr(bad_yaml, "context_mark", None) or getattr(bad_yaml, "problem_mark", None)
        where = f"{mark.name}, line {mark.line + 1}" if mark else "a config file"
        problem = getattr(bad_yaml, "problem", None) or _first_line(str(bad_yaml))
        return (f"lanbot.generate: {where}: not valid YAML ({problem}). Fix that line; "
                "conf/identity/yourbot.yaml shows the form (lists as `- item` lines or [a, b]).")
    missing = re.search(r"Could not find '(\w+)/([^']+)'", text)
    if missing:
        group, name = missing.groups()
        options = sorted({p.stem for d in config_dirs for p in (d / group).glob("*.yaml")} - {"identity_schema"})
        fix = (f"Make a new identity by copying conf/identity/yourbot.yaml to conf/identity/{name}.yaml."
               if group == "identity" else "")
        return (f"lanbot.generate: unknown {group} {name!r}. The {group} options are: {', '.join(options)} "
                f"(files in {CONF_DIR / group}). {fix}").strip()
    where = re.search(r"In '(\w+)/([^']+)': \w+ raised while composing config:\s*(.*)", text, re.S)
    if where:
        group, name, detail = where.groups()
        files = [d / group / f"{name}.yaml" for d in config_dirs if (d / group / f"{name}.yaml").exists()]
        path = files[0] if files else Path("conf") / group / f"{name}.yaml"
        field = re.search(r"full_key: ([\w.]+)", detail)
        fields = f" The identity fields are: {_identity_fields()}." if group == "identity" else ""
        hint = " (it must be a list: `- item` lines or [a, b])" if "is not a ListConfig" in detail else ""
        return (f"lanbot.generate: {path}: bad field {field.group(1) if field else '?'}: "
                f"{_first_line(detail).rstrip('.')}{hint}. Fix or remove that line of {path}.{fields}")
    if isinstance(exc, OSError):
        return (f"lanbot.generate: cannot create the run folder: {exc.strerror or exc} ({exc.filename}). "
                "Point paths.root (or hydra.run.dir) at a folder you can write.")
    if isinstance(exc, HydraException | OmegaConfBaseException):
        cause = f": {_first_line(str(exc.__cause__))}" if exc.__cause__ else ""
        return f"lanbot.generate: config error: {_first_line(text)}{cause}"
    return None


def _yaml_error(exc: BaseException | None) -> BaseException | None:
    """The YAML syntax error behind `exc` (Hydra raises or wraps it), if there is one."""
    import yaml

    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, yaml.YAMLError):
            return exc
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return None


def _identity_fields() -> str:
    return ", ".join(ModelIdentity.__dataclass_fields__)


def _first_line(text: str) -> str:
    """An OmegaConf message without its `full_key:`/`object_type=` trailer."""
    return " ".join(line.strip() for line in text.strip().splitlines()
                    if not line.strip().startswith(("full_key:", "object_type", "reference_type")))


def _config_dirs(argv: list[str]) -> list[str]:
    """Folders given with --config-dir/-cd (Hydra adds them to the search path)."""
    dirs = []
    for i, arg in enumerate(argv):
        if arg in ("--config-dir", "-cd") and i + 1 < len(argv):
            dirs.append(argv[i + 1])
        elif arg.startswith("--config-dir="):
            dirs.append(arg.split("=", 1)[1])
    return dirs


def _fail(message: str, code: int) -> None:
    from rich.console import Console
    from rich.markup import escape

    Console(stderr=True, highlight=False).print(f"[bold red]error[/bold red] {escape(message)}", soft_wrap=True)
    sys.exit(code)


if __name__ == "__main__":
    main()
