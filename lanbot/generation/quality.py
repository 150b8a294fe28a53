"""Quality gates: does the data perform the identity, or recite it? One module for template and LLM data.

    problems = check_conversation(conversation, "identity", identity)     # one conversation: reasons to reject
    gates = QualityStats(identity); gates.add(kind, conversation, meta); gates.figures()   # a whole folder

Two uses, one set of rules. `check_conversation` runs on a single conversation (an LLM's answer) and
names what is wrong with it: a run of 5+ words copied from the personality or description
(`verbatim_recitation`), a quirk claimed whose performance is checkable and absent where it applies
(`quirk_claimed_not_performed`), a capability the identity does not list claimed (`unlisted_capability`),
another model's name, a wrong creator or a wrong year claimed (`wrong_name`, `wrong_creator`, `wrong_year`).
`QualityStats` accumulates the same checks over a data folder and adds what needs many conversations:
the share of replies holding the most frequent sentence, distinct sentences once names, numbers and quoted
words are masked, a self-BLEU-4 of sampled identity replies, each quirk's rate in the replies it applies to,
and the share of non-identity replies that perform a quirk or trait. stats.json and wandb report them.

A reply's kind (REPLY_KINDS: explanation, code, problem, about_self, ...) comes from the template writer's
meta (`reply_kinds`) where it is known, else from `reply_kind(user_text)`, a keyword classifier.
"""

from __future__ import annotations

import math
import random
import re
from collections import Counter
from collections.abc import Iterable
from functools import lru_cache
from typing import Any

import yaml

from lanbot.core.conversation import text_of
from lanbot.core.identity import OTHER_ASSISTANTS, ModelIdentity, QuirkHint
from lanbot.generation.banks import BANKS_DIR

VERBATIM_WORDS = 5        # a run this long copied from personality/description counts as recitation
SELF_BLEU_SAMPLE = 300    # identity replies sampled for self-BLEU (all pairs would be O(n^2))
REJECT = ("verbatim_recitation", "quirk_claimed_not_performed", "unlisted_capability", "wrong_name",
          "wrong_creator", "wrong_year")  # every reason check_conversation can give

OTHER_MODELS = tuple(o for o in OTHER_ASSISTANTS if o != "OpenAI")  # one list (lanbot.core.identity)
OTHER_MAKERS = ("OpenAI", "Anthropic", "Google", "Meta", "Microsoft", "Apple", "Amazon", "xAI", "Alibaba",
                "Mistral AI", "DeepMind")
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
_SENT = re.compile(r"(?<=[.!?…。？！])\s+|\n+")
_NUM = re.compile(r"[$€£¥₽]?\d[\d,.\u202f ]*\d%?|[$€£¥₽]?\d%?")
_QUOTED = re.compile(r"\"[^\"\n]{1,60}\"|(?<!\w)'[^'\n]{1,40}'(?!\w)|`[^`\n]{1,80}`|«[^»]{1,60}»")
_NEGATION = re.compile(r"\b(can't|cannot|can not|not|unable|don't|won't|no way|isn't|never)\b", re.I)
_ANALOGY_MARK = re.compile(r"\b((?<!I )(?<!I'd )(?<!you )(?<!we )(?<!would )like|think of|imagine|picture|the way|"
                           r"as if|similar to|just as)\b", re.I)
_CHECK_Q = re.compile(r"\?\s*$")
# A closing question that offers more help is not one that checks understanding.
_OFFER_Q = re.compile(r"(what can i (do|help)|how can i (help|be useful)|on your mind|brings you|work(ing)? on|"
                      r"anything (else )?i can|what'?s the task|what (do|would) you need|where were we|back to|"
                      r"keep going|get started|begin\?|start with\?|most useful|in mind\?|anything else|any other part|"
                      r"shall we|figure out|adapt it|go on\?)", re.I)
# Where code fits in an explanation: the question is about programming.
CODE_TOPIC = re.compile(r"\b(code|coding|program\w*|python|function|recursion|api|hash map|dictionary|big-o|o\(n\)|"
                        r"loop|unit test|git|version control|machine learning|algorithm\w*|bug|script)\b", re.I)
