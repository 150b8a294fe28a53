"""The generation backends: a registry keyed by the backend config's `kind`, like the conversation types.

A backend is a module that registers itself with `register_backend(Backend(kind, check, write, seconds))`:
    check(backend_cfg)                                              before anything is written (e.g. the key)
    write(cfg, identity, personas, folder, missing, tracker, console) -> figures
    seconds(backend_cfg, n) -> float                                about how long n conversations take (the plan)
`write` adds `missing` ({type: count}) validated, deduplicated conversations to the data folder and returns
the run's figures: at least backend, model, written, invalid ({type: dropped}), invalid_reasons and
conversations_per_s. `requests=True` says each conversation is a request to `backend.model` (an API that may
bill for it), which the plan's warning names.

A config file under conf/backend/ picks its backend with `kind:`; the module of kind K is
`lanbot.generation.K.backend`, imported on first use (the template path never loads the HTTP client). So a new
backend is its module (lanbot/generation/<kind>/backend.py) and its config file (conf/backend/<name>.yaml with
`kind: <kind>`); today `template` (lanbot.generation.template.backend, offline) and `llm` (any OpenAI-compatible
server: conf/backend/openai, openrouter and local, lanbot.generation.llm.backend).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lanbot.core.errors import LanbotError

__all__ = ["BACKENDS", "Backend", "GenerationError", "backend_for", "register_backend"]


class GenerationError(LanbotError, RuntimeError):
    """A generate run that cannot go on; the message says what is wrong and how to fix it."""


@dataclass(frozen=True)
class Backend:
    """One way of writing conversations (see the module docstring for the three functions' contract)."""

    kind: str
    check: Callable[[Any], None]
    write: Callable[..., dict[str, Any]]
    seconds: Callable[[Any, int], float]
    requests: bool = False


BACKENDS: dict[str, Backend] = {}


def register_backend(backend: Backend) -> Backend:
    """Add (or replace) the backend of `backend.kind`; returns it."""
    BACKENDS[backend.kind] = backend
    return backend


def _kinds_on_disk() -> list[str]:
    """The kinds whose module ships with lanbot, registered or not yet imported."""
    here = Path(__file__).resolve().parent
    return sorted({p.parent.name for p in here.glob("*/backend.py")} | set(BACKENDS))


def backend_for(backend_cfg: Any) -> Backend:
    """The registered backend of `backend.kind`, importing lanbot.generation.<kind>.backend on first use."""
    kind = str(backend_cfg.get("kind") or "")
    if kind not in BACKENDS and kind.isidentifier():
        module = f"lanbot.generation.{kind}.backend"
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:  # only the backend's own module missing is bad input; else a bug
            if exc.name not in (module, f"lanbot.generation.{kind}"):
                raise
    if kind not in BACKENDS:
        raise GenerationError(
            f"backend.kind={kind!r} (backend={backend_cfg.get('name')}): no such backend; kinds are "
            f"{', '.join(_kinds_on_disk())} (a new kind registers itself in lanbot/generation/<kind>/backend.py)")
    return BACKENDS[kind]
