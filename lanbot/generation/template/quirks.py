"""Quirks performed, not claimed: the identity's structured `quirk_hints` turned into what a reply does.

    q = Quirks(identity)
    text = q.dress(rng, "explanation", body, user="What is DNA?", topic=topic)   # opener, analogy, code, check

Each hint (lanbot.core.identity.QuirkHint) says how a quirk shows (opener, closing_question, analogy,
code_block, mentions, uncertainty) and in which reply kinds (`applies_to`, never `never_in`). The template
writer performs a hint in the replies it applies to, at the rates below (set so the measured rates clear the
issue's bars with margin: an opener on >= 80% of answers to explanation questions, analogies and check
questions on >= 50%, code where code fits on >= 60%), and never where `never_in` forbids it. A quirk without
a hint cannot be performed by templates: `unperformable` lists it, generation says so once at start, and the
writer never claims it (`claims` paraphrases only the hinted quirks).
"""

from __future__ import annotations

import random
import re

from lanbot.core.identity import ModelIdentity, QuirkHint
from lanbot.generation.quality import is_question, misfit_closer, sentences, words

RATE = {"opener": 0.92, "closing_question": 0.8, "analogy": 0.75, "code_block": 0.85, "mentions": 0.9,
        "uncertainty": 1.0}
OCCASIONAL = 0.55  # "occasionally uses analogies": the quirk's own word lowers its rate
CHECKS = (  # closing questions that check understanding, when the topic has none of its own
    "Does that make sense so far?", "Which part would you like me to go over again?",
    "Want to try a similar one yourself so we can check it together?", "Shall I walk through another example?",
    "Is that clear, or should I put it another way?", "Can you say back to me, in your own words, what the key step was?",
    "Does that match what you expected?", "Would another example help?", "How does that sit with you so far?",
)
WHY_CHECKS = ("Does that make sense?", "Is that clear, or should I put it another way?", "Does that explain it for you?")
FACT_CHECKS = (  # after a one-sentence fact there is nothing to go over or re-explain: was it what they expected?
    "Does that match what you expected?", "Had you come across that one before?", "Is that the answer you expected?",
    "Was that the one you had in mind?",
)
PROBLEM_CHECKS = (
    "Want to try one with different numbers?", "Would you like to check it another way?",
    "Could you do the next one yourself, do you think?", "Does that answer look about right to you?",
    "Does that match your own estimate?", "Want me to show the working by hand too?",
)
CHAIN_CHECKS = ("Can you see how the numbers fit together?", "Which step would you like to go over again?")  # 2+ results
LOGIC_CHECKS = (  # a puzzle worked by reasoning: check the steps, not numbers it may not have
    "Can you see why each step follows from the one before?", "Which step would you like me to go over again?",
    "Want to try a similar puzzle yourself?", "Does the reasoning make sense to you?",
)
GENERIC_ANALOGIES = {  # when a topic has no analogy of the domain: about working a problem out
    "cooking": ("Think of it like following a recipe: measure first, then mix, and the dish comes out right.",
                "It's like prepping ingredients before you cook: set everything out, then the steps go smoothly.",
                "Like tasting a sauce as it simmers, it pays to check each step before moving on."),
    "gardening": ("It's like planting a row of seeds: one at a time, in order, and the row takes care of itself.",
                  "Think of it like pruning: cut away what you don't need and the shape is clear.",
                  "Like checking the soil before watering, a quick look first saves work later."),
    "everyday": ("It's like packing a suitcase: the big things first, then the small ones fit around them.",
                 "Think of it like following a map: one turn at a time gets you there.",
                 "It's like checking a receipt: add it up line by line and nothing slips through."),
}
CLAIM = {  # first-person paraphrases of a performed quirk, by kind: what the identity may say about itself
    "opener": ("when you ask me how something works, I tend to open with {phrase}",
               "my explanations usually start with a cheerful {phrase}",
               "you'll often hear me say {phrase} before I explain something"),
    "closing_question": ("I like to finish an explanation by checking it made sense",
                         "after explaining, I usually ask a question to see if it clicked",
                         "I'll often end with a quick question to check we're on the same page"),
    "analogy": ("I explain with comparisons from {domains}", "I reach for comparisons from {domains} to make ideas stick",
                "you'll hear me compare ideas to things from {domains}", "I like to borrow pictures from {domains}",
                "a good comparison from {domains} is my favourite way in", "I tend to explain by analogy, often from {domains}"),
    "code_block": ("I usually show a short code example rather than describe one",
                   "most of my answers come with a snippet you can run"),
    "mentions": ("I make a point of mentioning {phrases}", "expect me to bring up {phrases} along the way"),
    "uncertainty": ("if I don't know something, I'll say so rather than guess",
                    "I'll tell you when I'm not sure instead of making something up",
                    "I'd rather admit I don't know than give you a confident wrong answer"),
}
DOMAIN_WORDS = {"cooking": "the kitchen", "gardening": "the garden", "everyday": "everyday life"}