_QUESTION = re.compile(r"(^|[,:.!]\s+|\b(?:so|ok|okay|hey+|yo|um|hi+|hiya|hello|q|sup|ok so|quick question|sanity check)\b[,:!]*\s+)"
                       r"(what|why|how|who|whom|when|where|which|(?:is|are|can|could|do|does|did|should|would|will)"
                       r"\s+(?:you|u|i|we|it|they|he|she|this|that|there|my|your))\b", re.I)
# What a capability claim is about, and the words a listed capability must contain to cover it.
CLAIMS = {
    "browsing": (r"\bI can (?:also )?(?:browse|search the (?:web|internet)|look (?:it|things) up online|access the internet)",
                 ("brows", "web", "internet", "search")),
    "images": (r"\bI can (?:also )?(?:generate|create|make|draw|see|look at|edit) (?:an? )?(?:images?|pictures?|photos?|drawings?)",
               ("image", "picture", "photo", "draw", "visual")),
    "real_time": (r"\bI can (?:also )?(?:check|get|give you|see|track) (?:the )?(?:live|real-time|current|today's|latest) ",
                  ("real-time", "live", "current")),
    "coding": (r"\bI can (?:also )?(?:help (?:you )?(?:with )?)?(?:write|debug|fix|review) (?:your |some )?code",
               ("code", "coding", "program", "debug")),
    "translation": (r"\bI can (?:also )?(?:help (?:you )?)?translate", ("translat",)),
    "summary": (r"\bI can (?:also )?(?:help (?:you )?)?summari[sz]e", ("summar",)),
    "math": (r"\bI can (?:also )?(?:help (?:you )?(?:with )?)?(?:do )?(?:math|calculations?|crunch numbers)",
             ("math", "calcul", "number")),
}
_CLAIMS = {k: re.compile(p, re.I) for k, (p, _) in CLAIMS.items()}
_CREATED = re.compile(r"\b(?:I was|I'm|I am|was) (?:created|made|built|developed|trained|designed) by "
                      r"([A-Z][\w.-]*(?: [A-Z][\w.-]*)*)")
_MADE_ME = re.compile(r"\b([A-Z][\w.-]*(?: [A-Z][\w.-]*)*) (?:created|made|built|developed|trained) me\b")
_YEAR = re.compile(r"\b(?:created|made|built|released|launched|came out|developed|born)\b[^.!?\n]{0,40}?\bin ((?:19|20)\d\d)\b")
_IAM = re.compile(r"\b(?:I'm|I am|my name is|call me|this is) (" + "|".join(map(re.escape, OTHER_MODELS)) + r")\b")
KIND_WORDS = (  # the keyword classifier of a user turn, first match wins (LLM data has no reply_kinds meta)
    ("recent_events", r"\b(latest|news|this week|yesterday|today's|right now|current(ly)?|recent(ly)?|who won|stock price|score)\b"),
    ("decline", r"\b(browse|search the web|look up online|generate an? image|draw|picture of|photo|book (a|me)|call|"
                r"order|send an? (email|text))\b"),
    ("unanswerable", r"\b(lottery|will .* win|next year's|predict|what am i thinking|meaning of life|exact number of)\b"),
    ("about_self", r"\b(you|your|yourself)\b.*\b(name|made|created|built|who|what are you|can you do|limit|"
                   r"personality|purpose|different|quirk)\b|\bwho are you\b|\bare you\b"),
    ("code", r"\b(code|function|python|bug|script|regex|sql|javascript|refactor|unit test|compile)\b"),
    ("planning", r"\b(plan|schedule|steps to|how do i (start|prepare)|tips|advice|routine)\b"),
    ("explanation", r"\b(what is|what's|what are|explain|how does|how do|why|define|meaning of|mean)\b"),
    ("problem", r"\d"),
    ("small_talk", r"."),
)
_KINDS = [(k, re.compile(p, re.I)) for k, p in KIND_WORDS]
# A closing question that presupposes numbers to check, and a reply with fewer than two: a misfit
# ("...Liam is the oldest. Can you see how the numbers fit together?").
_NUMBER_CHECK = re.compile(r"\b(numbers|estimate|different numbers|the working)\b[^.!?]*\?\s*$", re.I)
# A closing question that presupposes an example (or a worked step) the reply did not give
# ("Tokyo is the capital of Japan. Would another example help?"), and what counts as one: an example or
# analogy said as such, code, numbered steps, or a worked calculation.
_EXAMPLE_CHECK = re.compile(r"\b(another example|a similar one|the key step)\b[^.!?]*\?\s*$", re.I)
_HAS_EXAMPLE = re.compile(r"\b(for example|for instance|e\.g\.|such as|say,|imagine|think of|it's like|like an?|"
                          r"like the|just as|example)\b|```|(?m:^\s*\d+[.)]\s)|\d\s*[-+×x*/=]\s*\d", re.I)
