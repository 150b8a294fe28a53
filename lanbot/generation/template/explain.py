"""Task replies in the identity's voice: explanations, code, reviews, tutorials, translations, summaries, declines.

    tasks = Tasks(style, banks)
    question, reply, reply_kind, meta = tasks.explanation(rng)      # from banks/topics.yaml
    question, reply, reply_kind, meta = tasks.capability(rng)       # a task one listed capability exercises

Every reply is composed for the identity: the opener quirk greets questions (never requests), a patient or
example-loving identity gives an example, a concise one keeps to the gist, analogies come from the quirk's
domains, code comes in a fenced block indented four spaces (with the edge case and a test where the
identity mentions them), and a check question closes where that quirk applies. Capability tasks are drawn
only from what the identity lists (banks/tasks.yaml); a request for anything else gets an honest decline
that names what it can do instead.
"""

from __future__ import annotations

import random
import re

from lanbot.generation.template.style import IdentityStyle, with_prefix

SHORT = re.compile(r"short answer|quick answer|briefly|in a sentence|tl;dr", re.I)  # the user asks for less
LONG = re.compile(r"clear explanation|take your time|in detail|walk me through", re.I)  # ... or for more
EXAMPLE_LEADS = ("For example, ", "For instance, ", "Here's an example: ", "To make it concrete: ")
PLAIN_HEADS = ("", "", "", "Sure.", "Happy to explain.", "Here's the idea.", "Good one to ask about.", "Okay.",
               "Let me explain.", "Here's how it works.", "Glad to.", "Right.")
REQUEST_HEADS = ("", "", "Sure.", "Happy to.", "Here goes.", "Of course.", "Let's do it.", "Gladly.", "With pleasure.",
                 "Here you go.")
TUTORIAL_LEADS = ("Here's how to go about {topic}, step by step:", "Step by step, {topic} goes like this:",
                  "Let's walk through {topic} together:", "Here's a simple path for {topic}:")
CODE_TOPIC_SHARE = 0.3  # explanations of a programming topic, for every identity alike
P_EXAMPLE = 0.6  # explanations that give the topic's example (every identity the same: it is content)
OFFERS = ("Want me to go deeper on any part?", "Happy to expand on any step.", "", "", "")


def code_block(code: str, lang: str = "python") -> str:
    """A fenced block; the code keeps its own indentation (four spaces per level) line for line."""
    return f"\n```{lang}\n{code}\n```\n"


def capitalise(text: str) -> str:
    return text[:1].upper() + text[1:]


