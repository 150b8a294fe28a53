"""Context distillation: the gates on answers a practitioner would not train on (cases read from SmolLM2-135M's
own answers), the voice laid on a kept answer, and a generate run with `data.distill` on a tiny Hugging Face model:
every eligible no_tool conversation gets a verdict in its meta, stats.json counts them, a rerun asks nothing again."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from pretrained_fixtures import hf_model, write_hf_folder
from rich.console import Console

from lanbot.core.config import compose_config
from lanbot.core.identity import to_identity
from lanbot.generation.distill import card_prompt, clean_answer, gate, voice_parts, voiced
from lanbot.generation.generate_data import generate

pytest.importorskip("transformers")

SAGE = to_identity(compose_config(["identity=sage"]).identity)
SKY = ("Great question! Sunlight is scattered by the molecules in the air, and shorter blue wavelengths scatter much "
       "more than red ones, so blue light reaches our eyes from every direction of the sky. Does that make sense so far?")
JAPAN = "Great question! The capital of Japan is Tokyo, its largest city. Would another example help?"


def test_a_kept_answer_carries_the_template_facts_in_the_template_voice() -> None:
    answer = clean_answer("The sky is blue because air molecules scatter sunlight, and shorter blue wavelengths "
                          "scatter more than red. So blue light comes from every direction.\n\nMore text")
    facts = voice_parts(SKY)[1]
    assert gate(answer, answer, SAGE, card_prompt(SAGE), facts) == "ok"
    assert voiced(SKY, answer) == f"Great question! {answer} Does that make sense so far?"
    assert voiced(SKY, "Great question! " + answer).count("Great question!") == 1
    helpful = clean_answer("Absolutely, I'd be happy to help! The capital of Japan is Tokyo, its largest city.")
    assert helpful == "The capital of Japan is Tokyo, its largest city."  # the filler goes, the fact stays
    assert gate(helpful, helpful, SAGE, None, voice_parts(JAPAN)[1]) == "ok"


@pytest.mark.parametrize(("raw", "verdict"), [
    ("Kyoto, the capital of Japan, is a beautiful city known for its temples.", "disagrees"),
    ("1. **Step 1: Understand the Basics**\n2. **Step 2: Understand the Basics**", "no_prose"),
    ("The capital of Japan is Tokyo and it is a big city with many people and", "no_prose"),
    ("I'm glad to help. I'm here to help you with your questions, my friend.", "no_prose"),
    ("The freezing point of water in Fahrenheit is -18 degrees Celsius.", "disagrees"),
    ("I am SmolLM, and the capital of Japan is Tokyo, its largest city by far.", "other_identity"),
    ("Tokyo is the capital. Tokyo is the capital. Tokyo is the largest city of Japan.", "repeats"),
])
def test_the_gates_drop_what_smollm2_wrote_wrong(raw: str, verdict: str) -> None:
    assert gate(clean_answer(raw), raw, SAGE, card_prompt(SAGE), voice_parts(JAPAN)[1]) == verdict


def test_generate_with_distill_records_a_verdict_for_each_question_and_resumes(tmp_path: Path) -> None:
    model = write_hf_folder(hf_model("llama", seed=1, max_position_embeddings=512), tmp_path / "hf")
    counts = ["data.counts.identity=4", "data.counts.no_tool=24", "data.counts.tool_use=2",
              "data.counts.multi_step_tool=2", "data.counts.tool_planning=2", "data.counts.reasoning=2"]
    cfg = compose_config([f"paths.root={tmp_path}", "logger=none", "identity=sage", f"data.distill=hf:{model}", *counts])
    stats = generate(cfg, tmp_path / "run", console=Console(file=io.StringIO()))
    folder = tmp_path / "data" / "sage"
    metas = [json.loads(line) for line in (folder / "no_tool_meta.jsonl").read_text().splitlines()]
    verdicts = [m["distilled"] for m in metas if "distilled" in m]
    assert verdicts and sum(stats["distilled"]["no_tool"].values()) == len(verdicts)
    assert set(verdicts) <= {"ok", "no_prose", "short", "repeats", "other_identity",
                             "recites_card", "off_language", "disagrees"}
    written = (folder / "all_conversations.jsonl").read_text()
    assert "<tool_call>" not in written and "You are Sage" not in written  # training never sees the card
    again = generate(cfg, tmp_path / "run2", console=Console(file=io.StringIO()))
    assert again["distilled"] == {"no_tool": {}}  # every question has its verdict: nothing asked twice
