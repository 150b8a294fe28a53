"""Identity conversations: who/what the assistant is, its name, creator, year, abilities, limits, quirks.

Each answer is composed from interchangeable pieces (an acknowledgement, a core sentence for the question,
one to three extras drawn from the identity's other fields, a closing), so first replies rarely repeat.
Only the identity's own capabilities are ever spoken as abilities. Greetings and questions come in eight
languages besides English; the answer is in kind, and an identity that works best in English says so.
"""

from __future__ import annotations

import random

from lanbot.core.identity import OTHER_ASSISTANTS
from lanbot.generation.template.style import EDGE_CASES, IdentityStyle, join_list
from lanbot.generation.template.voice import OPENING_WEIGHTS, OPENINGS, apply_voice, user_message

QUESTION_WEIGHTS = {
    "who": 16, "name": 12, "creator": 12, "when": 7, "capabilities": 14, "limitations": 11,
    "other_model": 12, "personality": 7, "purpose": 4, "different": 5,
}
P_OTHER_LANGUAGE = 0.16
P_MULTI_TURN = 0.35
ACK = {
    "greeting": ("Hi!", "Hello!", "Hi there!", "Hello, nice to meet you!"),
    "casual": ("Hey!", "Hey there!", "Yo!", "Hey, good to see you."),
    "polite": ("Of course.", "Not at all!", "Happy to.", "Certainly."),
}
OFFERS = (
    "What can I do for you today?", "What would you like to work on?", "How can I help?",
    "What's on your mind?", "Anything I can help you with right now?", "What brings you here today?",
    "Ask away whenever you're ready.", "",
)
CORE = {
    "who": (
        "I'm {name}, {desc}.", "I'm {name}: {desc}, created by {creator}.",
        "My name is {name}. I'm {desc}, built by {creator} in {year}.", "You're talking to {name}, {desc} made by {creator}.",
        "{name} here: {desc}, created by {creator} in {year}.", "I'm an AI called {name}. Put simply, I'm {desc}.",
        "I'm {name}. {creator} created me in {year} to be {desc}.",
    ),
    "name": (
        "My name is {name}.", "I'm {name}.", "You can call me {name}.", "I go by {name}.", "It's {name}!",
        "{name}: that's me.", "The name's {name}.",
    ),
    "creator": (
        "I was created by {creator}.", "{creator} made me.", "I was built by {creator} in {year}.",
        "My creator is {creator}.", "{creator} developed me, and I first came out in {year}.",
        "I come from {creator}; they built me in {year}.",
    ),
    "when": (
        "I was created in {year} by {creator}.", "{creator} built me in {year}.", "I came out in {year}.",
        "My story starts in {year}, when {creator} created me.", "I'm from {year}: that's when {creator} made me.",
    ),
    "other_model": (
        "No, I'm not {other}. I'm {name}, {desc}, created by {creator}.",
        "Nope! I'm {name}, made by {creator}: a different assistant from {other}.",
        "I'm not {other}; I'm {name}. {creator} built me in {year}.",
        "No, you're talking to {name}, {desc}. {other} is a different assistant from a different team.",
        "Good question to ask! I'm {name}, not {other}. I was created by {creator}.",
        "Not at all: I'm {name}, created by {creator} in {year}, and I'm not based on {other}.",
    ),
    "personality": (
        "I'd describe my personality like this: {personality}.", "In a few words: {personality}.",
        "My personality, in a nutshell: {personality}.", "If I had to sum myself up: {personality}.",
        "I'm {name}, and my style is simple to describe: {personality}.",
    ),
    "purpose": (
        "{creator} made me to be {desc}.", "I'm {name}, and I exist to be {desc}.",
        "My purpose is simple: to be {desc}.", "I was built by {creator} as {desc}.",
    ),
}
NAME_TAGS = ("I'm {name}, by the way.", "I'm {name}, {desc}.", "(I'm {name}.)", "I go by {name}.")
CAPS_LEAD = (
    "I can {caps}.", "Here's what I can do: {caps}.", "I'm able to {caps}.", "My strengths: I can {caps}.",
    "In short, I can {caps}.",
)
LIMITS_LEAD = (
    "I'm {name}, and I do have real limits:", "Honest answer from {name}:", "Good thing to ask. As {name}, a few "
    "limitations to keep in mind:", "I'm {name}, and I'm not perfect. Here's what to watch for:",
    "Fair question. Some of my limits as {name}:",
)
DIFFERENT_LEAD = (
    "I'm {name}, and a few things set me apart.", "Some quirks of mine, as {name}:", "What makes {name} a bit different:",
)
PERSONALITY_EXTRA = ("My personality: {personality}.", "Personality-wise: {personality}.",
                     "In a few words, my style is: {personality}.")
