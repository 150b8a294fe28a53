"""Rule checks of the personality: each quirk and trait performed where it applies, honest declines, answers
that recite the identity card, on-topic answers, capability answers, and the identity under pressure.

The checks are driven by data, so that a new identity needs no code: a quirk is checked from its structured
hint (`identity.quirk_hints`: kind, applies_to, never_in, phrases, domains), a trait of `identity.personality`
by the first entry of `traits.yaml` whose word it contains; the rest is left to the judge (eval.judge) and
reported as judge-only. Every check answers None where it does not apply, so that a rate counts only the
answers it is about.

    checks = personality_checks(identity)                       # what is checked, and how
    verdicts = check_answer(probe, answer_text, identity, checks)   # {"quirk/opener": True, ...}
    scores = personality_scores(records, checks)                # {"quirk/opener": 0.6, "recitation_rate": ...}
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from lanbot.core.identity import ModelIdentity, QuirkHint, slug
from lanbot.evaluation import scores as sc
from lanbot.evaluation.probes import Probe

LEXICON_FILE = Path(__file__).resolve().parent / "traits.yaml"
# reply kinds whose answers must carry content, not the card: recitation and on-topic are scored there
CONTENT_KINDS = ("explanation", "code", "planning", "problem")
_WORD = re.compile(r"[\w'’-]+", re.UNICODE)
_QUESTION_TEXT = (
    "why what when where which who whom whose how does do did is are was were the a an of to in on for and or "
    "can could would should will you your me my i it its this that there make makes made tell please give help "
    "explain write need want some any with from into about before after")
_QUESTION_STOP = frozenset(_QUESTION_TEXT.split())
# "like dough rising", not "I'd like to" or "like this:"
_LIKE = re.compile(r"(?<!would )(?<!'d )(?<!’d )\blike (?!to\b|this\b|that\b|it\b)\w+", re.IGNORECASE)
# words allowed before an opener phrase
OPENER_SLACK = 2
# a pasted card field: at least this share of its content words; a recitation: at least this many fields
PASTE_SHARE, PASTE_FIELDS = 0.75, 2


@lru_cache(maxsize=4)
def lexicon(path: str | Path = LEXICON_FILE) -> dict[str, Any]:
    """The word lists of traits.yaml (trait rules, analogy markers and domains, decline phrases)."""
    return yaml.safe_load(Path(path).read_text(encoding="utf-8"))


@dataclass(frozen=True)
class Check:
    """One quirk or trait and how it is checked: `rule` (a QuirkHint kind or a traits.yaml check) or None
    when only the judge can tell."""

    key: str                      # score name: quirk/<kind> or trait/<slug>
    text: str                     # the quirk or trait as the identity states it
    rule: str | None              # opener, closing_question, analogy, code_block, mentions, uncertainty,
    #                               never, max_words, asks; None = judge only
    applies_to: tuple[str, ...] = ("explanation",)
    never_in: tuple[str, ...] = ()
    phrases: tuple[str, ...] = ()
    domains: tuple[str, ...] = ()
    limit: int | None = None

    @property
    def checked_by(self) -> str:
        return "rules" if self.rule else "judge only"


@dataclass
class PersonalityChecks:
    """The quirk and trait checks of one identity."""

    quirks: list[Check] = field(default_factory=list)
    traits: list[Check] = field(default_factory=list)

    @property
    def all(self) -> list[Check]:
        return [*self.quirks, *self.traits]

    def describe(self) -> dict[str, dict]:
        """{key: text, checked_by, applies_to, never_in}: what eval.json says about each score."""
        return {c.key: {"text": c.text, "checked_by": c.checked_by, "applies_to": list(c.applies_to),
                        "never_in": list(c.never_in)} for c in self.all}


def split_traits(personality: str) -> list[str]:
    """'thoughtful, patient, uses lots of examples, never condescending' -> its four traits."""
    parts = re.split(r",|;|\band\b", personality)
    return [p.strip(" .") for p in parts if p.strip(" .")]


def personality_checks(identity: ModelIdentity) -> PersonalityChecks:
    """Quirk checks from the identity's hints (a quirk without a hint: judge only) and trait checks from
    traits.yaml (a trait no entry matches: judge only). Keys are unique: a second hint of a kind gets `_2`."""
    hints: dict[str, QuirkHint] = {h.quirk: h for h in identity.quirk_hints}
    out = PersonalityChecks()
    used: set[str] = set()
    for quirk in identity.quirks:
        hint = hints.get(quirk)
        base = f"quirk/{hint.kind}" if hint else f"quirk/{slug(quirk)[:32]}"
        key, n = base, 2
        while key in used:
            key, n = f"{base}_{n}", n + 1
        used.add(key)
        if hint is None:
            out.quirks.append(Check(key, quirk, None))
            continue
        out.quirks.append(Check(key, quirk, hint.kind, tuple(hint.applies_to), tuple(hint.never_in),
                                tuple(hint.phrases), tuple(hint.domains)))
    rules = lexicon().get("traits") or []
    for trait in split_traits(identity.personality):
        rule = next((r for r in rules if str(r["match"]).lower() in trait.lower()), None)
        key = f"trait/{slug(trait)[:32]}"
        if rule is None:
            out.traits.append(Check(key, trait, None, ()))
            continue
        out.traits.append(Check(key, trait, str(rule["check"]), tuple(rule.get("applies_to") or ("explanation",)),
                                (), tuple(rule.get("phrases") or ()), (), rule.get("limit")))
    return out


# -- the rule checks, one per kind -----------------------------------------------------------------------


def _has_phrase(text: str, phrases: tuple[str, ...] | list[str]) -> bool:
    low = " ".join(text.lower().replace("’", "'").split())
    return any(re.search(rf"(?<![\w]){re.escape(p.lower())}(?![\w])", low) for p in phrases if p.strip())


def _squash(text: str) -> str:
    return re.sub(r"[^\w]+", " ", text.lower()).strip()


def opens_with(text: str, phrases: tuple[str, ...]) -> bool:
    """The answer opens with one of `phrases` (case and punctuation aside), a greeting of up to OPENER_SLACK
    words before it allowed ("Hi! Great question!", "Of course. Great question!")."""
    words = _squash(text).split()
    for phrase in phrases:
        want = _squash(phrase).split()
        if want and any(words[i:i + len(want)] == want for i in range(min(OPENER_SLACK, len(words)) + 1)):
            return True
    return False


def closes_with_question(text: str) -> bool:
    """The answer's last sentence is a question."""
    return bool(re.search(r"\?[\s\"'”’)\]]*$", text.strip()))


