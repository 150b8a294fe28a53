"""User personas: who writes to the model, and how (their "voice").

`load_personas(cfg.personas, seed, needed)` returns persona dicts with "id", "persona" (one line: who
they are) and "voice" (how they write: terse, formal, typos, kid, ...; None = plain), plus optional
fields ("topics", "age", "occupation", ...). `source: builtin` reads the list shipped in
lanbot/generation/banks/personas.yaml; `source: nemotron` loads NVIDIA's Nemotron-Personas through
`lanbot.generation.personas.nemotron`.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from lanbot.generation.banks import BANKS_DIR

BUILTIN_FILE = BANKS_DIR / "personas.yaml"
SOURCES = ("builtin", "nemotron")
VOICES = frozenset({
    "plain", "terse", "formal", "typos", "lowercase", "emoji", "non_native", "kid", "retiree",
    "engineer", "casual", "enthusiastic", "anxious", "verbose",
})


class PersonaError(ValueError):
    """A persona source or file that cannot be used; the message names the file/field and the fix."""


def load_personas(personas_cfg: Mapping[str, Any] | Any, seed: int, needed: int | None = None) -> list[dict]:
    """The personas for a run, in a seeded order.

    builtin: every persona of the shipped list (shuffled by `seed`; `needed` does not cut it, since
    more personas than conversations costs nothing). nemotron: delegated to the LLM engineer's loader.
    """
    source = _get(personas_cfg, "source", "builtin")
    if source == "builtin":
        personas = read_builtin()
        random.Random(f"personas:{seed}").shuffle(personas)
        return personas
    if source == "nemotron":
        from lanbot.generation.personas.nemotron import load_nemotron_personas

        return load_nemotron_personas(personas_cfg, seed, needed)
    raise PersonaError(
        f"personas.source={source!r} is unknown; use one of {', '.join(SOURCES)} "
        "(conf/personas/<name>.yaml or personas.source=... on the command line)"
    )


def read_builtin(path: Path = BUILTIN_FILE) -> list[dict]:
    """The shipped personas, checked: each has a unique id, a one-line persona and a known voice."""
    try:
        rows = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise PersonaError(f"cannot read personas from {path}: {exc}") from None
    if not isinstance(rows, list) or not rows:
        raise PersonaError(f"{path}: expected a YAML list of personas")
    seen: set[str] = set()
    personas = []
    for i, row in enumerate(rows):
        where = f"{path}: persona #{i + 1}"
        if not isinstance(row, dict) or not row.get("id") or not row.get("persona"):
            raise PersonaError(f"{where}: needs at least 'id' and 'persona'")
        if row["id"] in seen:
            raise PersonaError(f"{where}: duplicate id {row['id']!r}; ids must be unique")
        seen.add(row["id"])
        voice = row.get("voice") or "plain"
        if voice not in VOICES:
            raise PersonaError(f"{where}: unknown voice {voice!r}; use one of {', '.join(sorted(VOICES))}")
        personas.append({**row, "voice": voice, "topics": list(row.get("topics") or [])})
    return personas


def _get(cfg: Any, key: str, default: Any) -> Any:
    if cfg is None:
        return default
    if isinstance(cfg, Mapping):
        return cfg.get(key, default)
    return getattr(cfg, key, default)
