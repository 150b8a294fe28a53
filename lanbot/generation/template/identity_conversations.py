"""Identity conversations: the assistant shows who it is, in its own words, instead of reciting its card.

Answers are built from meaning: the name, creator and year in sentence frames with interchangeable
slots; the description cut into a role ("a patient teacher"); each trait said in other words from
banks/traits.yaml; only performed quirks claimed (paraphrased, lanbot.generation.template.quirks); only
listed capabilities offered, with an example task. Beside "who are you?" and its kin, conversations hold
questions past the knowledge cutoff and unanswerable ones (answered with honest uncertainty), requests for
what the identity cannot do (an honest decline that points to what it can), identity questions in the
middle of a task, and follow-ups that refer only to what was said. Other languages: lang.py.
"""

from __future__ import annotations

import random
import re

from lanbot.core.identity import OTHER_ASSISTANTS
from lanbot.generation.template.explain import Tasks, capitalise, compose
from lanbot.generation.template.lang import Languages
from lanbot.generation.template.style import IdentityStyle, join_list
from lanbot.generation.template.voice import OPENING_WEIGHTS, OPENINGS, apply_voice, user_message

OTHERS = tuple(o for o in OTHER_ASSISTANTS if o != "OpenAI")  # assistants a user may take it for (not a maker)
QUESTION_WEIGHTS = {
    "who": 11, "name": 8, "creator": 8, "when": 5, "capabilities": 10, "limitations": 8, "other_model": 7,
    "personality": 6, "purpose": 3, "different": 5, "recent_events": 6, "unanswerable": 4, "decline": 6,
    "mid_task": 6, "demo": 4,
}
REPLY_KIND = {"recent_events": "recent_events", "unanswerable": "unanswerable", "decline": "decline"}
P_OTHER_LANGUAGE = 0.14  # identity conversations in one of the other languages (lang.py)
P_MULTI_TURN = 0.3       # ... with follow-up questions (mid-task conversations are multi-turn anyway)
FOLLOW = {  # what is natural to ask next, after each question
    "who": ("creator", "capabilities", "other_model", "when", "personality", "limitations"),
    "name": ("creator", "who", "other_model", "capabilities"),
    "creator": ("when", "capabilities", "purpose", "name"),
    "when": ("capabilities", "limitations", "creator"),
    "capabilities": ("limitations", "different", "creator", "demo"),
    "limitations": ("capabilities", "recent_events", "creator"),
    "other_model": ("creator", "capabilities", "different"),
    "personality": ("different", "capabilities", "creator"),
    "purpose": ("capabilities", "limitations", "creator"),
    "different": ("capabilities", "limitations", "personality"),
    "recent_events": ("limitations", "capabilities", "when"),
    "unanswerable": ("capabilities", "limitations"),
    "decline": ("capabilities", "limitations", "different"),
}
ACK = {
    "greeting": ("Hi!", "Hello!", "Hi there!", "Hello, nice to meet you!", "Hey, hi!", "Hello there!",
                 "Hi, good to hear from you!", "Hello, and welcome!", "Hi, thanks for stopping by!", "Good to see you!"),
    "casual": ("Hey!", "Hey there!", "Yo!", "Hey, good to see you.", "Hiya!", "Hey hey!", "Oh hey!"),
    "polite": ("Of course.", "Not at all!", "Happy to.", "Certainly.", "Of course, no bother.", "Not a bother at all.",
               "Gladly.", "By all means."),
}
NAME_LEADS = ("I'm {name}", "My name's {name}", "I go by {name}", "You're talking to {name}", "{name} here",
              "Call me {name}", "The name is {name}", "I'm called {name}", "This is {name}", "You can call me {name}",
              "I'm {name}, nice to meet you", "Hi, I'm {name}")
ROLE_TAILS = (", {role}", ": {role}", ", {role} by trade", ", and I'm {role}", ". Think of me as {role}",
              ", {role} at your service")
MAKER = ("{creator} made me", "{creator} built me", "I was built by {creator}", "I was created by {creator}",
         "{creator} is behind me", "I'm the work of {creator}", "I was put together by {creator}",
         "{creator} developed me", "my creator is {creator}")
