"""The generation backends behind one contract, chosen by `backend.name`.

A backend is a module with two functions:
    check(backend_cfg)                                              before anything is written (e.g. the key)
    write(cfg, identity, personas, folder, missing, tracker, console) -> figures
`write` adds `missing` ({type: count}) validated, deduplicated conversations to the data folder and returns
the run's figures: at least backend, model, written, invalid ({type: dropped}), invalid_reasons and
conversations_per_s. `template` writes offline (lanbot.generation.template.backend); every other name speaks
the OpenAI chat API (lanbot.generation.llm.backend).
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

from lanbot.generation.errors import GenerationError

__all__ = ["GenerationError", "backend_for"]


def backend_for(backend_cfg: Any) -> ModuleType:
    """The backend module for `backend.name` (imported on use: the template path never loads the HTTP client)."""
    if str(backend_cfg.name) == "template":
        from lanbot.generation.template import backend
    else:
        from lanbot.generation.llm import backend
    return backend
