"""User personas: the built-in list, seeded order, the nemotron hand-off and clear errors."""

from __future__ import annotations

import sys
import types
from collections import Counter

import pytest

from lanbot.core.config import compose_config
from lanbot.generation.personas import VOICES, PersonaError, load_personas, read_builtin


def test_builtin_list_is_large_varied_and_well_formed():
    personas = read_builtin()
    assert len(personas) >= 100
    assert len({p["id"] for p in personas}) == len(personas)
    voices = Counter(p["voice"] for p in personas)
    assert set(voices) <= VOICES and len(voices) >= 12
    for voice in ("terse", "formal", "typos", "lowercase", "emoji", "non_native", "kid", "retiree", "engineer"):
        assert voices[voice] >= 3, voice
    assert all(p["persona"].startswith(("a ", "an ")) and p["topics"] for p in personas)


def test_load_personas_from_the_composed_config_is_seeded():
    cfg = compose_config([])
    a = load_personas(cfg.personas, seed=1, needed=50)
    assert [p["id"] for p in a] == [p["id"] for p in load_personas(cfg.personas, seed=1, needed=50)]
    assert [p["id"] for p in a] != [p["id"] for p in load_personas(cfg.personas, seed=2, needed=50)]
    assert len(a) == len(read_builtin())


def test_unknown_source_is_a_clear_error():
    with pytest.raises(PersonaError, match="personas.source='wikipedia' is unknown.*builtin, nemotron"):
        load_personas({"source": "wikipedia"}, seed=0, needed=10)


def test_nemotron_source_is_delegated(monkeypatch):
    calls = []
    fake = types.ModuleType("lanbot.generation.personas.nemotron")

    def load_nemotron_personas(cfg, seed, needed):
        calls.append((cfg["source"], seed, needed))
        return [{"id": "n1", "persona": "a sailor", "voice": None}]

    fake.load_nemotron_personas = load_nemotron_personas
    monkeypatch.setitem(sys.modules, "lanbot.generation.personas.nemotron", fake)
    assert load_personas({"source": "nemotron"}, seed=5, needed=20)[0]["id"] == "n1"
    assert calls == [("nemotron", 5, 20)]


@pytest.mark.parametrize("text, message", [
    ("- {id: a, persona: 'a cook', voice: shouty}\n", "unknown voice 'shouty'"),
    ("- {id: a, persona: 'a cook'}\n- {id: a, persona: 'a baker'}\n", "duplicate id 'a'"),
    ("- {id: a}\n", "needs at least 'id' and 'persona'"),
    ("{}\n", "expected a YAML list"),
    ("- [unclosed\n", "cannot read personas"),
])
def test_bad_persona_file_names_the_file_and_problem(tmp_path, text, message):
    path = tmp_path / "personas.yaml"
    path.write_text(text)
    with pytest.raises(PersonaError, match=message) as err:
        read_builtin(path)
    assert str(path) in str(err.value)