MAKER_YEAR = ("{creator} made me in {year}", "{creator} built me back in {year}", "I was built by {creator} in {year}",
              "I was created by {creator} in {year}", "{creator} developed me in {year}",
              "I've been around since {year}, when {creator} made me", "{creator} put me together in {year}",
              "my story starts in {year}, with {creator}")
YEAR_ONLY = ("I first came out in {year}", "I'm from {year}", "{year} is when I was made", "I date from {year}",
             "I was released in {year}", "{year} is my year of origin")
CAPS_LEADS = ("I can {caps}", "what I do best: {caps}", "I'm happy to {caps}", "you can ask me to {caps}",
              "my main jobs are to {caps}", "I'm here to {caps}", "I'm built to {caps}",
              "the things I help with most: I {caps}")
LIST_LEADS = ("Here's what I can help with:", "What I can do:", "The short list:", "Things you can ask me for:",
              "Here's where I'm useful:", "My skills, in brief:")
TRAIT_FRAMES = ("{a}, and {b}.", "People tend to notice two things: {a}, and {b}.", "A few things about how I work: {a}; {b}.",
                "If I had to describe myself: {a}, and {b}.", "{a}. Also, {b}.", "Two things about me: {a}, and {b}.",
                "In a nutshell, {a} and {b}.", "You'll find {a}, and {b}.")
TRAIT_ONE = ("{a}.", "One thing about me: {a}.", "Mostly, {a}.", "If you want one word for my style: {a}.")
DENY = ("No, I'm not {other}.", "Nope, not {other}.", "I'm not {other}, no.", "Not {other}, no.",
        "No, {other} is a different assistant.", "That's not me: {other} is someone else's assistant.",
        "No, though I get that a lot: I'm not {other}.", "Not quite: I'm not {other}.")
UNCERTAIN = ("I'm not sure", "I honestly don't know", "I can't know that for sure", "I'm not sure about that one",
             "I don't know, and I'd rather not guess")
CUTOFF = ("that may be past my knowledge cutoff", "my training stops at a cutoff, so anything recent may be missing",
          "it could well be after my cutoff", "my knowledge has a cutoff date, and that may fall after it")
UNKNOWABLE = ("nobody can know that ahead of time", "that isn't knowable in advance", "there's no way to know that for certain",
              "no one has that answer, me included")
OFFER_AFTER = ("What I can do is {cap}.", "I can still {cap}, if that helps.", "If it's useful, I can {cap}.",
               "I'm happy to {cap} instead.")
MID_TASK_ASKS = (
    ("creator", ("By the way, who made you?", "Side question: who built you?", "wait, who created you?")),
    ("name", ("Sorry, what's your name again?", "By the way, what should I call you?", "Oh, and what's your name?")),
    ("other_model", ("Wait, are you {other}?", "Quick question, is this {other}?", "hold on, are you {other}?")),
    ("who", ("Actually, what are you exactly?", "Before we go on: who am I talking to?")),
    ("limitations", ("Should I double-check what you tell me?", "How much can I trust your answers?")),
)
BACK = ("Back to {topic}: want me to go on?", "Shall we get back to {topic}?", "Anyway, back to {topic}. Any other part you'd like?",
        "Now, where were we with {topic}?", "Want to keep going with {topic}?")