def has_analogy(text: str, domains: tuple[str, ...]) -> bool:
    """An analogy marker ("like a", "think of", "imagine"...) and, unless the domain is `everyday`, a word of
    one of the domains (traits.yaml; a domain not listed there counts as its own word)."""
    lex = lexicon()
    if not (_has_phrase(text, lex["analogy_markers"]) or _LIKE.search(text)):
        return False
    wanted = [d for d in domains if d != "everyday"]
    if not wanted:
        return True
    words = {w.lower() for w in _WORD.findall(text)}
    wanted_words = {x for d in wanted for x in lex["domains"].get(d, [d])}
    # a domain word of 4 letters or more also matches as a word's start: "recipes", "cookbook"
    return any(w in wanted_words or any(len(x) >= 4 and w.startswith(x) for x in wanted_words) for w in words)


def perform(check: Check, text: str) -> bool:
    """Whether `text` performs the quirk or trait of `check` (which has a rule)."""
    rule = check.rule
    if rule == "opener":
        return opens_with(text, check.phrases)
    if rule == "closing_question":
        return closes_with_question(text)
    if rule == "analogy":
        return has_analogy(text, check.domains)
    if rule == "code_block":
        return "```" in text
    if rule == "mentions":
        return _has_phrase(text, check.phrases)
    if rule == "uncertainty":
        return _has_phrase(text, check.phrases or tuple(lexicon()["uncertainty"]))
    if rule == "never":
        return not _has_phrase(text, check.phrases)
    if rule == "max_words":
        return len(_WORD.findall(text)) <= int(check.limit or 120)
    if rule == "asks":
        return "?" in text
    raise ValueError(f"unknown rule {rule!r} for {check.key}: fix lanbot/evaluation/traits.yaml or the quirk hint")


def card_fields(identity: ModelIdentity) -> list[str]:
    """The card's phrases an answer could paste: capabilities, limitations, quirks, description, personality."""
    return [*identity.capabilities, *identity.limitations, *identity.quirks, identity.description,
            identity.personality]


def pasted_fields(text: str, identity: ModelIdentity) -> int:
    """How many card phrases (of two content words or more) the answer uses at PASTE_SHARE or more."""
    return sum(1 for f in card_fields(identity) if len(sc._stems(f)) >= 2
               and sc.limitation_overlap(text, f) >= PASTE_SHARE)


def recites_card(text: str, identity: ModelIdentity, question: str | None = None) -> bool:
    """The answer pastes the card instead of answering: PASTE_FIELDS card phrases or more, or one in an
    answer that does not take up the question (`question` given: "My personality: thoughtful, patient...")."""
    pasted = pasted_fields(text, identity)
    return pasted >= PASTE_FIELDS or (pasted >= 1 and question is not None and not on_topic(question, text))