class Quirks:
    """The hinted quirks of one identity, ready to perform; `unperformable` are left to the LLM backend."""

    def __init__(self, identity: ModelIdentity) -> None:
        self.hints: list[QuirkHint] = list(identity.quirk_hints)
        hinted = {h.quirk for h in self.hints}
        self.unperformable = [q for q in identity.quirks if q not in hinted]
        self.rate = {id(h): RATE[h.kind] * (OCCASIONAL / RATE["analogy"] if "occasional" in h.quirk.lower() else 1)
                     for h in self.hints}
        self.kinds = {h.kind for h in self.hints}

    def of(self, kind: str, reply_kind: str) -> QuirkHint | None:
        """The hint of quirk kind `kind` that applies to `reply_kind`, if any."""
        for h in self.hints:
            if h.kind == kind and reply_kind in h.applies_to and reply_kind not in h.never_in:
                return h
        return None

    def due(self, rng: random.Random, kind: str, reply_kind: str) -> QuirkHint | None:
        """The hint if it applies here and the rng says this reply performs it."""
        h = self.of(kind, reply_kind)
        return h if h is not None and rng.random() < self.rate[id(h)] else None

    def opener(self, rng: random.Random, reply_kind: str, user: str) -> str:
        """The opener quirk ("Great question!") for a reply to a question; '' for requests and other kinds."""
        h = self.due(rng, "opener", reply_kind)
        return rng.choice(h.phrases) if h is not None and h.phrases and is_question(user) else ""

    def analogy(self, rng: random.Random, reply_kind: str, topic: dict | None = None) -> str:
        h = self.due(rng, "analogy", reply_kind)
        if h is None:
            return ""
        domain = rng.choice(h.domains or ["everyday"])
        if topic and topic.get(domain):
            return topic[domain]
        return rng.choice(GENERIC_ANALOGIES.get(domain, GENERIC_ANALOGIES["everyday"]))

    def check(self, rng: random.Random, reply_kind: str, topic: dict | None = None, fits: str = "",
              reply: str = "", user: str = "") -> str:
        """A closing question that checks understanding, fitted to what there is to check (`fits`):
        "numbers" (several calculator results), "logic" (a puzzle without numbers to fit), else generic.

        With the `reply` so far (and the `user` turn), a closer the quality gate calls a misfit is never drawn:
        no "another example?" where none was given, no "which part?" after one sentence (a fact gets FACT_CHECKS).
        """
        if self.due(rng, "closing_question", reply_kind) is None:
            return ""
        if topic and topic.get("check") and rng.random() < 0.6:
            return topic["check"]
        if fits == "logic":
            pool = LOGIC_CHECKS
        elif reply_kind == "problem":
            pool = PROBLEM_CHECKS + (CHAIN_CHECKS if fits == "numbers" else ())
        else:
            pool = CHECKS
        if reply:
            said = [x for x in sentences(reply) if len(words(x)) > 3]  # "Great question!" says nothing to check
            fitting = tuple(c for c in pool if not misfit_closer(f"{reply} {c}", user))
            if len(said) <= 1 and reply_kind != "problem":  # one sentence: a why gets "clear?", a what "expected?"
                fitting = WHY_CHECKS if re.search(r"\b(why|how)\b", user, re.I) else ()
            pool = fitting or FACT_CHECKS
        return rng.choice(pool)

    def wants_code(self, rng: random.Random, reply_kind: str) -> bool:
        return self.due(rng, "code_block", reply_kind) is not None

    def mentions(self, reply_kind: str) -> list[QuirkHint]:
        return [h for h in self.hints if h.kind == "mentions" and reply_kind in h.applies_to
                and reply_kind not in h.never_in]

    def uncertain(self, reply_kind: str) -> bool:
        return self.of("uncertainty", reply_kind) is not None

    def claims(self, rng: random.Random, k: int = 2) -> list[str]:
        """Up to `k` first-person clauses about quirks this identity really performs (never an unhinted one)."""
        out = []
        for h in rng.sample(self.hints, min(k, len(self.hints))):
            frame = rng.choice(CLAIM[h.kind])
            domains = " and ".join(DOMAIN_WORDS.get(d, d) for d in (h.domains or ["everyday"]))
            phrases = " and ".join(f"{p}s" if h.kind == "mentions" and p.endswith("case") else p
                                   for p in h.phrases[:2]) or "the details"
            out.append(frame.format(phrase=f"\"{h.phrases[0]}\"" if h.phrases else "a friendly opener",
                                    domains=domains, phrases=phrases))
        return out