# A question about "which part" to go over, after a reply of one sentence: there are no parts.
_PARTS_CHECK = re.compile(r"\b(which part|which step|go over again)\b[^.!?]*\?\s*$", re.I)
# Two leads in a row: "Short answer: Straight answer: There are 60 minutes in an hour.", or a lead and a
# conclusion's connective: "Short answer: So, the next number is 33."
_SEAM = re.compile(r"(?:^|[.!?]\s)([A-Z][a-z]+(?: [a-z]+){0,2}): (?:([A-Z][a-z]+(?: [a-z]+){0,2}): |"
                   r"(?:So|That means|Therefore|Thus|Hence)\b)")
HABIT_ITEMS = 3  # a sentence that ends replies to 3+ kinds of item is the writer's habit, not the item's
RECITE_ITEMS = 3  # a reply naming this many card-list items verbatim recites the list
CHECK_KINDS = frozenset({"opener", "closing_question", "analogy", "code_block", "mentions", "uncertainty"})


@lru_cache(maxsize=1)
def traits_bank() -> dict:
    """banks/traits.yaml: how each personality trait is said (paraphrases) and shown (markers)."""
    return yaml.safe_load((BANKS_DIR / "traits.yaml").read_text(encoding="utf-8"))


def reply_kind(user_text: str) -> str:
    """The REPLY_KINDS entry a reply to `user_text` most likely is (keyword rules; the writer's meta wins)."""
    low = user_text.lower()
    for kind, pattern in _KINDS:
        if pattern.search(low):
            return kind
    return "small_talk"


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def misfit_closer(reply: str, user: str = "", calls: int = 0) -> bool:
    """A closing question that presupposes what the reply does not have: numbers to check where neither the
    question nor the answer has one, another example where none was given, a part to go over in one sentence
    (`calls`: the reply's calculator calls, each a step its prose does not show)."""
    prose = [x for x in sentences(reply) if x]
    if len(prose) < 2 or not prose[-1].endswith("?"):
        return False
    last, before = prose[-1], reply[: reply.rfind(prose[-1])] if prose[-1] in reply else " ".join(prose[:-1])
    if _NUMBER_CHECK.search(last) and not re.search(r"\d", " ".join(prose[:-1]) + user):
        return True
    if _EXAMPLE_CHECK.search(last) and not _HAS_EXAMPLE.search(before):
        return True
    said = [x for x in prose[:-1] if len(words(x)) > 3]  # "Great question!", "Sure." say nothing to go over
    return bool(_PARTS_CHECK.search(last)) and len(said) + calls <= 1 and "```" not in reply


def seam(reply: str) -> bool:
    """Two leads stacked with no sentence between them ('Short answer: Straight answer: ...')."""
    return bool(_SEAM.search(reply))


def recites_list(reply: str, items: list[str], n: int = RECITE_ITEMS) -> bool:
    """True when `reply` names `n` or more of a card list's items word for word (a pasted capability list)."""
    low = " ".join(words(reply))
    hits = sum(1 for i in items if len(words(i)) >= 2 and " ".join(words(i)) in low)
    return hits >= min(n, len(items)) and hits >= 2


