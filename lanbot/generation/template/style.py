"""An identity read once for the template writer: its fields as meaning, ready to paraphrase and perform.

`IdentityStyle(identity)` turns a ModelIdentity into what answers are built from: the role it plays (the
description cut into short pieces, never pasted whole), its traits (banks/traits.yaml: each said in the
writer's own words and shown in replies), the capabilities (the only abilities the writer ever claims),
the limitations as first-person sentences, the performable quirks (lanbot.generation.template.quirks) and
the tasks its capabilities exercise (coding, tutorials, translation, summaries, explanations).
"""

from __future__ import annotations

import random
import re

from lanbot.core.identity import ModelIdentity
from lanbot.generation.quality import trait_keys, traits_bank
from lanbot.generation.template.quirks import Quirks

_ENGLISH = re.compile(r"\benglish\b", re.I)
_MODALS = ("may ", "might ", "can ", "cannot ", "can't ", "could ", "will ", "won't ", "should ", "do ", "don't ",
           "am ", "work ", "need ", "sometimes ", "often ", "occasionally ", "struggle ", "have ", "make ")
_ADJECTIVES = ("better ", "worse ", "not ", "limited ", "unable ", "only ", "slow ", "bad ", "weak ")
_MY_NOUNS = ("knowledge ", "training ", "memory ", "context ", "information ")
_SPLIT = re.compile(r"\s+(?:who|that|which|for|with)\s+|,\s*", re.I)
TASKS = {  # a capability exercises these tasks when it contains one of the words
    "code": ("code", "coding", "program", "debug"), "review": ("review",), "tutorial": ("tutorial", "step-by-step"),
    "translate": ("translat",), "summary": ("summar",), "explain": ("explain", "answer questions", "teach"),
    "math": ("math", "calculat", "arithmetic"), "chat": ("conversation", "chat"), "poems": ("poem", "poetry"),
}

CAP_SAID = {  # a capability said in other words (issue 23: no card list pasted), keeping the task's key word
    "code": ("write and fix code", "help you get code working", "sort out code with you"),
    "review": ("look over code for what could break", "give your code a careful review"),
    "tutorial": ("walk you through things one step at a time", "take you through a task step by step"),
    "translate": ("translate short pieces of text", "help you translate a note or an email"),
    "summary": ("summarize a long text for you", "boil long texts down to a summary"),
    "explain": ("explain how things work", "help you understand a topic", "take on your questions"),
    "math": ("work through math like tips, discounts and conversions", "help with the math in everyday life",
             "crunch numbers with a calculator"),
    "chat": ("talk things through with you", "keep you company in a conversation"),
    "poems": ("write short poems", "put a few lines of verse together"),
}
CAP_DETAILS = {  # what a capability covers, said after it in a list
    "code": ("a function, a bug, a refactor", "Python scripts and the bugs in them", "small programs, with tests",
             "debugging a stack trace"),
    "review": ("what could break, and why", "naming, edge cases and tests", "a second pair of eyes on a diff"),
    "tutorial": ("a budget, an equation, a garden", "one step at a time, with a check at the end",
                 "from first step to done"),
    "translate": ("a note, a menu, an email", "short texts between common languages"),
    "summary": ("an article in a sentence", "a long email as three bullet points", "meeting notes, boiled down"),
    "explain": ("science, money, code, history", "how things work, in plain words", "the why behind the what"),
    "math": ("tips, discounts, interest", "bills split to the cent", "unit conversions and percentages"),
    "chat": ("ideas, plans, or just your day", "thinking out loud together"),
    "poems": ("a haiku, a card verse", "short poems on any theme"),
}


