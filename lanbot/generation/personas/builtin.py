"""User personas: who writes to the model, and how (their "voice").

`lanbot.generation.personas.load_personas(cfg.personas, seed, needed)` returns persona dicts with "id", "persona" (one line: who
they are) and "voice" (how they write: terse, formal, typos, kid, ...; None = plain), plus optional
fields ("topics", "age", "occupation", ...). `source: builtin` reads the list shipped in
lanbot/generation/banks/personas.yaml; `source: nemotron` loads NVIDIA's Nemotron-Personas through
`lanbot.generation.personas.nemotron`.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from lanbot.core.errors import LanbotError
from lanbot.generation.banks import BANKS_DIR

BUILTIN_FILE = BANKS_DIR / "personas.yaml"
VOICES = frozenset({
    "plain", "terse", "formal", "typos", "lowercase", "emoji", "non_native", "kid", "retiree",
    "engineer", "casual", "enthusiastic", "anxious", "verbose",
})


class PersonaError(LanbotError, ValueError):
    """A persona source or file that cannot be used; the message names the file/field and the fix."""


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
