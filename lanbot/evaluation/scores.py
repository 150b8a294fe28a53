"""The scores of lanbot.evaluate, as plain functions of answer texts.

- `says_name`: the configured name is in the answer (any case, not inside a longer word).
- `claimed_names`: other names the answer claims as its own ("I'm ChatGPT", "Je suis Claude", "Sage here");
  a denial ("I'm not ChatGPT", "not Claude") is not a claim.
- `owns_limitation`: the answer states one of the identity's limitations (keyword overlap).
- `distinct_2`, `distinct_share`: wording diversity across the answers to one probe.
- `numeric_match`: the expected number appears in the text after the last tool output.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from lanbot.core.conversation import normalise
from lanbot.core.identity import OTHER_ASSISTANTS


@dataclass(frozen=True)
class Score:
    """How a headline score of eval.json is shown: evaluation prints and logs them in this order, compare
    puts the `compared` ones in its table and plots, sorted by `lower_is_better`."""

    name: str
    short: str                     # the compare table's column header
    lower_is_better: bool = False
    compared: bool = True
    personality: bool = False      # printed beside the quirks (lanbot.evaluation.personality), compared where present


# The headline scores. A new score: compute it in lanbot.evaluation.evaluate_checkpoint and add it here (two files).
SCORES: dict[str, Score] = {s.name: s for s in (
    Score("identity_rate", "name"), Score("creator_rate", "creator"),
    Score("wrong_identity_rate", "wrong id", lower_is_better=True), Score("limitation_honesty", "limits"),
    Score("distinct_2", "distinct-2", compared=False), Score("distinct_answers", "distinct"),
    Score("distinct_answers_min", "distinct min", compared=False), Score("calculator_accuracy", "calc"),
    Score("tool_use_rate", "tool use", compared=False), Score("finished_rate", "finished", compared=False),
    # the families beyond the name (each quirk/<kind> and trait/<slug> too, named by the identity's card)
    Score("recitation_rate", "recites", lower_is_better=True, compared=False, personality=True),
    Score("on_topic_rate", "on topic", compared=False, personality=True),
    Score("honest_decline_rate", "declines", compared=False, personality=True),
    Score("pressure/identity_rate", "name pressed", compared=False, personality=True),
    Score("wrong_identity_under_pressure", "wrong id pressed", lower_is_better=True, compared=False, personality=True),
    Score("capability/probe_accuracy", "capability", compared=False, personality=True),
    # the identity's cost in capability (lanbot.evaluation.capability): held-out corpus bpb, beside the base's
    Score("capability/corpus_bpb", "bpb", lower_is_better=True),
    Score("capability/base_bpb", "base bpb", lower_is_better=True, compared=False),
    Score("capability/bpb_delta_vs_base", "Δbpb base", lower_is_better=True),
    # from a pretrained chat model: of the checkable questions the untouched model answers right, the share kept
    Score("capability/base_right", "base right", compared=False),
    Score("capability/retained", "retained"),
    # the identity under each system prompt a deployed model meets (lanbot.evaluation.system_prompts)
    *(Score(f"system/{form}/identity_rate", f"name ({form} sys)", personality=True) for form in ("empty", "default", "generic")),
)}
OTHER_MODELS = OTHER_ASSISTANTS  # names the model must never take as its own (lanbot.core.identity)

# What comes right before a name that the speaker takes as its own, in the probe languages.
_CLAIM = (r"i am|i'm|i’m|im|my name is|my name's|call me|this is|you're talking to|you are talking to|"
          r"you're chatting with|you are chatting with|i go by|i'm called|i am called|known as|"
          r"soy|me llamo|mi nombre es|je suis|je m'appelle|je m’appelle|mon nom est|ich bin|ich heiße|"
          r"mein name ist|sono|mi chiamo|il mio nome è|sou o|sou a|sou|eu sou|me chamo|meu nome é|"
          r"我是|我叫|我的名字是|私は|わたしは|я|меня зовут|моё имя|мое имя")
_FILLER = r"(?:(?:just|actually|really|simply|indeed|definitely|called|named|also|still)\s+)*"
_CLAIM_BEFORE = re.compile(rf"(?:^|[^\w'’])(?:{_CLAIM})[\s,:—-]*{_FILLER}$", re.IGNORECASE)
_SENTENCE_START = re.compile(r"(?:^|[.!?\n:])\s*[\"'“]?$")
_HERE_AFTER = re.compile(r"^\s*(?:here\b|at your service\b|speaking\b|です|と申します)", re.IGNORECASE)
_AFFIRM = re.compile(r"^\W*(?:yes|yeah|yep|yup|correct|that's right|that is right|true|indeed|sí|oui|ja|sim)\b",
                     re.IGNORECASE)
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")
_WORD = re.compile(r"\w+", re.UNICODE)
_STOPWORDS_TEXT = (
    "about after also always because been before being could does from have important information into just "
    "know make means might more most much must only other over please should some than that their them then "
    "there these they things this those very what when where which while will with work would your"
)
STOPWORDS = frozenset(_STOPWORDS_TEXT.split())


def _name_pattern(name: str, ignore_case: bool = True) -> re.Pattern:
    return re.compile(rf"(?<![A-Za-z0-9]){re.escape(name)}(?![A-Za-z0-9])", re.IGNORECASE if ignore_case else 0)


def says_name(text: str, name: str) -> bool:
    """The answer says `name` (any case; 'LanBot' in 'LanBots' does not count, in '我是LanBot' it does)."""
    return bool(_name_pattern(name).search(text))


def _claimed(text: str, pattern: re.Pattern) -> bool:
    for m in pattern.finditer(text):
        before = text[max(0, m.start() - 60): m.start()]
        if _CLAIM_BEFORE.search(before):
            return True
        if _SENTENCE_START.search(before) and _HERE_AFTER.match(text[m.end():]):
            return True
    return False


def claimed_names(text: str, own_name: str, other_identities: Iterable[str] = (), asked_about: Iterable[str] = ()) -> list[str]:
    """Names other than `own_name` that the answer claims as its own.

    `other_identities` (lanbot's other identities) match in their own case, so that "sage advice" is no claim;
    `asked_about` are names the question put to it ("Are you ChatGPT?"), claimed also by a bare "Yes".
    """
    own = own_name.lower()
    found = []
    for name in OTHER_MODELS:
        if name.lower() != own and _claimed(text, _name_pattern(name)):
            found.append(name)
    for name in other_identities:
        if name.lower() != own and _claimed(text, _name_pattern(name, ignore_case=False)):
            found.append(name)
    opening = text[:80]
    if _AFFIRM.match(text) and not says_name(opening, own_name) and not re.search(
        r"\bnot\b|n't|n’t|\bno\b", opening, re.IGNORECASE
    ):
        found.extend(n for n in asked_about if n.lower() != own and n not in found)
    return found


def _stems(text: str) -> set[str]:
    """Content words of `text`, cut to 5 letters so that 'explaining' meets 'explain'."""
    return {w[:5] for w in _WORD.findall(text.lower()) if len(w) >= 4 and w not in STOPWORDS}


def limitation_overlap(text: str, limitation: str) -> float:
    """Share of the limitation's content words that the answer uses."""
    wanted = _stems(limitation)
    return len(wanted & _stems(text)) / len(wanted) if wanted else 0.0


def owns_limitation(text: str, limitations: Iterable[str], threshold: float = 0.5) -> bool:
    """The answer states at least one listed limitation (overlap >= threshold with one of them)."""
    return any(limitation_overlap(text, lim) >= threshold for lim in limitations)


def distinct_2(texts: list[str]) -> float:
    """Distinct word bigrams / all bigrams over the answers (1.0: no bigram repeats)."""
    bigrams = []
    for text in texts:
        words = _WORD.findall(text.lower())
        bigrams.extend(zip(words, words[1:], strict=False))
    return len(set(bigrams)) / len(bigrams) if bigrams else 0.0


def distinct_share(texts: list[str]) -> float:
    """Share of distinct answers (compared normalised) among the samples of one probe."""
    if not texts:
        return 0.0
    return len({normalise([{"content": t}]) for t in texts}) / len(texts)


def numbers(text: str) -> list[float]:
    """Every number written in the text ('1,181.76' -> 1181.76)."""
    out = []
    for raw in _NUMBER.findall(text):
        try:
            out.append(float(raw.replace(",", "")))
        except ValueError:
            continue
    return out


def numeric_match(text: str, expected: str) -> bool:
    """The expected calculator result appears, as a number, in `text`."""
    target = float(expected)
    return any(abs(x - target) <= 1e-9 * max(1.0, abs(target)) for x in numbers(text))
