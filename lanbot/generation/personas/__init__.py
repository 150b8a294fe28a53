"""Who writes to the model: the personas of a run, from the shipped list or from Nemotron-Personas.

`load_personas(cfg.personas, seed, needed)` picks the source (`personas.source`: builtin | nemotron);
builtin.py reads the shipped list, nemotron.py samples NVIDIA's dataset through `datasets`.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

from lanbot.generation.personas.builtin import VOICES, PersonaError, read_builtin

SOURCES = ("builtin", "nemotron")
__all__ = ["SOURCES", "VOICES", "PersonaError", "load_personas", "read_builtin"]


def load_personas(personas_cfg: Mapping[str, Any] | Any, seed: int, needed: int | None = None) -> list[dict]:
    """The personas for a run, in a seeded order.

    builtin: every persona of the shipped list (shuffled by `seed`; `needed` does not cut it, since
    more personas than conversations costs nothing). nemotron: sampled from the dataset (personas.nemotron).
    """
    source = _get(personas_cfg, "source", "builtin")
    if source == "builtin":
        personas = read_builtin()
        random.Random(f"personas:{seed}").shuffle(personas)
        return personas
    if source == "nemotron":  # imported here: only runs that sample Nemotron pay for `datasets`
        from lanbot.generation.personas.nemotron import load_nemotron_personas

        return load_nemotron_personas(personas_cfg, seed, needed)
    raise PersonaError(
        f"personas.source={source!r} is unknown; use one of {', '.join(SOURCES)} "
        "(conf/personas/<name>.yaml or personas.source=... on the command line)"
    )


def _get(cfg: Any, key: str, default: Any) -> Any:
    if cfg is None:
        return default
    if isinstance(cfg, Mapping):
        return cfg.get(key, default)
    return getattr(cfg, key, default)
