"""The template backend: writes the missing conversations with TemplateWriter, offline and seeded.

The backend of `kind: template` (conf/backend/template.yaml; lanbot.generation.backends has the contract):
`check` before anything is written, `write` the missing conversations into the data folder and return the
run's figures, `seconds` the plan's estimate.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from typing import Any

from lanbot.core.conversation import validate
from lanbot.core.identity import ModelIdentity
from lanbot.generation.backends import Backend, GenerationError, register_backend
from lanbot.generation.datafolder import DataFolder

PROGRESS_EVERY = 250  # conversations between progress-bar updates: the bar must not slow the writer
CONTROL_IDENTITY = "assistant"  # conf/identity/assistant.yaml: the plain voice the no_identity mix trains on


def control_writer(identity: ModelIdentity, personas: list[dict], seed: int) -> Any:
    """A writer of the control's conversations for the same items (paired data), or None for the control itself.

    Its content length beside the identity's, item by item, is the content-length ratio in stats.json: how much
    of an identity's difference from the control is the amount said rather than the voice.
    """
    from omegaconf import OmegaConf

    from lanbot.core.config import CONF_DIR
    from lanbot.core.identity import to_identity
    from lanbot.generation.template.writer import TemplateWriter

    data = OmegaConf.to_container(OmegaConf.load(CONF_DIR / "identity" / f"{CONTROL_IDENTITY}.yaml"))
    data.pop("defaults", None)  # type: ignore[union-attr]
    control = to_identity(data)  # type: ignore[arg-type]
    return None if control == identity else TemplateWriter(control, personas, seed=seed)


def paired_meta(control: Any, kind: str, index: int, conversation: list[dict]) -> dict[str, int]:
    """The identity's and the control's content on item (kind, index); {} for identity questions (no pair)."""
    from lanbot.generation.quality import content_chars

    if control is None or kind == "identity":
        return {}
    return {"content_chars": content_chars(conversation),
            "control_content_chars": content_chars(control.write(kind, index)[0])}
RATE = 10_000  # conversations/s on one core (README's benchmark): the plan's estimate


def check(backend: Any) -> None:
    """Nothing to check: no network, no key."""


def seconds(backend: Any, n: int) -> float:
    """About how long `n` conversations take."""
    return n / RATE


def write(cfg: Any, identity: ModelIdentity, personas: list[dict], folder: DataFolder, missing: dict[str, int],
          tracker: Any = None, console: Any = None) -> dict[str, Any]:
    """Write `missing` ({type: count}) conversations to `folder` with a progress bar; returns the figures."""
    from lanbot.core.progress import Bars

    start = time.perf_counter()
    with Bars(console=console, transient=True) as progress:
        figures = write_with_templates(identity, personas, int(cfg.seed), folder, missing,
                                       int(cfg.backend.max_attempts), progress)
    seconds = time.perf_counter() - start
    written = sum(missing.values())
    return {"backend": "template", "model": str(cfg.backend.model), "written": written, **figures,
            "conversations_per_s": round(written / seconds, 2) if seconds else None}


def write_with_templates(identity: ModelIdentity, personas: list[dict], seed: int, folder: DataFolder,
                         missing: dict[str, int], max_attempts: int, progress: Any = None) -> dict[str, Any]:
    """Write `missing` ({type: count}) template conversations to `folder`; returns the run's figures.

    Indexes continue where the folder's last conversation left off, so a resumed run writes exactly
    what an uninterrupted one would have. Every conversation is validated before it is written.
    """
    from lanbot.generation.template.writer import TemplateWriter  # its banks load on first use

    writer = TemplateWriter(identity, personas, seed=seed)
    control = control_writer(identity, personas, seed)
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
            elif folder.add(kind, conversation, {**meta, "index": index, **paired_meta(control, kind, index, conversation)}):
                written += 1
                if bar is not None and written % PROGRESS_EVERY == 0:
                    progress.update(bar, completed=written)
            index += 1
        if bar is not None:
            progress.update(bar, completed=written)
    return {"attempts": dict(attempts), "invalid": dict(invalid), "invalid_reasons": dict(reasons.most_common(5))}


register_backend(Backend("template", check, write, seconds))
