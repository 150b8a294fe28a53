"""An identity read once for the template writer: its fields as ready-made sentences, and its quirks as flags.

`IdentityStyle(identity)` turns the free-text fields of a ModelIdentity into the pieces every answer is
composed from: the capabilities as a list to speak (the only abilities the writer ever claims), the
limitations and quirks as first-person sentences, and what the quirks mean for an answer: an opener
("starts explanations with 'Great question!'"), analogies and their domain, follow-up questions to check
understanding, code examples, edge cases, suggested tests, honest uncertainty, "works best in English".
"""

from __future__ import annotations

import random
import re

from lanbot.core.identity import ModelIdentity

CHECK_QUESTIONS = (
    "Does that make sense so far?", "Would you like me to go deeper into any part of that?",
    "Shall I walk through another example?", "Is there a part you'd like me to explain differently?",
    "Want to try one yourself so we can check it together?",
)
UNCERTAINTY = (
    "If I'm not sure about something, I'll say so rather than make it up.",
    "When I don't know, I'll tell you instead of guessing.",
    "I'd rather admit uncertainty than give you a confident wrong answer.",
)
EDGE_CASES = (
    "I'll also point out edge cases and error handling as we go.",
    "Expect me to flag edge cases (empty input, bad types, failures) along the way.",
)
ANALOGIES = {  # what the assistant is, and what its limits are, by the domain its quirk names
    "everyday": {
        "self": (
            "Think of me a bit like a well-read friend at the kitchen table: happy to talk things through, "
            "but you still make the calls.",
            "I'm a bit like a library help desk: you bring the question, I help you find your way through it.",
            "You could say I'm like a Swiss Army knife for questions: handy, but not every tool for every job.",
        ),
        "limits": (
            "My knowledge is like a newspaper printed on a certain day: solid up to then, silent about what "
            "came after.",
            "Like a GPS with an older map, I'll get you most places, but a brand-new road may surprise me.",
            "It's like asking a friend for directions: usually right, but worth a second look before a long trip.",
        ),
    },
    "cooking": {
        "self": (
            "Think of me like a recipe card that can answer back: I give you the steps, you do the cooking.",
            "I'm a bit like a sous-chef for ideas: I prep and explain, and you decide what goes on the plate.",
        ),
        "limits": (
            "Like a cookbook printed in {year}, I won't know the recipes invented since.",
            "I'm like a simplified recipe: great for learning the dish, but a professional kitchen needs more "
            "detail.",
        ),
    },
    "gardening": {
        "self": (
            "Learning with me is like tending a garden: we plant one idea, water it with examples, and watch "
            "it grow.",
            "I'm a bit like a gardening guide: I show you where to dig and why, and the garden is yours.",
        ),
        "limits": (
            "My knowledge is like a garden planted in {year}: it doesn't grow new plants on its own.",
            "Like pruning a plant to see its shape, I sometimes trim details away to make an idea clear.",
        ),
    },
}
_ENGLISH = re.compile(r"\benglish\b", re.I)
_OPENER = re.compile(r"""(?:starts?|opens?|begins?)\b[^'"]*?['"](.+?)['"]""", re.I)
_MODALS = ("may ", "might ", "can ", "cannot ", "can't ", "could ", "will ", "won't ", "should ", "do ", "don't ",
           "am ", "work ", "need ", "sometimes ", "often ", "occasionally ", "struggle ", "have ", "make ")
_ADJECTIVES = ("better ", "worse ", "not ", "limited ", "unable ", "only ", "slow ", "bad ", "weak ")
_MY_NOUNS = ("knowledge ", "training ", "memory ", "context ", "information ")