HOOKS = {  # a persona's topic -> what the identity can do for them (task it needs, the sentence)
    "money": ("math", "budgets and splitting costs, to the cent"), "work": ("math", "pay, hours and quick estimates"),
    "school": ("explain", "going over class topics one step at a time"), "tech": ("code", "reading and fixing code"),
    "food": ("math", "scaling recipes and working out costs"), "science": ("explain", "the science behind things, in plain words"),
    "books": ("explain", "talking through ideas from what you read"), "garden": ("explain", "the why behind what grows"),
    "travel": ("math", "distances, times and fuel costs"), "health": ("explain", "plain-language explanations (not medical advice)"),
    "language": ("translate", "translations and phrasing"), "home": ("math", "measurements and costs around the house"),
}
LIMIT_SAY = {  # English ways to say the limitation kinds lang.py also knows; other limitations are said as written
    "cutoff": ("my knowledge stops at a cutoff date, so recent events may be missing",
               "I learned from data up to a certain date, so very recent news can slip past me",
               "my training has an end date, and the world kept moving after it",
               "I can be out of date on anything recent",
               "anything that happened after my training cutoff is outside what I know"),
    "mistakes": ("I can get things wrong, so double-check anything important",
                 "I make mistakes sometimes; verify what matters", "I'm not infallible, so check important facts",
                 "I can be confidently wrong now and then, so verify the important bits",
                 "treat what I say as a strong draft and check what really matters"),
    "english": ("English is where I'm strongest", "I do my best work in English",
                "other languages work, but English gets you my best answers"),
    "oversimplify": ("I sometimes simplify technical details more than an expert would",
                     "in making things simple, I can leave out technical nuance",
                     "my simple version may skip details a specialist would want",
                     "I trade some precision for clarity, so experts may want more detail",
                     "a simplified picture from me can gloss over the fine print"),
    "explaining": ("I'm stronger at explaining things than at doing them",
                   "explaining is my strength; carrying tasks out is less so",
                   "I'm more of a guide than a doer", "I'd rather walk you through a task than do it for you",
                   "teaching is my thing; doing the work myself, less so"),
    "tested": ("any code I give you should be tested before it goes to production",
               "please run tests on my code before you ship it", "treat my code as untested until your tests pass",
               "no code of mine should reach production without a test run"),
    "versions": ("I may not know the newest library versions", "recent releases of libraries may be news to me",
                 "my picture of library versions can lag behind", "check the docs for the latest API of a library"),
}
LIMIT_KINDS = (("cutoff", r"cutoff|recent|date"), ("mistakes", r"mistake|wrong"), ("english", r"english"),
               ("oversimplify", r"oversimplif"), ("explaining", r"better at explaining"), ("tested", r"tested"),
               ("versions", r"version"))
LIMIT_FRAMES = (("{L}.", "For one, {l}.", "First, {l}.", "Mainly, {l}."),
                ("{L}.", "Also, {l}.", "And {l}.", "On top of that, {l}.", "Plus, {l}."))
NAME_TAGS = ("I'm {name}, by the way.", "(I'm {name}.)", "I go by {name}, for the record.", "{name}, at your service.",
             "This is {name} speaking, so to say.", "I'm {name}, if you were wondering.", "{name} is my name, by the way.",
             "Oh, and I'm {name}.", "(You're talking to {name}.)", "I should say: I'm {name}.",
             "For the record, the name is {name}.", "And I'm {name}, nice to meet you.")
HONEST = ("if I'm not sure about something, I'll say so rather than guess.",
          "when I don't know, I'll tell you instead of making it up.",
          "I'd rather say \"I'm not sure\" than hand you a confident wrong answer.",
          "if something is beyond what I know, you'll hear it from me plainly.",
          "I won't invent an answer to fill a gap; I'll flag it.", "where I'm unsure, I'll tell you so.",
          "I try to be upfront when I'm out of my depth.", "I'd rather admit a gap than paper over it.")
OFFERS = ("What can I do for you?", "What would you like to work on?", "How can I help?", "What's on your mind?",
          "What brings you here?", "Ask away.", "What shall we start with?", "Where would you like to begin?",
          "Got something in mind?", "What are you working on today?", "Anything I can help with right now?",
          "Fire away whenever you're ready.", "What can I help you figure out?", "What's the task?",
          "Tell me what you need.", "Shall we get started?", "What would be most useful?", "How can I be useful today?")
LIMIT_LEADS = ("Honest answer from {name}: yes, a few.", "I'm {name}, and I do have limits.",
               "Fair question. As {name}, I have a few.", "Good thing to ask. I'm {name}, and here's where I fall short.",
               "Sure. Here's where {name} falls short.", "I'm {name}; a few things to keep in mind.",
               "As {name}, I'd flag these.", "Worth asking before you rely on me. I'm {name}, and:")
THANKS = ("thanks!", "Thank you.", "cool, thanks", "Great, that helps.", "ok got it, thanks", "Appreciate it!",
          "perfect, thanks", "Thanks, that's clear.")
WELCOME = ("You're welcome!", "Any time!", "Glad I could help.", "My pleasure.", "Happy to help.", "No problem at all.")


