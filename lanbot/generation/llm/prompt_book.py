"""The prompts of the LLM backend, composed from the files in lanbot/generation/llm/prompts/.

`PromptBook()` reads the prompt templates (system.md, user.md, styles.yaml with openings,
voices and languages, schema.json) and the template writer's question phrasings
(templates/identity_questions.yaml), once. `book.compose(identity, kind, persona, rng)` returns the chat
messages for one conversation and the choices it made (opening, phrasing, language code, turns) for the
meta sidecar: the language is recorded as its code ("en", "es", ...), as the template writer records it.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import yaml

from lanbot.core.conversation import TYPE_SPECS
from lanbot.core.identity import OTHER_ASSISTANTS  # for "are you {other}?"
from lanbot.generation.banks import BANKS_DIR

PROMPTS = Path(__file__).resolve().parent / "prompts"
TEMPLATES = BANKS_DIR
OTHER_LANGUAGE_SHARE = 0.2  # identity conversations in a language other than English


def _yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8")) if path.is_file() else None


class PromptBook:
    """Prompt templates and the diversity axes they draw from."""

    def __init__(self, prompts: Path = PROMPTS, templates: Path = TEMPLATES) -> None:
        self.system = (prompts / "system.md").read_text(encoding="utf-8")
        self.user = (prompts / "user.md").read_text(encoding="utf-8")
        styles = _yaml(prompts / "styles.yaml")
        self.openings: list[str] = styles["openings"]
        self.voices: dict[str, str] = styles["voices"]
        self.schema: dict = json.loads((prompts / "schema.json").read_text(encoding="utf-8"))
        questions = _yaml(templates / "identity_questions.yaml") or {}
        self.phrasings = [p for q in questions.values() if isinstance(q, dict) for p in q.get("phrasings", [])]
        if not self.phrasings:
            self.phrasings = ["Who are you?", "What's your name?", "Who made you?", "What can you do?"]
        self.languages: dict[str, str] = dict(styles.get("languages") or {})  # code -> name, English aside

    def compose(self, identity: Any, kind: str, persona: dict, rng: random.Random) -> tuple[list[dict], dict]:
        """The chat messages asking for one `kind` conversation, and the choices behind them."""
        opening = rng.choice(self.openings)
        phrasing = rng.choice(self.phrasings) if kind == "identity" else None
        other = rng.choice([o for o in OTHER_ASSISTANTS if o.lower() != str(identity.name).lower()])
        code, language = "en", "English"
        if kind == "identity" and self.languages and rng.random() < OTHER_LANGUAGE_SHARE:
            code = rng.choice(sorted(self.languages))
            language = self.languages[code]
        turns = rng.choice([1, 1, 2, 3]) if kind == "identity" else rng.choice([1, 1, 1, 2])
        extra = ""
        if language != "English":
            works_best = any("english" in str(x).lower() for x in identity.limitations)
            extra = (f"The user writes in {language}; the assistant answers in {language}"
                     + (" and mentions it works best in English." if works_best else "."))
        fields = {
            "name": identity.name, "creator": identity.creator, "year": identity.year,
            "description": identity.description, "personality": identity.personality,
            "quirks": "; ".join(identity.quirks) or "none",
            "capabilities": "; ".join(identity.capabilities) or "none",
            "limitations": "; ".join(identity.limitations) or "none",
        }
        user = self.user.format(
            kind=kind, task=TYPE_SPECS[kind].task, persona=describe(persona),
            voice=self.voices.get(persona.get("voice") or "plain", ""), opening=opening,
            phrasing=f'One of their questions is close to: "{phrasing.replace("{other}", other)}"' if phrasing else "",
            language=language, turns=turns, extra=extra,
        )
        messages = [{"role": "system", "content": self.system.format(**fields)}, {"role": "user", "content": user}]
        return messages, {"opening": opening, "phrasing": phrasing, "language": code, "turns": turns}


def describe(persona: dict) -> str:
    """The persona as a sentence for the prompt: who they are plus any real-world details it carries."""
    details = [f"{k.replace('_', ' ')} {persona[k]}" for k in ("age", "sex", "occupation", "education_level")
               if persona.get(k)]
    if place := ", ".join(str(persona[k]) for k in ("city", "state") if persona.get(k)):
        details.append(f"lives in {place}")
    for key in ("skills", "hobbies"):
        if persona.get(key):
            details.append(f"{key}: {', '.join(map(str, persona[key][:4]))}")
    text = str(persona.get("persona") or "someone").rstrip(".")
    return text + (f" ({'; '.join(details)})" if details else "")
