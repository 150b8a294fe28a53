"""Nemotron-Personas loading through `datasets`, from a small local parquet with the dataset's real schema.

The test writes 2,000 rows with Nemotron-Personas-USA's columns (list fields stored as their text, as the
dataset stores them) and checks: the real fields are used, missing ones tolerated, sampling is uniform
over the whole file and seeded (not the first N rows), a bad path is a clear error naming the fix, and
`personas.fallback=builtin` falls back only when asked.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lanbot.core.config import compose_config
from lanbot.generation.llm.prompt_book import describe
from lanbot.generation.personas import PersonaError, load_personas
from lanbot.generation.personas.nemotron import load_nemotron_personas

ROWS = 2000
STATES = ["CA", "TX", "NY", "OH", "WA"]


def nemotron_rows(n: int) -> dict[str, list]:
    return {
        "uuid": [f"uuid-{i:05d}" for i in range(n)],
        "professional_persona": [f"Works hard at job {i}." for i in range(n)],
        "sports_persona": ["Enjoys weekend hikes."] * n,
        "arts_persona": ["Paints watercolours."] * n,
        "travel_persona": ["Road trips out west."] * n,
        "culinary_persona": ["Cooks spicy food."] * n,
        "persona": [f"Person number {i}, a careful planner who loves lists." for i in range(n)],
        "cultural_background": ["Grew up in a small town."] * n,
        "skills_and_expertise": ["Budgeting and carpentry."] * n,
        "skills_and_expertise_list": [f"['budgeting', 'carpentry {i}']" for i in range(n)],
        "hobbies_and_interests": ["Chess and birdwatching."] * n,
        "hobbies_and_interests_list": ["['chess', 'birdwatching']"] * n,
        "career_goals_and_ambitions": ["Open a shop."] * n,
        "sex": ["Female" if i % 2 else "Male" for i in range(n)],
        "age": [18 + i % 70 for i in range(n)],
        "marital_status": ["married_present"] * n,
        "education_level": ["bachelors" if i % 3 else "high_school" for i in range(n)],
        "bachelors_field": ["business"] * n,
        "occupation": [f"occupation_{i % 40}" for i in range(n)],
        "city": [f"City{i % 97}" for i in range(n)],
        "state": [STATES[i % 5] for i in range(n)],
        "zipcode": [f"{10000 + i}" for i in range(n)],
        "country": ["USA"] * n,
    }


@pytest.fixture(scope="module")
def parquet_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("nemotron")
    rows = nemotron_rows(ROWS)
    half = ROWS // 2  # two shards, as the real dataset has several
    pq.write_table(pa.table({k: v[:half] for k, v in rows.items()}), folder / "train-00000-of-00002.parquet")
    pq.write_table(pa.table({k: v[half:] for k, v in rows.items()}), folder / "train-00001-of-00002.parquet")
    return folder


def cfg(path, **extra):
    overrides = ["personas=nemotron", f"personas.path={path}", *(f"personas.{k}={v}" for k, v in extra.items())]
    return compose_config(overrides).personas


def test_loads_real_fields_through_load_personas(parquet_dir):
    personas = load_personas(cfg(parquet_dir), seed=1, needed=50)
    assert len(personas) == 50 and len({p["id"] for p in personas}) == 50
    p = personas[0]
    n = int(p["id"].split("-")[1])
    assert p["persona"] == f"Person number {n}, a careful planner who loves lists."
    assert p["age"] == 18 + n % 70 and p["state"] == STATES[n % 5] and p["city"] == f"City{n % 97}"
    assert p["occupation"] == f"occupation {n % 40}" and p["sex"] in ("Male", "Female")
    assert p["skills"] == ["budgeting", f"carpentry {n}"] and p["hobbies"] == ["chess", "birdwatching"]
    assert p["voice"] is None
    assert f"lives in City{n % 97}, {STATES[n % 5]}" in describe(p)


def test_sampling_is_uniform_over_the_whole_set_and_seeded(parquet_dir):
    picked = [int(p["id"].split("-")[1]) for p in load_nemotron_personas(cfg(parquet_dir), 7, 200)]
    assert picked != list(range(200))
    # 200 of 2000 drawn uniformly: about 20 per decile of the file, both shards well represented
    deciles = [sum(1 for i in picked if d * 200 <= i < (d + 1) * 200) for d in range(10)]
    assert min(deciles) >= 8, deciles
    assert sum(i >= ROWS // 2 for i in picked) >= 70
    again = [int(p["id"].split("-")[1]) for p in load_nemotron_personas(cfg(parquet_dir), 7, 200)]
    other = [int(p["id"].split("-")[1]) for p in load_nemotron_personas(cfg(parquet_dir), 8, 200)]
    assert again == picked and other != picked


def test_missing_fields_are_tolerated(tmp_path):
    rows = nemotron_rows(20)
    keep = {k: rows[k] for k in ("professional_persona", "age", "state")}
    pq.write_table(pa.table(keep), tmp_path / "slim.parquet")
    personas = load_nemotron_personas(cfg(tmp_path / "slim.parquet"), 0, 5)
    assert len(personas) == 5
    assert all(p["persona"].startswith("Works hard at job") and "skills" not in p and "city" not in p for p in personas)
    assert all(p["id"].startswith("nemotron-") for p in personas)


def test_unloadable_dataset_is_a_clear_error_unless_fallback_is_asked(tmp_path):
    with pytest.raises(PersonaError, match=r"personas.path=.*no such file.*parquet.*personas=builtin"):
        load_personas(cfg(tmp_path / "missing"), 0, 5)
    (tmp_path / "broken.parquet").write_text("not parquet")
    with pytest.raises(PersonaError, match=r"set personas.path=.*personas=builtin.*personas.fallback=builtin"):
        load_personas(cfg(tmp_path / "broken.parquet"), 0, 5)
    personas = load_personas(cfg(tmp_path / "broken.parquet", fallback="builtin"), 0, 5)
    assert len(personas) >= 100 and personas[0]["voice"]  # the shipped list, by explicit choice


def test_streaming_path_shuffles_shards_and_buffer_not_first_rows(parquet_dir):
    from lanbot.generation.personas.nemotron import _sample_hub  # the hub path, pointed at a local folder

    picked = [int(row["uuid"].split("-")[1]) for _, row in _sample_hub(str(parquet_dir), "train", 3, 100, 500)]
    assert len(set(picked)) == 100 and picked != sorted(picked)
    assert max(picked) - min(picked) > 300  # drawn from a 500-row buffer, not the first 100 rows


def test_hub_unreachable_is_a_clear_error(tmp_path):
    code = ("from lanbot.generation.personas.nemotron import load_nemotron_personas\n"
            "load_nemotron_personas({'id': 'nvidia/Nemotron-Personas-USA', 'split': 'train'}, 0, 5)\n")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    assert "PersonaError" in proc.stderr and "personas.path=" in proc.stderr and "personas=builtin" in proc.stderr