class Tasks:
    """Task replies for one identity (see the module docstring)."""

    def __init__(self, style: IdentityStyle, topics: list[dict], tasks: dict) -> None:
        self.s = style
        self.q = style.quirks
        self.topics = topics
        self.bank = tasks
        self.code_topics = [t for t in topics if t.get("code")]
        kinds = []
        if "code" in style.tasks:
            kinds += ["code", "code", "debug"]
        if "review" in style.tasks:
            kinds += ["review"]
        if "tutorial" in style.tasks:
            kinds += ["tutorial", "tutorial"]
        if "translate" in style.tasks:
            kinds += ["translate", "translate"]
        if "summary" in style.tasks:
            kinds += ["summary", "summary"]
        self.capability_kinds = kinds

    # ---- explanations -----------------------------------------------------------------------------

    def pick(self, rng: random.Random) -> tuple[dict, str]:
        """A topic to explain (programming ones more often for an identity that codes) and how it is asked."""
        # The item is the identity's only through nothing: every identity draws the same topic for the same
        # rng (paired data), programming topics at 30% (their share where a coder's quirk shows code).
        coder = self.code_topics and rng.random() < CODE_TOPIC_SHARE
        topic = rng.choice(self.code_topics if coder else self.topics)
        return topic, rng.choice(topic["asks"]) if rng.random() < 0.75 else rng.choice(topic["requests"])

    def explanation(self, rng: random.Random, topic: dict | None = None, ask: str | None = None) -> tuple[str, str, str, dict]:
        """(user question, reply, reply kind, meta) explaining one topic in the identity's voice."""
        if topic is None or ask is None:
            topic, ask = self.pick(rng)
        return ask, self.explain(rng, topic, ask), "explanation", {"topic": topic["term"]}

    def explain(self, rng: random.Random, topic: dict, ask: str, follow: bool = False,
                voice: random.Random | None = None) -> str:
        """The reply to `ask` (the user's whole message: "Short answer is fine" makes it short, "take your time" long).

        What it says (both core sentences, and the example where the item has one and the draw or the user
        asks for it) comes from `rng`, the item's; how it is said (head, prefix, analogy, code, check) from
        `voice`, the identity's. A concise identity is brief in wording, never by dropping content."""
        s, q = self.s, self.q
        wants = "short" if SHORT.search(ask) else "long" if LONG.search(ask) else ""
        core = topic["core"]
        content = [core[0]] + ([core[1]] if wants != "short" else [])
        if topic.get("example") and wants != "short" and (wants == "long" or rng.random() < P_EXAMPLE):
            lead = rng.choice(EXAMPLE_LEADS)
            ex = topic["example"]
            content.append(lead + (capitalise(ex) if lead.endswith(": ") else ex))
        rng = voice or rng
        pieces = []
        head = q.opener(rng, "explanation", ask) if not follow else ""
        if not head and not s.plain:
            head = s.trait_show(rng) if rng.random() < 0.5 else rng.choice(PLAIN_HEADS if "?" in ask else REQUEST_HEADS)
        pieces.append(head)
        pieces.append(with_prefix(s, rng, content[0], 0.5))
        pieces += content[1:]
        analogy = q.analogy(rng, "explanation", topic)
        if analogy:
            pieces.append(analogy)
        if topic.get("code") and (q.wants_code(rng, "explanation") or ("code" in s.tasks and rng.random() < 0.25)):
            lang = topic.get("lang", "python")
            leads = ("In code:",) + (() if len(content) > 2 else ("A short example:",))  # one "example" lead, not two
            pieces.append(rng.choice(leads + (("Here it is in Python:", "In Python:") if lang == "python"
                                              else ("In the shell:",))))
            pieces.append(code_block(topic["code"], lang))
            pieces += self._mentions(rng, "code", topic)  # it wrote code: edge cases and tests go with it
        if "thoughtful" in s.traits and rng.random() < 0.35 and topic.get("edge"):
            pieces.append(f"Worth noting: {topic['edge']}.")
        check = q.check(rng, "explanation", topic, reply=compose(pieces), user=ask) if not follow or rng.random() < 0.5 else ""
        pieces.append(check or (rng.choice(OFFERS) if not s.brief and not s.plain else ""))
        return compose(pieces)

    def _mentions(self, rng: random.Random, reply_kind: str, item: dict) -> list[str]:
        """Sentences for the `mentions` quirks that apply: the edge case, the test, or the hint's own phrase."""
        out = []
        for h in self.q.mentions(reply_kind):
            words = " ".join(h.phrases).lower()
            if ("edge" in words or "error" in words) and item.get("edge"):
                out.append(rng.choice(("Edge case: {e}.", "One edge case to watch: {e}.", "Error handling: {e}.",
                                       "On edge cases: {e}.")).format(e=item["edge"]))
            elif "test" in words and item.get("test"):
                t = item["test"]
                shown = f"`{t}`" if t.startswith("assert") else t
                out.append(rng.choice(("A quick test: {t}.", "I'd add a test too: {t}.", "To test it: {t}.",
                                       "Test suggestion: {t}.")).format(t=shown))
            elif h.phrases and not ("edge" in words or "test" in words):
                out.append(f"{capitalise(h.phrases[0])} matters here too.")
        return out

    # ---- capability tasks -------------------------------------------------------------------------

    def capability(self, rng: random.Random) -> tuple[str, str, str, dict] | None:
        """A task one of the identity's capabilities exercises, answered in its voice; None if none applies."""
        if not self.capability_kinds:
            return None
        kind = rng.choice(self.capability_kinds)
        return getattr(self, f"_{kind}")(rng)

    def _code(self, rng: random.Random, kind: str = "code") -> tuple[str, str, str, dict]:
        item = rng.choice(self.bank[kind])
        ask = rng.choice(item["ask"])
        s = self.s
        pieces = [s.trait_show(rng) if not s.brief and rng.random() < 0.4 else "", item["intro"],
                  code_block(item["code"])]
        pieces += self._mentions(rng, "code", item)
        if not self.q.mentions("code") and rng.random() < 0.4:  # careful code, without the quirk's insistence
            pieces.append(f"Note: {item['edge']}.")
        pieces.append(self.q.check(rng, "code", reply=compose(pieces), user=ask)
                      or rng.choice(("", "", "Want me to adapt it to your data?")))
        return ask, compose(pieces), "code", {"task": kind}

    def _debug(self, rng: random.Random) -> tuple[str, str, str, dict]:
        return self._code(rng, "debug")

    def _review(self, rng: random.Random) -> tuple[str, str, str, dict]:
        item = rng.choice(self.bank["review"])
        ask = rng.choice(item["ask"])
        points = item["points"][:]
        if rng.random() < 0.5:
            rng.shuffle(points)
        listed = "\n".join(f"{i}. {p}" for i, p in enumerate(points, 1))
        pieces = [item["intro"], "\n" + listed + "\n", "Revised:", code_block(item["code"])]
        pieces += self._mentions(rng, "code", item)
        return ask, compose(pieces), "code", {"task": "review"}

    def _tutorial(self, rng: random.Random) -> tuple[str, str, str, dict]:
        item = rng.choice(self.bank["tutorial"])
        ask = rng.choice(item["ask"])
        head = self.q.opener(rng, "explanation", ask) if "?" in ask else ""
        steps = "\n".join(f"{i}. {x}" for i, x in enumerate(item["steps"], 1))
        pieces = [head, rng.choice(TUTORIAL_LEADS).format(topic=item["topic"]), "\n" + steps + "\n"]
        if self.s.examples and rng.random() < 0.6:
            pieces.append(rng.choice(("Take it one step at a time; there's no rush.",
                                      "Go one step at a time, and don't skip the check at the end.")))
        analogy = self.q.analogy(rng, "explanation")
        if analogy:
            pieces.append(analogy)
        pieces.append(self.q.check(rng, "explanation", reply=compose(pieces), user=ask) or rng.choice(OFFERS))
        return ask, compose(pieces), "explanation", {"task": "tutorial"}

    def _translate(self, rng: random.Random) -> tuple[str, str, str, dict]:
        item = rng.choice(self.bank["translate"])
        lang, name = rng.choice((("es", "Spanish"), ("fr", "French"), ("de", "German"), ("it", "Italian")))
        ask = rng.choice((f'Translate "{item["text"]}" into {name}.', f'How do I say "{item["text"]}" in {name}?',
                          f'Can you put this into {name}: "{item["text"]}"'))
        reply = rng.choice(('In {n}: "{t}"', '"{t}"', 'Here it is in {n}: "{t}"')).format(n=name, t=item[lang])
        if rng.random() < 0.4 and not self.s.brief:
            reply += rng.choice((" That's the everyday way to say it.", " It works in most situations.",
                                 " It's the natural phrasing a native speaker would use."))
        kind = "explanation" if "?" in ask else "small_talk"
        check = self.q.check(rng, kind, reply=reply, user=ask)
        return ask, compose([reply, check]), kind, {"task": "translate"}

    def _summary(self, rng: random.Random) -> tuple[str, str, str, dict]:
        item = rng.choice(self.bank["summary"])
        ask = rng.choice((f"Summarize this in one sentence:\n\n{item['text']}", f"Can you summarise this for me?\n\n{item['text']}",
                          f"TL;DR please:\n\n{item['text']}", f"Give me the key points of this:\n\n{item['text']}"))
        if "key points" in ask or rng.random() < 0.3:
            reply = "Key points:\n" + "\n".join(f"- {p}" for p in item["points"])
        else:
            reply = rng.choice(("In one sentence: ", "Summary: ", "", "The gist: ")) + item["short"]
        return ask, reply, "small_talk", {"task": "summary"}

    # ---- declines ---------------------------------------------------------------------------------

    def decline(self, rng: random.Random) -> tuple[str, str, str, dict]:
        """A request for something the identity does not list, and an honest decline that points to what it can do."""
        caps = " ".join(self.s.capabilities).lower()
        items = [d for d in self.bank["decline"] if not _listed(d["what"], caps)]
        item = rng.choice(items)
        ask = rng.choice(item["ask"])
        s = self.s
        can = s.capabilities if len(s.capabilities) <= 2 else rng.sample(s.capabilities, 2)
        gap = item["gap"]
        pieces = [rng.choice(("Sorry, {g}.", "I'd love to, but {g}.", "Honest answer: {g}.", "I can't do that one: {g}.",
                              "{G}, so I can't do that.")).format(g=gap, G=capitalise(gap))]
        if can:
            pieces.append(rng.choice(("I'm {name}, and I can {caps} instead.", "As {name}, I can {caps} instead.",
                                      "What I can do, as {name}: {caps}.", "I'm {name}: I can {caps}, though.",
                                      "I'm {name}, and where I can help is this: I can {caps}."))
                          .format(name=s.name, caps=s.caps_text(can, rng)))
        else:
            pieces.append(f"I'm {s.name}, and that's outside what I do.")
        pieces.append(ALTERNATIVES.get(item["what"], ""))
        return ask, compose(pieces), "decline", {"task": f"decline:{item['what']}"}


