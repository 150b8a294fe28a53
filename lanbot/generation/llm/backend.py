"""The LLM backend: any OpenAI-compatible server writes the missing conversations (lanbot.generation.llm.writer).

The backend of `kind: llm` (conf/backend/openai, openrouter and local; lanbot.generation.backends has the
contract).
"""

from __future__ import annotations

from typing import Any

from lanbot.generation.backends import Backend, GenerationError, register_backend
from lanbot.generation.llm.writer import LLMGenerationError, generate_with_llm, require_key

REQUEST_S = 10  # seconds one conversation takes, `backend.concurrency` at a time: the plan's estimate


def check(backend: Any) -> None:
    """A missing API key stops the run before any folder, dataset or wandb run."""
    try:
        require_key(backend)
    except LLMGenerationError as exc:
        raise GenerationError(str(exc)) from None


def seconds(backend: Any, n: int) -> float:
    """About how long `n` conversations take."""
    return n * REQUEST_S / max(int(backend.get("concurrency") or 1), 1)


def write(cfg: Any, identity: Any, personas: list[dict], folder: Any, missing: dict[str, int],
          tracker: Any = None, console: Any = None) -> dict[str, Any]:
    """Write `missing` conversations with the configured server; returns the figures (spend included)."""
    try:
        return generate_with_llm(cfg, identity, folder, missing, personas, tracker)
    except LLMGenerationError as exc:
        raise GenerationError(str(exc)) from None


register_backend(Backend("llm", check, write, seconds, requests=True))