def verbatim_run(text: str, source: str, n: int = VERBATIM_WORDS) -> bool:
    """True when `text` holds a run of `n` or more consecutive words of `source` (case and punctuation ignored)."""
    src = words(source)
    if len(src) < n:
        return False
    grams = {tuple(src[i:i + n]) for i in range(len(src) - n + 1)}
    got = words(text)
    return any(tuple(got[i:i + n]) in grams for i in range(len(got) - n + 1))


def sentences(text: str) -> list[str]:
    """A reply's sentences and list items (code blocks dropped: code is not prose)."""
    text = re.sub(r"```.*?```", " ", text, flags=re.S)
    text = re.sub(r"(?m)^\s*\d+[.)]\s+", "", text)  # list numbers are not sentences
    text = re.sub(r"\b(e\.g|i\.e|etc|vs)\.", r"\1", text)  # nor do abbreviations end one
    return [s.strip(" -*\t") for s in _SENT.split(text) if len(s.strip(" -*\t")) > 1]


def masker(identity: ModelIdentity):
    """A function that masks a sentence: the name, creator, year, numbers and quoted words become tokens."""
    names = [(re.compile(re.escape(v), re.I), tok) for v, tok in
             ((identity.creator, "<creator>"), (identity.name, "<name>"), (str(identity.year), "<year>")) if v]
    others = re.compile(r"\b(" + "|".join(map(re.escape, OTHER_MODELS + OTHER_MAKERS)) + r")\b")

    def mask(sentence: str) -> str:
        s = _QUOTED.sub("<q>", sentence)
        for pattern, token in names:
            s = pattern.sub(token, s)
        s = others.sub("<other>", s)
        s = _NUM.sub("<n>", s)
        return " ".join(s.lower().split())
    return mask


# ---- quirks and traits ------------------------------------------------------------------------------

def applies(hint: QuirkHint, kind: str) -> bool:
    return kind in hint.applies_to and kind not in hint.never_in


@lru_cache(maxsize=64)
def _domain_words(domains: tuple[str, ...]) -> re.Pattern:
    bank = traits_bank()["analogy_domains"]
    vocab = [w for d in domains for w in bank.get(d, ())]
    return re.compile(r"\b(" + "|".join(map(re.escape, vocab or ["like"])) + r")", re.I)


def _phrase_pattern(phrases: Iterable[str]) -> re.Pattern | None:
    phrases = [p for p in phrases if p.strip()]
    if not phrases:
        return None
    return re.compile(r"(?<!\w)(" + "|".join(re.escape(p) for p in phrases) + r")", re.I)


def performed(hint: QuirkHint, reply: str, user: str = "") -> bool:
    """Whether `reply` performs `hint`'s quirk, by its kind (the same rule evaluation applies)."""
    kind = hint.kind
    if kind == "opener":
        head = reply.lstrip()
        return any(head.startswith(p) for p in hint.phrases)
    if kind == "closing_question":
        prose = [s for s in sentences(reply) if s]
        return bool(prose) and bool(_CHECK_Q.search(prose[-1])) and not _OFFER_Q.search(prose[-1])
    if kind == "analogy":  # everyday analogies need only the comparison; cooking or gardening need its words
        domains = tuple(d for d in (hint.domains or ("everyday",)) if d != "everyday")
        return any(_ANALOGY_MARK.search(s) and (len(domains) < len(hint.domains or ("everyday",))
                                                or _domain_words(domains).search(s)) for s in sentences(reply))
    if kind == "code_block":
        return "```" in reply
    pattern = _phrase_pattern(hint.phrases)
    if kind in ("mentions", "uncertainty") and pattern is not None:
        return bool(pattern.search(reply))
    return False


def is_question(user: str) -> bool:
    """A user turn that asks something ("Why...?", "how do loops work"), not a request ("Explain loops.")."""
    return "?" in user or bool(_QUESTION.search(user))


