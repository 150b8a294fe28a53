"""The template backend: writes the missing conversations with TemplateWriter, offline and seeded.

One of the two generation backends (lanbot.generation.backends has the contract): `check` before anything
is written, `write` the missing conversations into the data folder and return the run's figures.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from typing import Any

from lanbot.core.conversation import validate
from lanbot.core.identity import ModelIdentity
from lanbot.generation.datafolder import DataFolder
from lanbot.generation.errors import GenerationError

PROGRESS_EVERY = 250  # conversations between progress-bar updates: the bar must not slow the writer


def check(backend: Any) -> None:
    """Nothing to check: no network, no key."""


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
