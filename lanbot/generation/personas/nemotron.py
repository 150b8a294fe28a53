"""User personas from NVIDIA's Nemotron-Personas (default nvidia/Nemotron-Personas-USA), through `datasets`.

    python -m lanbot.generate personas=nemotron backend=openrouter                  # from the hub
    python -m lanbot.generate personas=nemotron personas.path=/data/nemotron ...    # a local copy

`load_nemotron_personas(personas_cfg, seed, needed)` samples `needed` rows uniformly across the whole set
with `seed`: a local copy (parquet file(s), a folder of them, or a `save_to_disk` folder) is read
memory-mapped and sampled by random row access; the hub dataset is streamed with its shards shuffled and a
shuffle buffer (`personas.buffer_size`), never just the first N rows. It keeps the dataset's real fields
(age, sex, occupation, city, state, education_level, persona, skills_and_expertise_list,
hobbies_and_interests_list), tolerating missing ones. A dataset that cannot be loaded is an error naming
the fix; `personas.fallback=builtin` falls back to the shipped list only when asked.
"""

from __future__ import annotations

import ast
import glob
import json
import random
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lanbot.generation.personas.builtin import PersonaError, read_builtin

DEFAULT_ID = "nvidia/Nemotron-Personas-USA"
DEFAULT_NEEDED = 5000  # personas drawn when the caller does not say how many


def load_nemotron_personas(personas_cfg: Mapping[str, Any] | Any, seed: int, needed: int | None = None) -> list[dict]:
    """`needed` personas sampled uniformly with `seed`, as lanbot persona dicts."""
    get = personas_cfg.get if hasattr(personas_cfg, "get") else lambda k, d=None: getattr(personas_cfg, k, d)
    needed = int(needed or DEFAULT_NEEDED)
    source = get("path") or get("id") or DEFAULT_ID
    try:
        rows = _sample_local(str(get("path")), get("split") or "train", seed, needed) if get("path") else \
            _sample_hub(str(source), get("split") or "train", seed, needed, int(get("buffer_size") or 10_000))
    except PersonaError:
        raise
    except Exception as exc:  # datasets raises many kinds (network, missing files, schema)
        if get("fallback") == "builtin":
            personas = read_builtin()
            random.Random(f"personas:{seed}").shuffle(personas)
            return personas
        raise PersonaError(
            f"cannot load Nemotron-Personas from {source!r}: {type(exc).__name__}: {str(exc)[:300]}. Fix: "
            "download a copy and set personas.path=/path/to/parquet-or-folder, or use personas=builtin, "
            "or set personas.fallback=builtin to fall back to the shipped personas explicitly."
        ) from None
    personas = [to_persona(row, i) for i, row in rows]
    if not personas:
        raise PersonaError(f"Nemotron-Personas at {source!r} holds no rows; check personas.path/split")
    return personas


def _local_files(path: str) -> list[str] | None:
    p = Path(path)
    if p.is_dir():
        files = sorted(str(f) for f in p.rglob("*.parquet"))
        return files or None  # a folder without parquet: a save_to_disk folder
    files = sorted(glob.glob(path))
    if not files:
        raise PersonaError(
            f"personas.path={path!r}: no such file or folder. Fix: point personas.path at the dataset's parquet "
            "file(s) or a folder of them (or a save_to_disk folder), or use personas=builtin."
        )
    return files


def _sample_local(path: str, split: str, seed: int, needed: int) -> list[tuple[int, dict]]:
    """Random row access over a memory-mapped local copy: every row equally likely."""
    import datasets

    files = _local_files(path)
    if files is None:
        ds = datasets.load_from_disk(path)
        if isinstance(ds, datasets.DatasetDict):
            ds = ds[split]
    else:
        ds = datasets.load_dataset("parquet", data_files={split: files}, split=split)
    rng = random.Random(f"nemotron:{seed}")
    indices = rng.sample(range(len(ds)), min(needed, len(ds)))
    return list(zip(indices, ds.select(indices), strict=True))


def _sample_hub(dataset_id: str, split: str, seed: int, needed: int, buffer_size: int) -> list[tuple[int, dict]]:
    """Streamed from the hub: shards shuffled, then a shuffle buffer, so rows come from across the set."""
    import datasets

    stream = datasets.load_dataset(dataset_id, split=split, streaming=True)
    stream = stream.shuffle(seed=seed, buffer_size=buffer_size)
    return list(enumerate(stream.take(needed)))


def _as_list(value: Any) -> list[str]:
    """A list field, stored as a list or as its text ("['a', 'b']" or JSON)."""
    if value is None:
        return []
    if isinstance(value, list | tuple):
        return [str(v) for v in value if str(v).strip()]
    text = str(value).strip()
    if text.startswith("["):
        for parse in (json.loads, ast.literal_eval):
            try:
                return [str(v) for v in parse(text)]
            except (ValueError, SyntaxError):
                continue
    return [t.strip() for t in text.split(",") if t.strip()]


def to_persona(row: Mapping[str, Any], index: int) -> dict:
    """One dataset row as a lanbot persona dict; missing fields are left out."""
    def field(name: str) -> Any:
        value = row.get(name)
        return None if value is None or (isinstance(value, str) and not value.strip()) else value

    summary = field("persona") or field("professional_persona")
    if not summary:
        bits = [str(b) for b in (field("age"), field("sex"), field("occupation")) if b]
        place = ", ".join(str(b) for b in (field("city"), field("state")) if b)
        summary = " ".join(bits) + (f" from {place}" if place else "") or "someone"
    persona = {
        "id": str(field("uuid") or f"nemotron-{index}"),
        "persona": " ".join(str(summary).split()),
        "voice": None,
    }
    for key in ("age", "sex", "occupation", "city", "state", "education_level"):
        if (value := field(key)) is not None:
            persona[key] = int(value) if key == "age" and str(value).isdigit() else str(value).replace("_", " ")
    for key, name in (("skills", "skills_and_expertise_list"), ("hobbies", "hobbies_and_interests_list")):
        if items := _as_list(field(name)):
            persona[key] = items
    return persona