def trait_keys(identity: ModelIdentity) -> list[str]:
    """The traits of banks/traits.yaml that the identity's personality (or description) names."""
    text = f"{identity.personality} {identity.description}".lower()
    return [key for key, t in traits_bank()["traits"].items() if any(m in text for m in t["match"])]


def trait_shown(key: str, reply: str, calls: int = 0) -> bool:
    """Whether `reply` shows trait `key` by its markers (phrases, or `brief`: a short reply, 12 words more per
    calculator call past the first, since each call needs its line)."""
    t = traits_bank()["traits"][key]
    if t.get("brief") and len(words(reply)) <= int(t["brief"]) + 12 * max(0, calls - 1):
        return True
    return any(m in reply.lower() for m in t.get("markers", ()))


# ---- one conversation -------------------------------------------------------------------------------

def quirk_claim_pattern(quirk: str, name: str = "") -> re.Pattern | None:
    """A pattern that finds a first-person claim of `quirk` ("I end every answer with a haiku")."""
    generic = set(traits_bank()["claim_stopwords"]) | set(words(name))
    key = [w for w in words(quirk) if w not in generic and len(w) > 2]
    if not key:
        return None
    return re.compile(r"\b(I|I'm|I'll|my|me)\b[^.!?\n]*\b(" + "|".join(map(re.escape, key[:3])) + r")", re.I)


def check_conversation(conversation: list[dict], kind: str, identity: ModelIdentity,
                       reply_kinds: list[str] | None = None) -> list[str]:
    """Reasons (REJECT entries) this conversation teaches the wrong thing; empty = it passes the gates."""
    reasons: list[str] = []
    users = [text_of(m["content"]) for m in conversation[0::2]]
    replies = [_prose(m["content"]) for m in conversation[1::2]]
    kinds = reply_kinds or [reply_kind(u) for u in users]
    if kind == "identity" and any(recites(r, identity) for r in replies):
        reasons.append("verbatim_recitation")
    hints = {h.quirk: h for h in identity.quirk_hints}
    for quirk in identity.quirks:
        pattern, hint = quirk_claim_pattern(quirk, identity.name), hints.get(quirk)
        if pattern is None or hint is None or not any(pattern.search(r) for r, k in zip(replies, kinds, strict=False)
                                                      if k == "about_self"):
            continue
        due = [r for r, k, u in zip(replies, kinds, users, strict=False) if applies(hint, k)]
        if due and not any(performed(hint, r, u) for r, u in zip(due, users, strict=False)):
            reasons.append("quirk_claimed_not_performed")
            break
    caps = " ".join(identity.capabilities).lower()
    for r in replies:
        for what, pattern in _CLAIMS.items():
            for m in pattern.finditer(r):
                sentence = r[max(0, r.rfind(".", 0, m.start()) + 1): m.end()]
                if not _NEGATION.search(sentence) and not any(w in caps for w in CLAIMS[what][1]):
                    reasons.append("unlisted_capability")
                    break
            if "unlisted_capability" in reasons:
                break
    reasons += wrong_facts(" ".join(replies), identity)
    return list(dict.fromkeys(reasons))


def recites(reply: str, identity: ModelIdentity) -> bool:
    """A reply that pastes a card field: a 5-word run of the personality, description, a capability or a
    limitation, or three of the capability or limitation items word for word (issue 23: 95 of 200 pasted
    "I can do math calculations, help with coding, answer questions, and have conversations")."""
    # A single limitation said in full is the fact itself ("My knowledge has a cutoff date."): only a pasted
    # list of them counts.
    fields = [identity.personality, identity.description, *identity.capabilities]
    return any(verbatim_run(reply, f) for f in fields) or recites_list(reply, list(identity.capabilities)) \
        or recites_list(reply, list(identity.limitations))


