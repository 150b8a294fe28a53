"""The LLM backend: any OpenAI-compatible server writes the missing conversations (lanbot.generation.llm.writer).

One of the two generation backends (lanbot.generation.backends has the contract).
"""

from __future__ import annotations

from typing import Any

from lanbot.generation.errors import GenerationError
from lanbot.generation.llm.writer import LLMGenerationError, generate_with_llm, require_key


def check(backend: Any) -> None:
    """A missing API key stops the run before any folder, dataset or wandb run."""
    try:
        require_key(backend)
    except LLMGenerationError as exc:
        raise GenerationError(str(exc)) from None


def write(cfg: Any, identity: Any, personas: list[dict], folder: Any, missing: dict[str, int],
          tracker: Any = None, console: Any = None) -> dict[str, Any]:
    """Write `missing` conversations with the configured server; returns the figures (spend included)."""
    try:
        return generate_with_llm(cfg, identity, folder, missing, personas, tracker)
    except LLMGenerationError as exc:
        raise GenerationError(str(exc)) from None
