"""The prompts of the LLM backend, composed from the files in lanbot/generation/llm/prompts/.

`PromptBook()` reads the prompt templates (system.md, user.md, styles.yaml with openings,
voices and languages, schema.json) and the template writer's question phrasings
(templates/identity_questions.yaml), once. `book.compose(identity, kind, persona, rng)` returns the chat
messages for one conversation and the choices it made (opening, phrasing, language code, turns) for the
meta sidecar: the language is recorded as its code ("en", "es", ...), as the template writer records it.
`book.schema_for(kind, turns)` is the JSON schema sent with that request, from the type's rules
(lanbot.core.conversation.TYPE_SPECS): the messages in order as an object (user_1, assistant_1, ...: one
pair per exchange); for a type without calls, text parts only; for a tool type, the parts in order as an
object too (intro, call_1, after_1, ...: as many calls as the type needs, a `plan` part of numbered steps
first where it plans). On llama.cpp the schema becomes the
grammar the model samples under, so even a 135M model writes that shape: no stray calculator call, no
tool answer without one, a plan where one is due. The parser reads both forms (llm/parse.py).
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
NAME_OPENERS = ("I'm {name}.", "I am {name}.", "{name} here.", "This is {name}.", "Hi! I'm {name}.",
                "Hello, I'm {name}.", "My name is {name}.", "Hey, {name} here.")
MAX_PARTS = 7  # parts per assistant message: a plan, three calls and their texts fit


def _obj(**properties: dict) -> dict:
    return {"type": "object", "properties": properties, "required": list(properties)}


_STRING = {"type": "string"}
_TEXT_PART = _obj(type={"const": "text"}, text=_STRING)
_CALC_PART = _obj(type={"const": "calculator"}, expression=_STRING, result=_STRING)
_PLAN_PART = _obj(type={"const": "plan"}, steps={"type": "array", "minItems": 2, "maxItems": 4, "items": _STRING})


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

    def schema_for(self, kind: str, turns: int, say_name: str | None = None) -> dict:
        """The JSON schema of one `kind` answer with `turns` exchanges (see the module docstring).

        `say_name`: for a type that must say the identity's name, the first reply opens with one of a few
        fixed sentences holding it (backend.schema_says_name: small local models forget the name otherwise;
        the openers repeat, so capable models are better left free).
        """
        spec = TYPE_SPECS.get(kind)
        if spec is not None and spec.calls:  # the order the type's rules need, as an ordered object
            ordered = {"plan": _PLAN_PART} if spec.plan_first else {"intro": _TEXT_PART}
            for i in range(1, min(int(spec.calls), (MAX_PARTS - 1) // 2) + 1):
                ordered |= {f"call_{i}": _CALC_PART, f"after_{i}": _TEXT_PART}
            parts = _obj(**ordered)
        elif spec is None or spec.calls is None:  # calls allowed, not required
            parts = {"type": "array", "minItems": 1, "maxItems": MAX_PARTS, "items": {"anyOf": [_TEXT_PART, _CALC_PART]}}
        else:
            parts = {"type": "array", "minItems": 1, "maxItems": 2, "items": _TEXT_PART}
        user, assistant = _obj(role={"const": "user"}, content=_STRING), _obj(role={"const": "assistant"}, parts=parts)
        messages: dict[str, dict] = {}
        for turn in range(1, max(1, int(turns)) + 1):  # ordered too: user first, roles alternating
            messages |= {f"user_{turn}": user, f"assistant_{turn}": assistant}
        if say_name and spec is not None and spec.says_name:
            opener = _obj(type={"const": "text"}, text={"enum": [o.format(name=say_name) for o in NAME_OPENERS]})
            messages["assistant_1"] = _obj(role={"const": "assistant"}, parts=_obj(name=opener, reply=_TEXT_PART))
        return _obj(messages=_obj(**messages))

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
        spec = TYPE_SPECS.get(kind)
        if spec is not None and spec.says_name:
            extra = f"The assistant says its name, {identity.name}, in its first reply. "
        if language != "English":
            works_best = any("english" in str(x).lower() for x in identity.limitations)
            extra += (f"The user writes in {language}; the assistant answers in {language}"
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