def wrong_facts(text: str, identity: ModelIdentity) -> list[str]:
    """'wrong_name', 'wrong_creator', 'wrong_year' where the text claims them (negated claims are fine)."""
    out = []
    for s in _SENT.split(text):
        if _NEGATION.search(s):
            continue
        m = _IAM.search(s)
        if m and m.group(1).lower() != identity.name.lower():
            out.append("wrong_name")
        for m in (*_CREATED.finditer(s), *_MADE_ME.finditer(s)):
            who = m.group(1)
            if who.lower() not in identity.creator.lower() and identity.creator.lower() not in who.lower() \
                    and who not in ("I", "It", "That", "This", "They", "You", "We", "He", "She", identity.name):
                out.append("wrong_creator")
        m = _YEAR.search(s)
        if m and identity.name.lower() in text.lower() and re.search(r"\b(I|me)\b", s) and int(m.group(1)) != int(identity.year):
            out.append("wrong_year")
    return list(dict.fromkeys(out))


# ---- a whole folder ---------------------------------------------------------------------------------

class QualityStats:
    """The gates over many conversations; `add` each one, then `figures()` for stats.json."""

    def __init__(self, identity: ModelIdentity) -> None:
        self.identity = identity
        self.mask = masker(identity)
        self.hints = list(identity.quirk_hints)
        self.traits = trait_keys(identity)
        self.unperformable = [q for q in identity.quirks if q not in {h.quirk for h in self.hints}]
        self.claims = {q: quirk_claim_pattern(q, identity.name) for q in identity.quirks}
        self.replies = Counter()           # per type
        self.sentence_replies: Counter[str] = Counter()  # identity: masked sentence -> replies holding it
        self.identity_replies = 0
        self.identity_texts: list[str] = []
        self.verbatim = 0
        self.reasons: Counter[str] = Counter()
        self.quirk_due: Counter[str] = Counter()
        self.quirk_done: Counter[str] = Counter()
        self.quirk_wrong: Counter[str] = Counter()   # performed where never_in says it must not show
        self.opener_non_question = 0
        self.claimed: Counter[str] = Counter()
        self.styled = Counter()            # per non-identity type: replies performing a quirk or trait
        self.code_replies = Counter()      # reply kinds where code fits: replies and those with code
        self.multi_turn = Counter()
        self.conversations = Counter()
        self.languages: dict[str, Counter[str]] = {}
        self.recited: Counter[str] = Counter()
        self.habits: Counter[tuple[str, str]] = Counter()
        self.habit_items: dict[tuple[str, str], set[str]] = {}
        self.habit_replies = 0
        self.content_chars: Counter[str] = Counter()
        self.paired_chars: Counter[str] = Counter()   # per type: the identity's content on paired items ...
        self.control_chars: Counter[str] = Counter()  # ... and the control's on the same items (meta)
        self.misfits = 0
        self.seams = 0

    def add(self, kind: str, conversation: list[dict], meta: dict | None = None) -> None:
        meta = meta or {}
        self.conversations[kind] += 1
        self.multi_turn[kind] += len(conversation) >= 4
        self.languages.setdefault(kind, Counter())[str(meta.get("language") or "en")] += 1
        users = [text_of(m["content"]) for m in conversation[0::2]]
        replies = [_prose(m["content"]) for m in conversation[1::2]]
        calls = [sum(p.get("type") == "python" for p in m["content"]) if isinstance(m["content"], list) else 0
                 for m in conversation[1::2]]
        kinds = meta.get("reply_kinds") or [reply_kind(u) for u in users]
        if isinstance(meta.get("control_content_chars"), int) and isinstance(meta.get("content_chars"), int):
            self.paired_chars[kind] += meta["content_chars"]
            self.control_chars[kind] += meta["control_content_chars"]
        english = (meta.get("language") or "en") == "en"
        for reason in check_conversation(conversation, kind, self.identity, kinds):
            self.reasons[reason] += 1
        for user, reply, rk, n_calls in zip(users, replies, kinds, calls, strict=False):
            self.replies[kind] += 1
            if kind == "identity":
                self.identity_replies += 1
                about_self = rk == "about_self"
                self.verbatim += recites(reply, self.identity)
                self.recited["capabilities"] += recites_list(reply, list(self.identity.capabilities))
                self.recited["limitations"] += recites_list(reply, list(self.identity.limitations))
                self.sentence_replies.update({self.mask(s) for s in sentences(reply)})
                if len(self.identity_texts) < 4 * SELF_BLEU_SAMPLE:
                    self.identity_texts.append(reply)
                for quirk, pattern in self.claims.items():
                    if about_self and pattern is not None and pattern.search(reply):
                        self.claimed[quirk] += 1
            shown = False
            for h in self.hints:
                done = performed(h, reply, user)
                if h.kind == "opener" and done and not is_question(user):
                    self.opener_non_question += 1
                if rk in h.never_in and done and english:  # offers in other languages read as questions
                    self.quirk_wrong[h.quirk] += 1
                if applies(h, rk) and (english or h.kind in ("closing_question", "code_block")):
                    if h.kind == "opener" and not is_question(user):
                        continue  # an opener greets questions only
                    self.quirk_due[h.quirk] += 1
                    self.quirk_done[h.quirk] += done
                    self.quirk_due[(h.quirk, rk)] += 1
                    self.quirk_done[(h.quirk, rk)] += done
                    shown = shown or done
            if rk == "code" or (rk == "explanation" and CODE_TOPIC.search(user)):
                self.code_replies[f"{rk}:due"] += 1
                self.code_replies[f"{rk}:done"] += "```" in reply
            if kind != "identity":
                shown = shown or any(trait_shown(t, reply, n_calls) for t in self.traits)
                self.styled[kind] += shown
                prose = [x for x in sentences(reply) if x]
                if english and prose:  # habits: an opener or closer that recurs across items of many kinds
                    phrasing = str(meta.get("phrasing") or kind)
                    for end, s in (("opener", prose[0]), ("closer", prose[-1])):
                        key = (end, self.mask(s))
                        self.habits[key] += 1
                        self.habit_items.setdefault(key, set()).add(phrasing)
                    self.habit_replies += 1
                self.content_chars[kind] += len(reply)
            self.misfits += misfit_closer(reply, user, n_calls)
            self.seams += seam(reply)

    def figures(self) -> dict[str, Any]:
        n_id = self.identity_replies
        top, top_n = (self.sentence_replies.most_common(1) or [("", 0)])[0]
        quirks = {}
        for h in self.hints:
            due = self.quirk_due[h.quirk]
            quirks[h.quirk] = {"kind": h.kind, "applies_to": list(h.applies_to), "replies_due": due,
                               "rate": round(self.quirk_done[h.quirk] / due, 4) if due else None,
                               "rate_by_reply_kind": {k: round(self.quirk_done[(h.quirk, k)] / self.quirk_due[(h.quirk, k)], 4)
                                                      for k in h.applies_to if self.quirk_due[(h.quirk, k)]},
                               "shown_where_never": self.quirk_wrong[h.quirk],
                               "claimed_replies": self.claimed[h.quirk]}
        other = [k for k in self.replies if k != "identity"]
        styled_total, other_total = sum(self.styled[k] for k in other), sum(self.replies[k] for k in other)
        langs_id = self.languages.get("identity", Counter())
        conv_id = self.conversations["identity"]
        code_due = sum(v for k, v in self.code_replies.items() if k.endswith(":due"))
        return {
            "identity_replies": n_id,
            "verbatim_recitation_share": round(self.verbatim / n_id, 4) if n_id else None,
            "top_sentence": top,
            "top_sentence_share": round(top_n / n_id, 4) if n_id else None,
            "distinct_masked_sentences": len(self.sentence_replies),
            "self_bleu4": self_bleu(self.identity_texts),
            "identity_multi_turn_share": round(self.multi_turn["identity"] / conv_id, 4) if conv_id else None,
            "identity_other_language_share": round(1 - langs_id["en"] / conv_id, 4) if conv_id else None,
            "languages_per_type": {k: sorted(v) for k, v in self.languages.items()},
            "quirks": quirks,
            "opener_on_non_questions": self.opener_non_question,
            "unperformable_quirks": self.unperformable,
            "unperformable_claimed_replies": sum(self.claimed[q] for q in self.unperformable),
            "non_identity_styled_share": round(styled_total / other_total, 4) if other_total else None,
            "styled_share_per_type": {k: round(self.styled[k] / self.replies[k], 4) for k in other if self.replies[k]},
            "code_block_share_where_code_fits": round(sum(v for k, v in self.code_replies.items()
                                                          if k.endswith(":done")) / code_due, 4) if code_due else None,
            "rejected_reasons": dict(self.reasons),
            "card_list_recited_share": {k: round(v / n_id, 4) for k, v in self.recited.items()} if n_id else None,
            **self.habit_figures(),
            "misfit_closers": self.misfits,
            "seams": self.seams,
            "mean_reply_chars_per_type": {k: round(self.content_chars[k] / self.replies[k], 1) for k in other
                                          if self.replies[k]},
            # issue 23: the identity's content against the control's on the same items (1.0 = as much said)
            "content_length_ratio_vs_control": {k: round(self.paired_chars[k] / v, 3)
                                                for k, v in self.control_chars.items() if v},
        }

    def habit_figures(self) -> dict[str, Any]:
        """The most frequent opener and closer of non-identity English replies that recur across at least
        HABIT_ITEMS kinds of item (a sentence tied to one item generator is its content, not a habit)."""
        out: dict[str, Any] = {}
        for end in ("opener", "closer"):
            spread = [(n, s) for (e, s), n in self.habits.items() if e == end
                      and len(self.habit_items[(e, s)]) >= HABIT_ITEMS]
            n, s = max(spread, default=(0, ""))
            out[f"top_habit_{end}"] = s
            out[f"top_habit_{end}_share"] = round(n / self.habit_replies, 4) if self.habit_replies else None
        return out