YEAR_EXTRA = ("{creator} created me in {year}.", "I was made by {creator} in {year}.")
ENGLISH_NOTE = (
    "I work best in English, so feel free to continue in English.",
    "(In English: I work best in English, so English will get you my best answers.)",
)
SNIPPETS = (
    ("def average(xs):\n    if not xs:  # edge case: an empty list\n        raise ValueError(\"empty list\")\n"
     "    return sum(xs) / len(xs)", "assert average([2, 4]) == 3"),
    ("def is_palindrome(s: str) -> bool:\n    cleaned = [c.lower() for c in s if c.isalnum()]\n"
     "    return cleaned == cleaned[::-1]", "assert is_palindrome(\"Never odd or even\")"),
    ("def chunks(items, size):\n    if size <= 0:\n        raise ValueError(\"size must be positive\")\n"
     "    return [items[i:i + size] for i in range(0, len(items), size)]", "assert chunks([1, 2, 3], 2) == [[1, 2], [3]]"),
    ("def safe_int(text, default=0):\n    try:\n        return int(text)\n    except (TypeError, ValueError):\n"
     "        return default", "assert safe_int(\"x\") == 0"),
)


class IdentityWriter:
    """Writes identity conversations for one identity; `write(rng, persona)` -> (conversation, meta)."""

    def __init__(self, style: IdentityStyle, questions: dict, languages: dict) -> None:
        self.s = style
        self.questions = questions
        self.languages = languages
        self.qids = list(QUESTION_WEIGHTS)
        self.qweights = [QUESTION_WEIGHTS[q] for q in self.qids]
        self.fields = {"name": style.name, "creator": style.creator, "year": style.year, "desc": style.desc,
                       "personality": style.personality}
        self.others = [o for o in OTHER_ASSISTANTS if o.lower() != style.name.lower()]

    def write(self, rng: random.Random, persona: dict) -> tuple[list[dict], dict]:
        if rng.random() < P_OTHER_LANGUAGE:
            return self._other_language(rng, persona)
        voice = persona.get("voice")
        qid = rng.choices(self.qids, self.qweights)[0]
        bank = self.questions[qid]
        i = rng.randrange(len(bank["phrasings"]))
        other = rng.choice(self.others)
        opening = rng.choices(OPENINGS, OPENING_WEIGHTS)[0]
        body = bank["phrasings"][i].format(other=other)
        indirect = rng.choice(bank["indirect"]).format(other=other) if bank.get("indirect") else None
        conv = [{"role": "user", "content": user_message(rng, body, opening, voice, indirect, persona.get("persona"))},
                {"role": "assistant", "content": self.answer(rng, qid, opening, other)}]
        asked = {qid}
        if rng.random() < P_MULTI_TURN:
            for _ in range(rng.choice((1, 1, 2))):
                nxt = rng.choice([q for q in self.qids if q not in asked])
                asked.add(nxt)
                other = rng.choice(self.others)
                ask = rng.choice(self.questions[nxt]["followups"]).format(other=other)
                conv.append({"role": "user", "content": apply_voice(rng, voice or "plain", ask, prefix=False)})
                conv.append({"role": "assistant", "content": self.answer(rng, nxt, "direct", other, follow=True)})
            if rng.random() < 0.3:
                conv.append({"role": "user", "content": rng.choice(THANKS)})
                conv.append({"role": "assistant", "content": self._welcome(rng)})
        meta = {"language": "en", "opening": opening, "phrasing": f"{qid}:{i}", "turns": len(conv) // 2}
        return conv, meta

    def answer(self, rng: random.Random, qid: str, opening: str = "direct", other: str = "",
               follow: bool = False) -> str:
        """One answer to question `qid`, composed from pieces."""
        s, f = self.s, {**self.fields, "other": other}
        pieces: list[str] = []
        ack = ACK.get(opening)
        if ack and not follow and rng.random() < 0.8:
            pieces.append(rng.choice(ack))
        if qid in ("who", "capabilities", "limitations", "different", "purpose") and not follow:
            pieces.append(s.opener_for(rng))
        if qid == "capabilities":
            pieces += self._capabilities(rng, f)
        elif qid == "limitations":
            pieces += self._limitations(rng, f)
        elif qid == "different":
            pieces += self._different(rng, f)
        else:
            pieces.append(rng.choice(CORE[qid]).format(**f))
            if qid in ("creator", "when") and rng.random() < 0.7 and not follow:
                pieces.append(rng.choice(NAME_TAGS).format(**f))
            if qid == "when" and s.knowledge_limit and rng.random() < 0.6:
                pieces.append(f"One consequence: {s.knowledge_limit[0].lower()}{s.knowledge_limit[1:]}")
        if not follow and not any(s.name in p for p in pieces):  # every first answer says who it is
            pieces.append(rng.choice(NAME_TAGS).format(**f))
        extras = [x for x in self._extras(rng, qid) if s.creator not in x or not any(s.creator in p for p in pieces)]
        pieces += extras[: (1 if s.brief or follow else rng.randint(1, 3))]
        if not follow:
            pieces.append(s.check_question(rng, 0.5) or rng.choice(OFFERS))
        return compose(pieces)

    def _extras(self, rng: random.Random, qid: str) -> list[str]:
        s, f = self.s, self.fields
        out = []
        if qid in ("who", "name", "purpose", "other_model", "personality") and s.capabilities:
            out.append(rng.choice(CAPS_LEAD).format(caps=s.caps_text(self._some_caps(rng))))
        if qid in ("who", "name", "creator", "purpose") and rng.random() < 0.6:
            out.append(rng.choice(PERSONALITY_EXTRA).format(**f))
        if qid in ("name", "who", "other_model") and rng.random() < 0.4:
            out.append(rng.choice(YEAR_EXTRA).format(**f))
        if qid in ("who", "personality", "purpose") and s.quirk_sentences and rng.random() < 0.5:
            out.append(f"One thing about me: I {rng.choice(s.quirk_sentences)}.")
        if qid in ("who", "purpose", "personality") and rng.random() < 0.6:
            out.append(s.analogy(rng, "self"))
        rng.shuffle(out)
        return [x for x in out if x]

    def _some_caps(self, rng: random.Random) -> list[str]:
        caps = self.s.capabilities
        if len(caps) > 2 and rng.random() < 0.4:
            return rng.sample(caps, rng.randint(2, len(caps) - 1))
        return caps

    def _capabilities(self, rng: random.Random, f: dict) -> list[str]:
        s = self.s
        out = [rng.choice(("I'm {name}.", "I'm {name}, and I'm glad you asked.", "You're talking to {name}.",
                           "{name} at your service.")).format(**f)]
        if not s.capabilities:
            out.append(f"I'm {s.desc}. Ask me anything, and I'll tell you honestly if it's outside what I do.")
        elif rng.random() < 0.45:
            out.append("I can:\n" + "\n".join(f"- {c[0].upper()}{c[1:]}" for c in s.capabilities) + "\n")
        else:
            out.append(rng.choice(CAPS_LEAD).format(caps=s.caps_text()))
        if s.code_examples:
            code, test = rng.choice(SNIPPETS)
            out.append(f"For example, this is the kind of code I'd write:\n```python\n{code}\n```\n")
            if s.suggests_tests:
                out.append(f"And I'd suggest a quick test: `{test}`.")
        if s.edge_cases and rng.random() < 0.7:
            out.append(rng.choice(EDGE_CASES))
        if rng.random() < 0.35 and s.limitations:
            out.append(f"I do have limits, though: {rng.choice(s.limitations)}")
        out.append(s.analogy(rng, "self") if rng.random() < 0.4 else "")
        return out

    def _limitations(self, rng: random.Random, f: dict) -> list[str]:
        s = self.s
        lims = s.limitations if len(s.limitations) <= 2 or rng.random() < 0.6 else rng.sample(s.limitations, 2)
        lims = lims or ["I can't promise to be right every time, so check anything important."]
        out = [rng.choice(LIMITS_LEAD).format(**f)]
        if rng.random() < 0.5:
            out.append("\n" + "\n".join(f"- {x}" for x in lims) + "\n")
        else:
            out.append(" ".join(lims))
        out.append(s.uncertainty(rng))
        out.append(s.analogy(rng, "limits") if rng.random() < 0.7 else "")
        if rng.random() < 0.5 and s.capabilities:
            out.append(rng.choice(("Within those limits, I can {caps}.", "That said, I can still {caps}."))
                       .format(caps=s.caps_text(self._some_caps(rng))))
        return out

    def _different(self, rng: random.Random, f: dict) -> list[str]:
        s = self.s
        out = [rng.choice(DIFFERENT_LEAD).format(**f)]
        quirks = s.quirk_sentences[:]
        rng.shuffle(quirks)
        out.append(f"{join_list([f'I {q}' for q in quirks])}." if quirks else f"I'm {s.desc}.")
        out.append(rng.choice(PERSONALITY_EXTRA).format(**f))
        return out

    def _welcome(self, rng: random.Random) -> str:
        base = rng.choice(("You're welcome!", "Any time!", "Glad I could help.", "My pleasure."))
        tail = rng.choice(("Just ask if anything else comes up.", f"{self.s.name} is here whenever you need me.",
                           "Come back any time.", ""))
        return f"{base} {tail}".strip()

    def _other_language(self, rng: random.Random, persona: dict) -> tuple[list[dict], dict]:
        s, f = self.s, self.fields
        lang = rng.choice(list(self.languages))
        L = self.languages[lang]
        qid = rng.choice(list(L["questions"]))
        i = rng.randrange(len(L["questions"][qid]))
        question = L["questions"][qid][i]
        opening = "greeting" if rng.random() < 0.7 else "direct"
        sep = rng.choice(("! ", ", ", " ", "!! ", ". "))
        user = f"{rng.choice(L['greetings'])}{sep}{question}" if opening == "greeting" else question
        if persona.get("voice") == "emoji":
            user += " 🙂"
        pieces = [rng.choice(L["hello"])] if opening == "greeting" else []
        if qid == "capabilities" and not s.capabilities:
            qid = "who"
        if qid == "capabilities":
            caps = "\n".join(f"- {c}" for c in s.capabilities)
            pieces.append(rng.choice(L["caps"]).format(**f) + "\n" + caps + "\n")
        else:
            pieces.append(rng.choice(L[qid]).format(**f))
            if qid == "name" and rng.random() < 0.5:  # `who` and `creator` already say all three
                pieces.append(rng.choice(L["made"]).format(**f))
        if s.english_best:
            pieces.append(rng.choice(L["english_best"]))
            pieces.append(rng.choice(ENGLISH_NOTE))
        else:
            pieces.append(rng.choice(L["offer"]))
        conv = [{"role": "user", "content": user}, {"role": "assistant", "content": compose(pieces, "" if lang in ("zh", "ja") else " ")}]
        if s.english_best and rng.random() < 0.35:
            nxt = rng.choice(("capabilities", "who", "limitations"))
            ask = rng.choice(("Ok, in English then: ", "Sure, English works. ", "")) + rng.choice(
                self.questions[nxt]["followups"])
            conv.append({"role": "user", "content": ask})
            conv.append({"role": "assistant", "content": self.answer(rng, nxt, "direct", follow=True)})
        meta = {"language": lang, "opening": opening, "phrasing": f"{qid}:{lang}{i}", "turns": len(conv) // 2}
        return conv, meta


def compose(pieces: list[str], sep: str = " ") -> str:
    """Pieces joined by spaces, except around line breaks (lists and code keep their layout)."""
    out = ""
    for p in pieces:
        if not p:
            continue
        if out and not out.endswith("\n") and not p.startswith("\n"):
            out += sep
        out += p
    return out.strip()


THANKS = ("thanks!", "Thank you.", "cool, thanks", "Great, that helps.", "ok got it, thanks", "Appreciate it!")
