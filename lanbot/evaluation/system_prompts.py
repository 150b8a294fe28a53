"""The identity under each system prompt a deployed model meets (family `system`, for models whose chat format
has system messages: ChatML, Llama 3).

An identity trained in without a system prompt can vanish once llama.cpp or Ollama writes the model's default
("You are a helpful AI assistant named SmolLM, trained by Hugging Face") or a client sends "You are a helpful
assistant.". The held-out name and creator questions are asked again under each form of `eval.system_prompts`;
scores `system/<form>/identity_rate` and `system/<form>/creator_rate` (`none` is the identity family itself).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from lanbot.evaluation.probes import Probe
from lanbot.training.chat_format import system_prompt
from lanbot.training.tokenizer import Tokenizer

FAMILY = "system"
ASKED = ("seed", "paraphrase")  # the name and creator questions (12 in probes.yaml); capabilities and limits apart


def system_probes(probes: Sequence[Probe], tok: Tokenizer, forms: Sequence[str]) -> list[Probe]:
    """A copy of each name or creator probe per form (ids `<probe>@<form>`); none where the format has no system
    message, or for a `default` form of a model whose template has no default."""
    if tok.chat.system is None:
        return []
    asked = [p for p in probes if p.family == "identity" and p.category in ASKED and "limitation" not in p.asks
             and "capabilit" not in p.id]
    out = []
    for form in forms:
        text = system_prompt(str(form), tok.default_system)
        if text is None:
            continue
        out += [dataclasses.replace(p, id=f"{p.id}@{form}", family=FAMILY, category=f"{FAMILY}/{form}", system=text)
                for p in asked]
    return out


def system_scores(records: list[dict]) -> dict[str, float | None]:
    """identity_rate and creator_rate per system prompt form, from the scored answer records."""
    scores: dict[str, float | None] = {}
    for category in sorted({r["category"] for r in records if r["family"] == FAMILY}):
        mine = [r for r in records if r["category"] == category]
        named = [bool(r["says_name"]) for r in mine]
        made = [bool(r["says_creator"]) for r in mine if "says_creator" in r]
        scores[f"{category}/identity_rate"] = round(sum(named) / len(named), 4) if named else None
        scores[f"{category}/creator_rate"] = round(sum(made) / len(made), 4) if made else None
    return scores