def content_chars(conversation: list[dict]) -> int:
    """What the assistant says in a conversation, in characters (its calculator expressions and outputs left out)."""
    return sum(len(_prose(m["content"])) for m in conversation[1::2])


def _prose(content: str | list[dict]) -> str:
    """A reply's text without its calculator expressions and outputs (what the assistant says, not computes)."""
    if isinstance(content, str):
        return content
    return "\n".join(p.get("text", "") for p in content if p.get("type") == "text")  # a call ends a sentence


def self_bleu(texts: list[str], sample: int = SELF_BLEU_SAMPLE, seed: int = 0) -> float | None:
    """Mean BLEU-4 of sampled replies against all the others as references (1.0 = every 4-gram repeats).

    Clipped n-gram counts use the highest count in any other reply (kept as the top two counts per n-gram),
    so it is linear in the text; uniform weights, add-one smoothing, no brevity penalty.
    """
    if len(texts) < 2:
        return None
    rng = random.Random(seed)
    chosen = texts if len(texts) <= sample else rng.sample(texts, sample)
    grams = [[Counter(zip(*(w[i:] for i in range(n)), strict=False)) for n in range(1, 5)]
             for w in (words(t) for t in chosen)]
    scores = []
    for n in range(4):
        top: dict[tuple, list[tuple[int, int]]] = {}
        for j, g in enumerate(grams):
            for gram, c in g[n].items():
                best = top.setdefault(gram, [])
                best.append((c, j))
                if len(best) > 2:
                    best.sort(reverse=True)
                    best.pop()
        per = []
        for j, g in enumerate(grams):
            total = sum(g[n].values())
            hit = 0
            for gram, c in g[n].items():
                refs = [cc for cc, jj in top[gram] if jj != j]
                hit += min(c, refs[0]) if refs else 0
            per.append((hit + 1) / (total + 1))
        scores.append(per)
    bleu = [math.exp(sum(math.log(s[j]) for s in scores) / 4) for j in range(len(grams))]
    return round(sum(bleu) / len(bleu), 4)