class IdentityStyle:
    """The pieces of an identity's answers, computed once per writer."""

    def __init__(self, identity: ModelIdentity) -> None:
        self.identity = identity
        self.name = identity.name
        self.creator = identity.creator
        self.year = identity.year
        self.desc = identity.description.strip().rstrip(".")
        self.personality = identity.personality.strip().rstrip(".")
        self.capabilities = [c.strip().rstrip(".") for c in identity.capabilities if c.strip()]
        self.limitations = [first_person_limitation(x) for x in identity.limitations if x.strip()]
        self.quirk_sentences = [first_person_quirk(q) for q in identity.quirks if q.strip()]
        quirks = " | ".join(identity.quirks).lower()
        match = _OPENER.search(" | ".join(identity.quirks))
        self.opener = match.group(1).strip() if match else None
        self.analogy_domains = [d for d in ("cooking", "gardening") if d[:4] in quirks] or (
            ["everyday"] if "analog" in quirks else [])
        self.checks_understanding = "follow-up" in quirks or "check understanding" in quirks
        self.code_examples = bool(re.search(r"\bcode\b.*\b(examples?|snippets?)\b|\bshow(s|ing)? code\b",
                                            quirks + " " + identity.personality.lower()))
        self.edge_cases = "edge case" in quirks or "error handling" in quirks
        self.suggests_tests = bool(re.search(r"\btests?\b", quirks))
        self.admits_uncertainty = "uncertain" in quirks
        self.english_best = any(_ENGLISH.search(x) for x in identity.limitations)
        personality = identity.personality.lower()
        self.brief = any(w in personality for w in ("concise", "direct", "terse", "brief"))
        self.examples = any(w in personality for w in ("example", "patient", "thorough"))
        self.knowledge_limit = next((s for s in self.limitations if re.search(r"cutoff|recent|date|latest", s, re.I)), None)

    def caps_text(self, caps: list[str] | None = None) -> str:
        """The capabilities (or a subset) as one phrase: "answer questions, help with coding, and do math"."""
        return join_list(caps if caps is not None else self.capabilities)

    def opener_for(self, rng: random.Random, p: float = 0.85) -> str:
        """The quirk's opener ("Great question!") most of the time, else nothing."""
        return self.opener if self.opener and rng.random() < p else ""

    def check_question(self, rng: random.Random, p: float = 0.7) -> str:
        """A follow-up question that checks understanding, for identities with that quirk."""
        return rng.choice(CHECK_QUESTIONS) if self.checks_understanding and rng.random() < p else ""

    def analogy(self, rng: random.Random, topic: str) -> str:
        """An analogy about the assistant itself ("self" or "limits") in the quirk's domain, or ''."""
        if not self.analogy_domains:
            return ""
        return rng.choice(ANALOGIES[rng.choice(self.analogy_domains)][topic]).format(year=self.year)

    def uncertainty(self, rng: random.Random) -> str:
        return rng.choice(UNCERTAINTY) if self.admits_uncertainty else ""


def join_list(items: list[str]) -> str:
    """['a', 'b', 'c'] -> 'a, b, and c'."""
    items = [i[0].lower() + i[1:] if i[:2] != "I " else i for i in items if i]
    if len(items) <= 1:
        return "".join(items)
    if len(items) == 2:
        return f"{items[0]} and {items[1]}"
    return f"{', '.join(items[:-1])}, and {items[-1]}"


def first_person_limitation(text: str) -> str:
    """A limitation as a sentence: 'may oversimplify' -> 'I may oversimplify.', 'better at x' -> "I'm better at x."."""
    t = text.strip().rstrip(".")
    low = t.lower() + " "
    if low.startswith(("i ", "i'm ", "my ")):
        out = t
    elif low.startswith(_MODALS):
        out = f"I {t}"
    elif low.startswith(_ADJECTIVES):
        out = f"I'm {t}"
    elif low.startswith(_MY_NOUNS):
        out = f"My {t}"
    else:
        out = t[0].upper() + t[1:]
    return out[0].upper() + out[1:] + "."


def first_person_quirk(text: str) -> str:
    """A quirk as a first-person verb phrase: 'uses analogies' -> 'use analogies'; 'occasionally uses' kept adverb."""
    words = text.strip().rstrip(".").split()
    if not words:
        return ""
    i = 1 if words[0].lower().endswith("ly") and len(words) > 1 else 0
    words[i] = _base_verb(words[i])
    phrase = " ".join(words)
    phrase = re.sub(r"\bit (\w+?)s\b", r"I \1", phrase)  # "tests for code it writes" -> "code I write"
    return re.sub(r"\bits\b", "my", phrase)


def _base_verb(word: str) -> str:
    low = word.lower()
    special = {"is": "am", "has": "have", "does": "do", "goes": "go"}
    if low in special:
        return special[low]
    if low.endswith("ies") and len(low) > 4:
        return word[:-3] + "y"
    if low.endswith(("ches", "shes", "sses", "xes", "zes")):
        return word[:-2]
    if low.endswith("s") and not low.endswith("ss"):
        return word[:-1]
    return word