class IdentityStyle:
    """The pieces of an identity's answers, computed once per writer."""

    def __init__(self, identity: ModelIdentity) -> None:
        self.identity = identity
        self.name = identity.name
        self.creator = identity.creator
        self.year = identity.year
        self.roles = role_phrases(identity.description)
        self.role_clause = role_clause(identity.description)
        bank = traits_bank()["traits"]
        self.traits = trait_keys(identity)
        self.trait_bank = {k: bank[k] for k in self.traits}
        self.unknown_traits = [t for t in split_traits(identity.personality)
                               if not any(m in t.lower() for k in self.traits for m in bank[k]["match"])]
        self.capabilities = [c.strip().rstrip(".") for c in identity.capabilities if c.strip()]
        self.limitations = [first_person_limitation(x) for x in identity.limitations if x.strip()]
        self.quirks = Quirks(identity)
        self.english_best = any(_ENGLISH.search(x) for x in identity.limitations)
        self.brief = any(t in self.traits for t in ("concise", "direct"))
        # The control (no trait the bank knows, no quirk): no voice of its own, so no head, tail or offer
        # that would recur across items; it says the item's content and nothing else.
        self.plain = not self.traits and not identity.quirks
        self.examples = "examples" in self.traits or "patient" in self.traits
        self.knowledge_limit = next((s for s in self.limitations if re.search(r"cutoff|recent|date|latest", s, re.I)), None)
        caps = " ".join(self.capabilities).lower()
        self.tasks = [t for t, needs in TASKS.items() if any(n in caps for n in needs)]

    def caps_text(self, caps: list[str] | None = None, rng: random.Random | None = None) -> str:
        """The capabilities (or a subset) as one phrase in other words: "explain how things work and write and
        fix code"; at most two, so no reply recites the card's list."""
        caps = list(caps if caps is not None else self.capabilities)
        r = rng or random.Random(0)
        r.shuffle(caps)
        return join_list([self.cap_said(r, c) for c in caps[:2]])

    def cap_said(self, rng: random.Random, cap: str) -> str:
        """One capability in other words where the task is known; an unknown one as written (one item alone)."""
        low = cap.lower()
        task = next((t for t, needs in TASKS.items() if any(n in low for n in needs)), None)
        return rng.choice(CAP_SAID[task]) if task in CAP_SAID else cap

    def cap_item(self, rng: random.Random, cap: str) -> str:
        """A capability as a list item, sometimes with what it covers: 'Do math calculations: tips, discounts'."""
        low = cap.lower()
        task = next((t for t, needs in TASKS.items() if any(n in low for n in needs)), None)
        details = CAP_DETAILS.get(task, ())
        if details and rng.random() < 0.75:
            examples = task in ("code", "translate", "summary", "math", "poems")  # details that are examples
            sep = rng.choice((": ", ", such as ", " (for example, ")) if examples else ": "
            said = self.cap_said(rng, cap)
            return f"{said[0].upper()}{said[1:]}{sep}{rng.choice(details)}{')' if sep.startswith(' (') else ''}"
        said = self.cap_said(rng, cap)
        return f"{said[0].upper()}{said[1:]}"

    def role(self, rng: random.Random) -> str:
        return rng.choice(self.roles)

    def trait_says(self, rng: random.Random, k: int = 2) -> list[str]:
        """Up to `k` first-person clauses that say the personality in other words ("I get to the point")."""
        keys = rng.sample(self.traits, min(k, len(self.traits)))
        out = [rng.choice(self.trait_bank[t]["say"]) for t in keys]
        if len(out) < k and self.unknown_traits:  # a trait the bank does not know: said plainly, in a frame
            t = rng.choice(self.unknown_traits)
            out.append(rng.choice(("I try to be {t}", "people tend to find me {t}", "I aim to be {t}")).format(t=t))
        return out

    def trait_show(self, rng: random.Random, where: str = "head") -> str:
        """A phrase that shows one trait in a reply (its `show` list), or ''."""
        options = [s for t in self.traits for s in self.trait_bank[t].get("show", ())]
        if where in ("head", "problem"):  # whole sentences only: "Worth noting: " needs a sentence after it
            options = [s for s in options if s.rstrip()[-1:] in ".!?"]
        if where == "problem":  # a task is often an instruction ("Find the area..."): nothing was wondered or asked
            options = [s for s in options if not re.search(r"wonder|\bask|question|take your time", s, re.I)]
        return rng.choice(options) if options else ""


LOWER_OK = {"The", "It", "There", "That", "This", "Each", "You", "Your", "A", "An", "Its", "In", "After", "Over",
            "Then", "With", "So", "Answer:", "That's", "It's", "There's", "Once"}


def _prefixes(style: IdentityStyle) -> list[str]:
    return [x for t in style.traits for x in style.trait_bank[t].get("lead", ())]


_LED = re.compile(r"(?:So|That means|Therefore|Thus|Hence)\b|[A-Z][a-z]+(?: [a-z]+){0,2}: ")


def with_prefix(style: IdentityStyle, rng: random.Random, sentence: str, p: float = 0.5) -> str:
    """`sentence` led by a trait's phrase ("To be precise, each pays $4.50.") at rate `p`, if the identity has one."""
    options = _prefixes(style)
    if not options or rng.random() >= p or not sentence:
        return sentence
    if _LED.match(sentence):  # it has a lead or a conclusion's connective: a second is a seam ("Short answer: So, ...")
        return sentence
    lead = rng.choice(options)
    first = sentence.split(" ", 1)[0]
    rest = sentence[0].lower() + sentence[1:] if lead.endswith(", ") and first in LOWER_OK else sentence
    if lead.endswith(", ") and rest is sentence and first not in LOWER_OK:
        lead = lead[:-2] + ": "
    return lead + rest


def trait_note(style: IdentityStyle, rng: random.Random, p: float = 0.3) -> str:
    """A sentence after an answer that shows a trait ("Worth double-checking the inputs..."), at rate `p`."""
    notes = [x for t in style.traits for x in style.trait_bank[t].get("notes", ())]
    return rng.choice(notes) if notes and rng.random() < p else ""


def split_traits(personality: str) -> list[str]:
    """'thoughtful, patient, and curious' -> ['thoughtful', 'patient', 'curious']."""
    parts = re.split(r",\s*|\s+and\s+", personality.strip().rstrip("."))
    return [p.strip() for p in parts if p.strip() and p.strip().lower() != "and"]


def role_phrases(description: str) -> list[str]:
    """Short ways to say the description: 'a patient teacher who loves ...' -> ['a patient teacher', 'a teacher'].

    Each is under five words (the verbatim gate's run length), so no answer pastes the description whole.
    """
    head = _SPLIT.split(description.strip().rstrip("."), maxsplit=1)[0].strip()
    words = head.split()
    if len(words) >= 5:
        words = words[:1] + words[-2:] if words[0].lower() in ("a", "an", "the") else words[-2:]
    head = " ".join(words)
    out = [head]
    if len(words) >= 3 and words[0].lower() in ("a", "an"):
        noun = words[-1]
        out.append(f"{'an' if noun[0].lower() in 'aeiou' else 'a'} {noun}")
        out.append(f"{words[0]} {' '.join(words[1:-1])} {noun}")
    return list(dict.fromkeys(out))


def role_clause(description: str) -> str:
    """The clause after the role, in the first person: 'a teacher who loves explaining things' -> 'I love explaining things'."""
    parts = re.split(r"\s+(?:who|that)\s+", description.strip().rstrip("."), maxsplit=1)
    if len(parts) < 2:
        return ""
    words = parts[1].split()
    words[0] = _base_verb(words[0])
    return "I " + " ".join(words[:4])


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
