"""A seventh conversation type is one registration and one template writer: no data preset, no mix file.

The test registers `greeting` (the user says hello, the assistant greets back by name and offers help),
generates it beside identity through the real pipeline, and checks that the validator, the data folder,
stats.json, every mix and the LLM prompts all know it.
"""

from __future__ import annotations

import io
import json
import random

import pytest
from rich.console import Console

from lanbot.core import conversation
from lanbot.core.config import compose_config
from lanbot.core.conversation import ConversationType, register_type, validate
from lanbot.core.identity import to_identity
from lanbot.core.layout import conversations_file
from lanbot.generation.generate_data import generate, plan_targets
from lanbot.generation.llm.prompt_book import PromptBook
from lanbot.generation.personas import read_builtin
from lanbot.generation.template import writer as template_writer
from lanbot.training.mix import parse_sources, stage_entries

HELLOS = ("Hi!", "Hello there.", "Hey, good morning!", "Good evening.", "Yo!", "Howdy!")
OFFERS = ("What can I do for you?", "How can I help today?", "What are you working on?", "Need a hand with anything?")


def write_greeting(writer: template_writer.TemplateWriter, rng: random.Random, persona: dict):
    name = writer.identity.name
    reply = f"{rng.choice(('Hi', 'Hello', 'Hey'))}! I'm {name}. {rng.choice(OFFERS)}"
    return [{"role": "user", "content": rng.choice(HELLOS)}, {"role": "assistant", "content": reply}], {}


@pytest.fixture
def greeting():
    spec = register_type(ConversationType(
        "greeting", "the user says hello; the assistant greets back by name and offers help, no calculator.",
        count=12, says_name=True))
    template_writer.register_writer("greeting", write_greeting)
    yield spec
    conversation.TYPES.remove("greeting")
    del conversation.TYPE_SPECS["greeting"]
    del template_writer.EXTRA_WRITERS["greeting"]


def test_a_registered_type_is_generated_validated_mixed_and_prompted(tmp_path, greeting):
    assert list(plan_targets(compose_config([]).data))[-1] == "greeting"  # data=all: every registered type
    cfg = compose_config([f"paths.root={tmp_path}", "logger=none", "data.types=[identity,greeting]",
                          "data.counts.identity=5"])
    stats = generate(cfg, tmp_path / "run", console=Console(file=io.StringIO()))
    assert stats["counts"]["greeting"] == 12 and stats["counts"]["identity"] == 5  # its own default count
    folder = tmp_path / "data" / "lanbot"
    rows = [json.loads(line) for line in (folder / conversations_file("greeting")).read_text().splitlines()]
    assert len(rows) == 12 and all(validate(r, "greeting", "LanBot") == [] for r in rows)
    assert validate([{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}],
                    "greeting", "LanBot") == ["greeting conversation never says the name 'LanBot'"]
    combined = (folder / "all_conversations.jsonl").read_text().splitlines()
    assert len(combined) == 17

    for mix in ("default", "identity_heavy", "no_identity"):  # every mix trains it, with no mix file touched
        for stage in ("mid", "sft"):
            mixed = compose_config([f"mix={mix}"]).mix
            names = [s.name for s in parse_sources(stage_entries(mixed, stage)[0], stage)]
            assert names[-1] == "greeting" and names[0] == "identity", names

    identity = to_identity(compose_config([]).identity)
    messages, _ = PromptBook().compose(identity, "greeting", read_builtin()[0], random.Random(0))
    assert "greets back by name" in messages[-1]["content"]  # the LLM backend writes it from the type's brief