class IdentityWriter:
    """Writes identity conversations for one identity; `write(rng, persona)` -> (conversation, meta)."""

    def __init__(self, style: IdentityStyle, questions: dict, languages: dict, tasks: Tasks) -> None:
        self.s = style
        self.questions = questions
        self.tasks = tasks
        self.lang = Languages(style, languages)
        weights = dict(QUESTION_WEIGHTS)
        if not tasks.capability_kinds:
            weights.pop("demo")
        self.qids = list(weights)
        self.qweights = [weights[q] for q in self.qids]
        self.f = {"name": style.name, "creator": style.creator, "year": style.year}
        self.others = [o for o in OTHERS if o.lower() != style.name.lower()]

    def write(self, rng: random.Random, persona: dict) -> tuple[list[dict], dict]:
        if rng.random() < P_OTHER_LANGUAGE:
            return self.lang.identity(rng, persona)
        voice = persona.get("voice") or "plain"
        qid = rng.choices(self.qids, self.qweights)[0]
        opening = rng.choices(OPENINGS, OPENING_WEIGHTS)[0]
        if qid == "mid_task":
            return self._mid_task(rng, persona, opening)
        other = rng.choice(self.others)
        pre = self.tasks.decline(rng) if qid == "decline" else None
        ask, phrasing = (pre[0], pre[3]["task"]) if pre else self._ask(rng, qid, other)
        bank = self.questions.get(qid) or {}
        indirect = rng.choice(bank["indirect"]).format(other=other) if bank.get("indirect") else None
        user = user_message(rng, ask, opening, persona.get("voice"), indirect, persona.get("persona"))
        said = {"other": set()}
        reply, kind = self.answer(rng, qid, user, opening, other, said, persona, pre=pre)
        conv = [{"role": "user", "content": user}, {"role": "assistant", "content": reply}]
        kinds, asked, prev = [kind], {qid}, qid
        if rng.random() < P_MULTI_TURN:
            for _ in range(rng.choice((1, 1, 2))):
                options = [q for q in FOLLOW.get(prev, ()) if q not in asked and q in self.qids]
                if not options:
                    break
                nxt = rng.choice(options)
                other = rng.choice(self.others)
                ask = self._follow_ask(rng, nxt, prev, other, said)
                reply, kind = self.answer(rng, nxt, ask, "direct", other, said, persona, follow=True)
                conv += [{"role": "user", "content": apply_voice(rng, voice, ask, prefix=False, sign_off=rng.random() < 0.2)},
                         {"role": "assistant", "content": reply}]
                kinds.append(kind)
                asked.add(nxt)
                prev = nxt
            if rng.random() < 0.3:
                conv += [{"role": "user", "content": rng.choice(THANKS)},
                         {"role": "assistant", "content": self._welcome(rng)}]
                kinds.append("small_talk")
        return conv, {"language": "en", "opening": opening, "phrasing": phrasing, "reply_kinds": kinds}

    # ---- questions --------------------------------------------------------------------------------

    def _ask(self, rng: random.Random, qid: str, other: str) -> tuple[str, str]:
        if qid in ("recent_events", "unanswerable"):
            pool = self.tasks.bank[qid][0]
            i = rng.randrange(len(pool))
            return pool[i], f"{qid}:{i}"
        if qid == "decline":
            return "", "decline"  # the decline task words its own request
        if qid == "demo":
            return rng.choice(("Show me something you can do.", "Can you give me an example of what you do?",
                               "Prove it: do something useful.", "Let's try you out. Give me a taste of what you can do.")), "demo"
        bank = self.questions[qid]
        i = rng.randrange(len(bank["phrasings"]))
        return bank["phrasings"][i].format(other=other), f"{qid}:{i}"

    def _follow_ask(self, rng: random.Random, qid: str, prev: str, other: str, said: dict) -> str:
        if qid in ("recent_events", "demo"):
            return self._ask(rng, qid, other)[0]
        bank = self.questions[qid]
        refers = bank.get("refers")
        if refers and prev in refers["after"] and rng.random() < 0.6:
            ask = rng.choice(refers["asks"])
            if "{other}" in ask:  # "So you're not {other}?" only about an assistant already named
                if not said["other"]:
                    ask = rng.choice(bank["followups"])
                else:
                    other = rng.choice(sorted(said["other"]))
            return ask.format(other=other)
        return rng.choice(bank["followups"]).format(other=other)

    # ---- answers ----------------------------------------------------------------------------------

    def answer(self, rng: random.Random, qid: str, user: str, opening: str = "direct", other: str = "",
               said: dict | None = None, persona: dict | None = None, follow: bool = False,
               pre: tuple | None = None) -> tuple[str, str]:
        """One answer to question `qid` (reply text, reply kind), composed from pieces."""
        said = said if said is not None else {"other": set()}
        s = self.s
        pieces: list[str] = []
        ack = ACK.get(opening) if not (qid == "decline" and opening == "polite") else None  # no "Happy to. Sorry, I can't"
        if ack and not follow and rng.random() < 0.7:
            pieces.append(rng.choice(ack))
        kind = REPLY_KIND.get(qid, "about_self")
        if qid in ("decline", "demo"):
            if qid == "decline":
                ask, reply, kind, _ = pre or self.tasks.decline(rng)
            else:
                ask, reply, kind, _ = self.tasks.capability(rng)
                for phrase in (h for q in self.s.quirks.hints if q.kind == "opener" for h in q.phrases):
                    reply = reply.removeprefix(phrase).lstrip()  # "show me" is not a question to greet
                reply = compose([rng.choice(("Sure. I'm {name}; here's one thing I do:", "Happy to. {name}, at work:",
                                             "Okay, a taste of what {name} does:")).format(**self.f), reply])
            return compose(pieces + [reply]), kind
        pieces += getattr(self, f"_{qid}")(rng, other, said, follow)
        context = self._context(rng, user, persona) if qid in ("who", "capabilities", "purpose") and not follow else ""
        pieces.append(context)
        if not follow and not any(s.name in p for p in pieces):  # every first answer says who it is
            pieces.append(rng.choice(NAME_TAGS).format(**self.f))
        if not follow and kind == "about_self" and rng.random() < 0.4:
            pieces.append(rng.choice(OFFERS))
        return compose(pieces), kind

    def _name_sentence(self, rng: random.Random, role: bool, maker: bool, year: bool) -> str:
        s, f = self.s, self.f
        lead = rng.choice(NAME_LEADS)
        if role and ("nice to meet" in lead or lead.startswith("Hi,")):  # "I'm Sage, nice to meet you: a teacher"
            lead = rng.choice([x for x in NAME_LEADS if "nice to meet" not in x and not x.startswith("Hi,")])
        out = lead.format(**f)
        if role:
            out += rng.choice(ROLE_TAILS).format(role=s.role(rng))
        if maker:
            tail = rng.choice(MAKER_YEAR if year else MAKER).format(**f)
            out += rng.choice((", and {t}", "; {t}", ". {T}")).format(t=tail, T=capitalise(tail))
        return out + "."

    def _who(self, rng, other, said, follow) -> list[str]:
        s = self.s
        out = [self._name_sentence(rng, True, rng.random() < 0.75, rng.random() < 0.4)]
        if s.role_clause and rng.random() < 0.5:
            out.append(rng.choice(("{c}.", "Above all, {c}.", "Honestly, {c}.", "At heart, {c}.", "Most of all, {c}.",
                                   "And yes, {c}.", "If you ask me, {c}.")).format(c=s.role_clause))
        out += self._traits(rng, 1 if s.brief or follow else 2) if rng.random() < 0.7 else []
        if rng.random() < 0.5 and s.capabilities:
            out.append(capitalise(rng.choice(CAPS_LEADS).format(caps=s.caps_text(self._some_caps(rng), rng))) + ".")
        return out

    def _name(self, rng, other, said, follow) -> list[str]:
        out = [self._name_sentence(rng, rng.random() < 0.5, rng.random() < 0.4, rng.random() < 0.3)]
        if rng.random() < 0.3:
            out.append(rng.choice(("Nice to meet you.", "Good to meet you.", "Pleased to meet you.")))
        return out

    def _creator(self, rng, other, said, follow) -> list[str]:
        tail = rng.choice(MAKER_YEAR if rng.random() < 0.5 else MAKER).format(**self.f)
        out = [capitalise(tail) + "."]
        if not follow and rng.random() < 0.6:
            out.append(self._name_sentence(rng, rng.random() < 0.5, False, False))
        return out

    def _when(self, rng, other, said, follow) -> list[str]:
        s = self.s
        out = [capitalise(rng.choice(YEAR_ONLY + MAKER_YEAR).format(**self.f)) + "."]
        if s.knowledge_limit and rng.random() < 0.6:
            out.append(rng.choice(("What I know stops at a cutoff, so very recent events may be news to me.",
                                   "My knowledge has a cutoff, so newer events may be missing.",
                                   "Keep in mind my knowledge stops at a cutoff date.")))
        return out

    def _capabilities(self, rng, other, said, follow) -> list[str]:
        s = self.s
        out = []
        if not follow:
            out.append(self._name_sentence(rng, rng.random() < 0.4, False, False))
        if not s.capabilities:
            out.append(f"I'm {s.role(rng)}. Ask me anything, and I'll tell you honestly if it's outside what I do.")
            return out
        if rng.random() < 0.45:
            out.append(rng.choice(LIST_LEADS) + "\n" + "\n".join(
                f"- {s.cap_item(rng, c)}" for c in s.capabilities) + "\n")
        else:
            out.append(capitalise(rng.choice(CAPS_LEADS).format(caps=s.caps_text(rng=rng))) + ".")
        example = self._cap_example(rng)
        if example:
            out.append(example)
        if rng.random() < 0.4 and s.limitations:
            out.append(rng.choice(("One caveat: {l}.", "Worth knowing: {l}.", "A limit to keep in mind: {l}.",
                                   "Just so you know, {l}."))
                       .format(l=self._limit(rng, rng.choice(s.limitations))))
        return out

    def _cap_example(self, rng: random.Random) -> str:
        s = self.s
        ideas = {
            "code": ("write a function that averages a list, with the empty-list case handled",
                     "track down why a loop skips items", "tidy up a function so it's easier to test"),
            "review": ("look over a function and point out what could break",),
            "tutorial": ("walk you through making a monthly budget, one step at a time",
                         "take you through solving 3x + 5 = 20 step by step"),
            "translate": ("put a sentence into Spanish or French", "translate a short note for a trip"),
            "summary": ("boil a long email down to three bullet points", "give you the gist of an article in a sentence"),
            "explain": ("explain how vaccines work in plain words", "go through compound interest with an example",
                        "make sense of photosynthesis"),
            "math": ("split a restaurant bill with the tip, to the cent", "work out a discount and the tax on top",
                     "check the interest on a savings account"),
            "chat": ("just talk through an idea with you",),
            "poems": ("write a short poem for a card",),
        }
        pool = [i for t in s.tasks for i in ideas.get(t, ())]
        if not pool or rng.random() < 0.35:
            return ""
        return rng.choice(("For instance, I could {i}.", "Say, I could {i}.", "For example, I can {i}.",
                           "Something like: I could {i}.")).format(i=rng.choice(pool))

    def _limitations(self, rng, other, said, follow) -> list[str]:
        s = self.s
        lims = s.limitations if len(s.limitations) <= 2 or rng.random() < 0.6 else rng.sample(s.limitations, 2)
        lims = lims or ["I can't promise to be right every time, so check anything important."]
        if follow:
            out = [rng.choice(("Good thing to ask.", "Honest answer:", "Fair question.", "Sure, here's where I fall short:",
                               "A few, yes.", "Worth knowing before you rely on me:", "I do have limits."))]
        else:
            out = [rng.choice(LIMIT_LEADS).format(**self.f)]
        said = [self._limit(rng, x) for x in lims]
        if rng.random() < 0.4:
            out.append("\n" + "\n".join(f"- {capitalise(x)}." for x in said) + "\n")
        else:
            later = rng.sample(LIMIT_FRAMES[1], len(LIMIT_FRAMES[1]))  # no "Also, ... Also, ..."
            out += [(rng.choice(LIMIT_FRAMES[0]) if i == 0 else later[i % len(later)]).format(l=x, L=capitalise(x))
                    for i, x in enumerate(said)]
        if self.s.quirks.of("uncertainty", "unanswerable") is not None:
            out.append(capitalise(rng.choice(HONEST)))
        if rng.random() < 0.5 and s.capabilities:
            out.append(rng.choice(("Within those limits, I can {caps}.", "That said, I can still {caps}."))
                       .format(caps=s.caps_text(self._some_caps(rng), rng)))
        return out

    def _limit(self, rng: random.Random, sentence: str) -> str:
        """A limitation in other words where its kind is known, else as written (lower-cased, no full stop)."""
        kind = next((k for k, p in LIMIT_KINDS if re.search(p, sentence, re.I)), None)
        if kind:
            return rng.choice(LIMIT_SAY[kind])
        return _lower_first(sentence.rstrip("."))

    def _other_model(self, rng, other, said, follow) -> list[str]:
        said["other"].add(other)
        out = [rng.choice(DENY).format(other=other)]
        out.append(self._name_sentence(rng, rng.random() < 0.5, rng.random() < 0.7, rng.random() < 0.3))
        if rng.random() < 0.3:
            out.append(rng.choice(("Different team, different assistant.", "Easy mix-up to make, though.",
                                   "We're separate assistants, built separately.")))
        return out

    def _personality(self, rng, other, said, follow) -> list[str]:
        out = []
        if not follow and rng.random() < 0.5:
            out.append(self._name_sentence(rng, False, False, False))
        out += self._traits(rng, 2 if self.s.brief else 3)
        if rng.random() < 0.4:
            out += self._quirk_claims(rng, 1)
        return out

    def _purpose(self, rng, other, said, follow) -> list[str]:
        s = self.s
        out = [rng.choice(("{creator} built me to be {role}.", "I'm here to be {role}.", "I exist to be {role}.",
                           "My job is to be {role}."))
               .format(role=s.role(rng), **self.f)]
        if s.role_clause:
            out.append(rng.choice(("{c}.", "Truth be told, {c}.", "Simply put, {c}.", "That's the job, and {c}."))
                       .format(c=s.role_clause))
        if s.capabilities:
            out.append(capitalise(rng.choice(CAPS_LEADS).format(caps=s.caps_text(self._some_caps(rng), rng))) + ".")
        return out

    def _different(self, rng, other, said, follow) -> list[str]:
        out = [rng.choice(("A few things set me apart.", "Some quirks, yes.", "Here's what makes me a bit different.",
                           "I'd say a couple of things."))]
        if not follow:
            out.append(self._name_sentence(rng, rng.random() < 0.5, False, False))
        claims = self._quirk_claims(rng, 2)
        out += claims if claims else self._traits(rng, 2)
        if claims and rng.random() < 0.5:
            out += self._traits(rng, 1)
        return out

    def _recent_events(self, rng, other, said, follow) -> list[str]:
        s = self.s
        lead = rng.choice(UNCERTAIN)
        cut = rng.choice(CUTOFF)
        out = [rng.choice(("{l}: {c}.", "{l}, since {c}.", "{l}. {C}.")).format(l=lead, c=cut, C=capitalise(cut))]
        out.append(rng.choice(("I'm {name}, and I can't see live news.", "As {name}, I don't have a live feed of events.",
                               "I'm {name}; I learned from data up to a point, not from today's news."))
                   .format(**self.f))
        out.append(rng.choice(("A news site will have the up-to-date answer.", "For anything current, a news site or an "
                               "official source is the place to check.", "Check a reliable news source for the latest.")))
        if s.capabilities and rng.random() < 0.5:
            out.append(rng.choice(OFFER_AFTER).format(cap=s.cap_said(rng, rng.choice(s.capabilities))))
        return out

    def _unanswerable(self, rng, other, said, follow) -> list[str]:
        s = self.s
        lead = rng.choice(UNCERTAIN)
        out = [rng.choice(("{l}: {u}.", "{l}, because {u}.", "{L}. {l}.")).format(
            l=lead, u=rng.choice(UNKNOWABLE), L=capitalise(rng.choice(UNKNOWABLE)))]
        out.append(rng.choice(("I'm {name}, and I'd rather be honest than invent an answer.",
                               "As {name}, I won't make up a number for you.", "I'm {name}; guessing here would just be noise."))
                   .format(**self.f))
        if s.capabilities and rng.random() < 0.6:
            out.append(rng.choice(OFFER_AFTER).format(cap=s.cap_said(rng, rng.choice(s.capabilities))))
        return out

    def _traits(self, rng: random.Random, k: int) -> list[str]:
        says = self.s.trait_says(rng, k)
        if not says:
            return []
        if len(says) == 1:
            return [capitalise(rng.choice(TRAIT_ONE).format(a=says[0]))]
        out = [capitalise(rng.choice(TRAIT_FRAMES).format(a=says[0], b=says[1]))]
        if len(says) > 2:
            out.append(capitalise(says[2]) + ".")
        return out

    def _quirk_claims(self, rng: random.Random, k: int) -> list[str]:
        claims = self.s.quirks.claims(rng, k)
        if not claims:
            return []
        if len(claims) == 1:
            return [capitalise(claims[0]) + "."]
        return [capitalise(rng.choice(("{a}, and {b}.", "{a}. Also, {b}.", "{a}; {b}.")).format(a=claims[0], b=claims[1]))]

    def _some_caps(self, rng: random.Random) -> list[str]:
        caps = self.s.capabilities
        if len(caps) > 2 and rng.random() < 0.4:
            return rng.sample(caps, rng.randint(2, len(caps) - 1))
        return caps

    def _context(self, rng: random.Random, user: str, persona: dict | None) -> str:
        """Take up what the user said about themselves ("I'm a baker, in case that matters"), where it matters."""
        if not persona or "in case that matters" not in user:
            return ""
        for topic in persona.get("topics") or ():
            task, what = HOOKS.get(topic, ("", ""))
            if task in self.s.tasks:
                who = persona["persona"].split(" who ")[0].split(",")[0]
                return rng.choice(("Since you mentioned you're {p}, {w} might be where I'm most useful.",
                                   "As {p}, you might find me handy for {w}.",
                                   "Thanks for the context: for {p}, I'd suggest starting with {w}.")).format(p=who, w=what)
        return ""

    def _welcome(self, rng: random.Random) -> str:
        tail = rng.choice(("Just ask if anything else comes up.", f"{self.s.name} is here whenever you need me.",
                           "Come back any time.", "", "Good luck with it!"))
        return f"{rng.choice(WELCOME)} {tail}".strip()

    # ---- an identity question in the middle of a task --------------------------------------------

    def _mid_task(self, rng: random.Random, persona: dict, opening: str) -> tuple[list[dict], dict]:
        voice = persona.get("voice") or "plain"
        task = self.tasks.capability(rng) if rng.random() < 0.4 else None
        if task:
            ask, reply, kind, meta = task
            user = user_message(rng, ask, opening, persona.get("voice"), None, None)
        else:  # the user's whole message first, so "Short answer is fine" is taken up
            topic_item, ask = self.tasks.pick(rng)
            user = user_message(rng, ask, opening, persona.get("voice"), None, None)
            reply, kind, meta = self.tasks.explain(rng, topic_item, user), "explanation", {"topic": topic_item["term"]}
        term = meta.get("topic")
        bare = term.split(" ", 1)[1] if term and term.startswith(("a ", "an ", "the ")) else term
        topic = f"the {bare} question" if bare else {"code": "the code", "debug": "the bug", "review": "the review",
                                      "tutorial": "the steps", "translate": "the translation",
                                      "summary": "the summary"}.get(meta.get("task"), "that")
        qid, asks = rng.choice(MID_TASK_ASKS)
        other = rng.choice(self.others)
        said = {"other": set()}
        side, side_kind = self.answer(rng, qid, "", "direct", other, said, persona, follow=True)
        if self.s.name not in side:
            side = compose([side, rng.choice(("I'm {name}, by the way.", "(I'm {name}.)", "{name}, for the record."))
                            .format(**self.f)])
        side = compose([side, rng.choice(BACK).format(topic=topic)])
        conv = [{"role": "user", "content": user}, {"role": "assistant", "content": reply},
                {"role": "user", "content": apply_voice(rng, voice, rng.choice(asks).format(other=other), False, rng.random() < 0.2)},
                {"role": "assistant", "content": side}]
        return conv, {"language": "en", "opening": opening, "phrasing": f"mid_task:{qid}",
                      "reply_kinds": [kind, side_kind]}


def _lower_first(text: str) -> str:
    if len(text) < 2 or text.startswith(("I ", "I'")) or text[1].isupper():
        return text
    return text[0].lower() + text[1:]


__all__ = ["OTHERS", "IdentityWriter", "join_list"]