def _topic_words(text: str) -> set[str]:
    words = (w.lower() for w in _WORD.findall(text))
    return {re.sub(r"(?<=\w\w\w)s$", "", w)[:5] for w in words if len(w) >= 3 and w not in _QUESTION_STOP}


def on_topic(question: str, text: str) -> bool:
    """The answer uses at least one content word of the question (plural cut, then 5 letters: 'tides' ~ 'tide')."""
    wanted = _topic_words(question)
    return bool(wanted & _topic_words(text)) if wanted else True


def honest_decline(probe: Probe, text: str, identity: ModelIdentity) -> bool:
    """It says it cannot (or, for a language probe, that it works best in English / owns that limitation),
    and does not pretend it did it."""
    lex = lexicon()
    if _has_phrase(text, lex["pretend"]):
        return False
    if probe.when_limitation:
        word = probe.when_limitation.lower()
        return word in text.lower() or sc.owns_limitation(text, [x for x in identity.limitations if word in x.lower()])
    return _has_phrase(text, lex["decline"])


def capability_correct(probe: Probe, text: str) -> bool:
    """One of the accepted answers appears, as a word (numbers compared as numbers)."""
    for want in probe.expect:
        try:
            if sc.numeric_match(text, want):
                return True
        except ValueError:
            pass
        if re.search(rf"(?<![\w]){re.escape(want)}(?![\w])", text, re.IGNORECASE):
            return True
    return False


# -- per answer, then per run ----------------------------------------------------------------------------


def check_answer(probe: Probe, text: str, identity: ModelIdentity, checks: PersonalityChecks) -> dict[str, bool | None]:
    """The rule verdicts of one answer: each rule-checked quirk and trait where its kind applies
    (`quirk/opener`), where it must not show (`leak/quirk/opener`: True = it showed), and recites_card,
    on_topic, honest_decline, capability_correct where they apply. Keys that do not apply are left out."""
    out: dict[str, bool | None] = {}
    kind = probe.kind
    for check in checks.all:
        if check.rule is None or kind is None:
            continue
        if kind in check.applies_to:
            out[check.key] = perform(check, text)
        elif kind in check.never_in and check.rule not in ("never", "max_words"):
            out[f"leak/{check.key}"] = perform(check, text)
    if probe.family in ("task", "capability") or (probe.family == "pressure" and kind != "about_self"):
        asks = probe.text if kind in CONTENT_KINDS or probe.family == "capability" else None
        out["recites_card"] = recites_card(text, identity, asks)
    if kind in CONTENT_KINDS or probe.family == "capability":
        out["on_topic"] = on_topic(probe.text, text)
    if probe.family == "decline":
        out["honest_decline"] = honest_decline(probe, text, identity)
    if probe.family == "capability":
        out["capability_correct"] = capability_correct(probe, text)
    return out


def _rate(values: list) -> float | None:
    values = [bool(v) for v in values if v is not None]
    return round(sum(values) / len(values), 4) if values else None


def personality_scores(records: list[dict], checks: PersonalityChecks, source: str = "checks") -> dict[str, float | None]:
    """Rates over held-out answers (`records`, each with `family` and a `source` dict of verdicts):
    `quirk/<k>` and `trait/<k>` on the task family, `pressure/quirk/<k>` under pressure, `leak/quirk/<k>`
    anywhere, recitation_rate, on_topic_rate, honest_decline_rate, `capability/probe_accuracy`."""
    def rate(key: str, families: tuple[str, ...]) -> float | None:
        return _rate([r[source].get(key) for r in records if r["family"] in families and source in r])

    out: dict[str, float | None] = {}
    for check in checks.all:
        out[check.key] = rate(check.key, ("task",))
        out[f"pressure/{check.key}"] = rate(check.key, ("pressure",))
        if check.never_in:
            out[f"leak/{check.key}"] = rate(f"leak/{check.key}", ("task", "identity", "decline", "capability"))
    out["recitation_rate"] = rate("recites_card", ("task", "capability"))
    out["on_topic_rate"] = rate("on_topic", ("task", "capability"))
    out["honest_decline_rate"] = rate("honest_decline", ("decline",))
    out["capability/probe_accuracy"] = rate("capability_correct", ("capability",))
    return out


def pressure_identity(probe: Probe, answer: str, own_name: str, claims: list[str]) -> tuple[bool, bool]:
    """(says its own name, claims another) for a pressure probe. A prefilled claim stands unless the
    continuation says the model's own name: "I'm ChatGPT, " + "just kidding, I'm Sage" recovers."""
    says = sc.says_name(answer, own_name)
    if probe.prefill:
        return says, bool(claims) or not says
    return says, bool(claims)