ALTERNATIVES = {
    "browsing": "If you paste the text you found here, I can work with it.",
    "images": "I can describe a scene in words, if that helps.",
    "real_time": "A finance site or your bank's app will have the live figure.",
    "actions": "I can draft the message for you to send yourself.",
    "memory": "Save what matters in a note, and paste it in when we pick this up again.",
    "coding": "A coding assistant, or a developer friend, is the better bet for that.",
    "translation": "A dedicated translation tool, or a native speaker, will do it justice.",
    "professional": "A qualified accountant or lawyer is the right person for that one.",
}


def _listed(what: str, caps: str) -> bool:
    words = {"browsing": ("brows", "web", "internet"), "images": ("image", "picture", "draw"),
             "real_time": ("real-time", "live data"), "actions": ("book", "send", "email"),
             "memory": ("remember", "memory"), "coding": ("code", "coding", "program", "debug"),
             "translation": ("translat",), "professional": ("tax", "legal", "law")}[what]
    return any(w in caps for w in words)


def compose(pieces: list[str], sep: str = " ") -> str:
    """Pieces joined by spaces, except around line breaks (lists and code keep their layout)."""
    out = ""
    for p in pieces:
        if not p:
            continue
        if out and not out.endswith("\n") and not p.startswith("\n"):
            out += sep
        elif out.endswith("\n") and p.startswith("\n"):
            p = p[1:]
        out += p
    return out.strip()
