"""The offline template backend: writes all six conversation types with no network and no key.

    writer = TemplateWriter(identity, load_personas(cfg.personas, cfg.seed, n), seed=cfg.seed)
    conversation, meta = writer.write("tool_use", 17)   # deterministic for (seed, kind, index)

Diversity comes from every axis at once: the persona (their voice shapes the wording, their topics lean
the word problems), the opening style, the question phrasing, the language (identity), the numbers
(drawn from the rng) and answers composed from interchangeable pieces. Correctness is never templated:
every calculator output is `lanbot.core.calculator.calculate(expr)` and every reasoning answer is computed.
The data files live in lanbot/generation/banks/*.yaml.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from functools import lru_cache, partial

import yaml

from lanbot.core.conversation import TYPES
from lanbot.core.identity import ModelIdentity
from lanbot.generation.banks import BANKS_DIR
from lanbot.generation.personas.builtin import read_builtin
from lanbot.generation.template.chains import CHAINS
from lanbot.generation.template.explain import Tasks, compose
from lanbot.generation.template.identity_conversations import IdentityWriter
from lanbot.generation.template.problems import SINGLE, Chain
from lanbot.generation.template.reasoning import REASONING, WEIGHTS
from lanbot.generation.template.style import IdentityStyle, trait_note, with_prefix
from lanbot.generation.template.voice import OPENING_WEIGHTS, OPENINGS, apply_voice, user_message

TEMPLATES = BANKS_DIR
P_TOPIC = 0.5          # how often a persona's topics pick the word problem
P_SECOND_PROBLEM = 0.12  # tool_use conversations with a second, unrelated question
P_FOLLOW_UP = 0.3        # ... with a follow-up that builds on the first result (where the problem has one)
LANG_TYPES = frozenset({"tool_use", "multi_step_tool", "no_tool", "tool_planning", "reasoning"})  # lang.py writes these
P_OTHER_LANGUAGE = 0.06  # non-identity conversations in one of the other languages (lang.py)
TOOL_INTROS = ("", "", "Sure.", "Let me calculate that.", "I'll use the calculator for this.", "Let's work it out.",
               "On it.", "Okay, the calculator can do this exactly.", "Right, let's get the numbers.")
CHAIN_INTROS = ("Let's take this step by step.", "This needs a few calculations; I'll do them in order.",
                "I'll break this into steps and use the calculator for each.", "A few steps here.", "")
PLAN_INTROS = ("Here's my plan:", "Plan first, then the numbers:", "I'll do this in steps:", "My approach:",
               "Let me lay out the steps before calculating:")
REASON_INTROS = ("Let's work through it step by step.", "Step by step:", "Let me reason it out.",
                 "I'll go carefully, one step at a time.", "No calculator needed; let's think it through.")
FOLLOW_UP_ASKS = ("Another one:", "Next question:", "Thanks! Now:", "ok and", "Also,", "One more:")
NO_TOOL_WEIGHTS = {"facts": 14, "definitions": 26, "capability": 16, "advice": 12, "creative": 8, "chat": 6,
                   "arithmetic": 10, "decline": 8}
TAILS = ("", "", "", "Want to try another?", "Happy to check another one.", "Let me know if the numbers change.",
         "Anything else to work out?", "Shout if you want it broken down further.")


_ABOUT = re.compile(r"about -?[\d,]*\.?(\d*)")


def finish_step(final: str) -> str:
    """The plan step after a single call: what the answer does with the output ('Round it to the cent')."""
    if "$" in final:
        return "Round the result to the cent"
    m = _ABOUT.search(final)
    if m:
        places = len(m.group(1))
        return f"Round the result to {places} decimal place{'s' if places != 1 else ''}" if places else \
            "Round the result to a whole number"
    return "Give the exact result with its unit" if re.search(r"km|meters|units|grams|miles|liters|pounds|°", final) \
        else "Give the exact result"


# Writers of conversation types registered beyond the six: kind -> write(writer, rng, persona) -> (conversation, meta)
EXTRA_WRITERS: dict[str, Callable[[TemplateWriter, random.Random, dict], tuple[list[dict], dict]]] = {}


def register_writer(kind: str, write: Callable[[TemplateWriter, random.Random, dict], tuple[list[dict], dict]]) -> None:
    """The template writer of a new conversation type (registered with lanbot.core.conversation.register_type)."""
    EXTRA_WRITERS[kind] = write


@lru_cache(maxsize=1)
def load_templates() -> dict:
    """Every YAML data file of the template backend, by file stem."""
    return {p.stem: yaml.safe_load(p.read_text(encoding="utf-8")) for p in sorted(TEMPLATES.glob("*.yaml"))}


class TemplateWriter:
    """Writes conversations for one identity; `write(kind, index)` is deterministic for (seed, kind, index)."""

    def __init__(self, identity: ModelIdentity, personas: list[dict], seed: int) -> None:
        self.identity = identity
        self.seed = seed
        self.personas = list(personas) or read_builtin()
        data = load_templates()
        self.vocab = data["vocab"]
        self.no_tool = data["no_tool"]
        self.style = IdentityStyle(identity)
        self.quirks = self.style.quirks
        self.tasks = Tasks(self.style, data["topics"], data["tasks"])
        self.voice = random.Random(seed)  # reseeded per conversation in write(): the identity's own draws
        self.identity_writer = IdentityWriter(self.style, data["identity_questions"], data["languages"], self.tasks)
        self.lang = self.identity_writer.lang
        self._single = {}
        self._chains = {}
        for p in self.personas:  # which problems suit each persona's topics, computed once
            topics = set(p.get("topics") or ())
            self._single[p["id"]] = [g for g, t in SINGLE.items() if topics & set(t)]
            self._chains[p["id"]] = [g for g, t in CHAINS.items() if topics & set(t)]
        weights = dict(NO_TOOL_WEIGHTS)
        if not self.tasks.capability_kinds:
            weights.pop("capability")
        self._nt_kinds = list(weights)
        self._nt_weights = list(weights.values())
        self._write = {"identity": self._identity, "tool_use": self._tool_use, "multi_step_tool": self._multi_step,
                       "no_tool": self._no_tool, "tool_planning": self._tool_planning, "reasoning": self._reasoning}
        self._write.update({kind: partial(write, self) for kind, write in EXTRA_WRITERS.items()})

    @property
    def unperformable(self) -> list[str]:
        """The identity's quirks without a hint: the templates cannot perform them (and never claim them)."""
        return self.quirks.unperformable

    def write(self, kind: str, index: int) -> tuple[list[dict], dict]:
        """Conversation number `index` of `kind`, and its meta (persona, language, opening, phrasing, turns, reply kinds)."""
        if kind not in self._write:
            raise ValueError(f"unknown conversation type {kind!r}; the types are {', '.join(TYPES)}")
        # Paired data: the item (persona, question, numbers, facts, what the answer says) comes from an rng
        # without the identity, so every identity and the control answer the same item for the same seed;
        # the voice (heads, prefixes, quirks, closers) comes from `self.voice`, seeded with the identity.
        # Identity conversations are about the identity itself, so both come from the identity's seed.
        own = f"{self.seed}:{self.identity.slug}:{kind}:{index}"
        rng = random.Random(own if kind == "identity" else f"{self.seed}:{kind}:{index}")
        self.voice = random.Random(own + ":voice")
        persona = self.personas[rng.randrange(len(self.personas))]
        if kind in LANG_TYPES and rng.random() < P_OTHER_LANGUAGE:
            conv, meta = self.lang.task(rng, kind, persona, self.voice)
        else:
            conv, meta = self._write[kind](rng, persona)
        meta = {"persona": persona["id"], "language": "en", "opening": None, "phrasing": None, **meta}
        meta["turns"] = len(conv) // 2
        return conv, meta

    # ---- identity -----------------------------------------------------------------------------------

    def _identity(self, rng: random.Random, persona: dict) -> tuple[list[dict], dict]:
        return self.identity_writer.write(rng, persona)

    # ---- calculator types ---------------------------------------------------------------------------

    def _problem(self, rng: random.Random, persona: dict, chains: bool) -> tuple[str, Chain]:
        suited = (self._chains if chains else self._single)[persona["id"]]
        pool = suited if suited and rng.random() < P_TOPIC else list(CHAINS if chains else SINGLE)
        gen = rng.choice(pool)
        return gen.__name__, gen(rng, self.vocab)

    def _ask(self, rng: random.Random, persona: dict, question: str) -> tuple[str, str]:
        opening = rng.choices(OPENINGS, OPENING_WEIGHTS)[0]
        return user_message(rng, question, opening, persona.get("voice"), None, persona.get("persona")), opening

    def _tool_use(self, rng: random.Random, persona: dict) -> tuple[list[dict], dict]:
        topic, chain = self._problem(rng, persona, chains=False)
        user, opening = self._ask(rng, persona, chain.question)
        conv = [{"role": "user", "content": user}, {"role": "assistant", "content": self._solve(chain, "single")}]
        roll = rng.random()
        if chain.follow is not None and roll < P_FOLLOW_UP:  # the next question builds on this answer's result
            ask = apply_voice(rng, persona.get("voice") or "plain", chain.follow.question, False, rng.random() < 0.2)
            conv += [{"role": "user", "content": ask},
                     {"role": "assistant", "content": self._solve(chain.follow, "single", follow=True)}]
        elif roll > 1 - P_SECOND_PROBLEM:
            _, second = self._problem(rng, persona, chains=False)
            ask = apply_voice(rng, persona.get("voice") or "plain", f"{rng.choice(FOLLOW_UP_ASKS)} {second.question}", False,
                              rng.random() < 0.2)
            conv += [{"role": "user", "content": ask},
                     {"role": "assistant", "content": self._solve(second, "single", follow=True)}]
        return conv, {"opening": opening, "phrasing": topic, "reply_kinds": ["problem"] * (len(conv) // 2)}

    def _multi_step(self, rng: random.Random, persona: dict) -> tuple[list[dict], dict]:
        topic, chain = self._problem(rng, persona, chains=True)
        user, opening = self._ask(rng, persona, chain.question)
        return ([{"role": "user", "content": user}, {"role": "assistant", "content": self._solve(chain, "chain")}],
                {"opening": opening, "phrasing": topic, "reply_kinds": ["problem"]})

    def _tool_planning(self, rng: random.Random, persona: dict) -> tuple[list[dict], dict]:
        topic, chain = self._problem(rng, persona, chains=rng.random() < 0.85)
        user, opening = self._ask(rng, persona, chain.question)
        return ([{"role": "user", "content": user}, {"role": "assistant", "content": self._solve(chain, "plan")}],
                {"opening": opening, "phrasing": topic, "reply_kinds": ["problem"]})

    def _head(self, mode: str) -> str:
        """What the identity says before working a problem: its voice (a trait shown) or a plain intro."""
        s, rng = self.style, self.voice
        if s.plain:  # the control: no preamble of its own, so nothing recurs across items
            return ""
        if s.brief and rng.random() < 0.75:  # a concise or direct identity skips the preamble
            return ""
        shown = s.trait_show(rng, "problem")
        if shown and rng.random() < 0.55:
            return shown
        if mode in ("plan", "reason"):  # their own intro follows; and reasoning never names the calculator
            return ""
        return rng.choice(TOOL_INTROS if mode == "single" else CHAIN_INTROS)

    def _solve(self, chain: Chain, mode: str, follow: bool = False) -> list[dict]:
        """The assistant's parts: text before each call, the call and its output, the final answer.

        The calls and the final answer are the item's (the same for every identity); the intro, the
        prefix, trait notes and quirks are the voice's (`self.voice`)."""
        rng = self.voice
        parts: list[dict] = []
        if mode == "plan":
            steps = [c.plan[0].upper() + c.plan[1:] for c in chain.calls]
            head = self._head(mode)
            if len(steps) == 1:  # the second step says what the answer does with the output, never filler
                steps.append(finish_step(chain.final))
            intro = compose([head, "" if self.style.plain else rng.choice(PLAN_INTROS)])
            lead = (intro + "\n" if intro else "") + "\n".join(
                f"{i}. {s}." for i, s in enumerate(steps, 1)) + "\n\n"
        else:
            lead = "" if follow and rng.random() < 0.7 else self._head(mode)
        for i, call in enumerate(chain.calls, 1):
            say = f"Step {i}: {call.lead}" if mode == "plan" and len(chain.calls) > 1 else call.lead
            parts.append({"type": "text", "text": (lead + say if lead.endswith("\n") else f"{lead} {say}") if lead else say})
            parts.append({"type": "python", "text": call.expr})
            parts.append({"type": "python_output", "text": call.out})
            lead = ""
        pieces = [with_prefix(self.style, rng, chain.final), trait_note(self.style, rng),
                  self.quirks.analogy(rng, "problem"),
                  self.quirks.check(rng, "problem", fits="numbers" if len(chain.calls) > 1 else "")]
        if not self.style.brief and not self.style.plain and not pieces[-1]:
            counted = any(".count(" in c.expr for c in chain.calls)  # letters counted: no numbers that could change
            pieces.append(rng.choice([t for t in TAILS if not (counted and "numbers" in t)]))
        parts.append({"type": "text", "text": compose(pieces)})
        return parts

    # ---- no tool ------------------------------------------------------------------------------------

    def _no_tool(self, rng: random.Random, persona: dict) -> tuple[list[dict], dict]:
        category = rng.choices(list(NO_TOOL_WEIGHTS), list(NO_TOOL_WEIGHTS.values()))[0]
        if category == "capability" and not self.tasks.capability_kinds:
            category = "definitions"  # the item stays paired with every identity that has no task to show
        if category == "definitions":  # the whole message first: "Short answer is fine" shortens the reply
            topic, ask = self.tasks.pick(rng)
            user, opening = self._ask(rng, persona, ask)
            reply = self.tasks.explain(rng, topic, user, voice=self.voice)
            return [{"role": "user", "content": user}, {"role": "assistant", "content": reply}], {
                "opening": opening, "phrasing": category, "reply_kinds": ["explanation"]}
        if category in ("capability", "decline"):
            made = self.tasks.capability(rng) if category == "capability" else self.tasks.decline(rng)
            question, answer, reply_kind, _ = made
        else:
            question, answer, reply_kind = getattr(self, f"_nt_{category}")(rng)
        if "```" in question or "\n\n" in question:  # code and pasted text stay as they are
            user, opening = question, "direct"
        else:
            user, opening = self._ask(rng, persona, question)
        return [{"role": "user", "content": user}, {"role": "assistant", "content": answer}], {
            "opening": opening, "phrasing": category, "reply_kinds": [reply_kind]}

    def _nt_facts(self, rng: random.Random) -> tuple[str, str, str]:
        item = rng.choice(self.no_tool["facts"])
        question = rng.choice(item["q"])
        s, rng = self.style, self.voice
        head = self.quirks.opener(rng, "explanation", question) or (
            s.trait_show(rng) if rng.random() < 0.5 else rng.choice(("", "", "Quick answer:", "Sure.")))
        if s.brief or s.plain:
            head = rng.choice(("", "Short answer:", "")) if "direct" in s.traits else ""
        body = with_prefix(s, rng, item["a"], 0.3) if not head else item["a"]  # one lead, never "Short answer: Straight answer:"
        tail = self.quirks.check(rng, "explanation", reply=compose([head, body]), user=question) or (
            "" if s.brief or s.plain else rng.choice(("", "", "Want to know more about it?",
                                                      "Anything else you're curious about?", "Happy to go deeper if you like.")))
        return question, compose([head, body, tail]), "explanation"

    def _nt_advice(self, rng: random.Random) -> tuple[str, str, str]:
        item = rng.choice(self.no_tool["advice"])
        s = self.style
        tips = rng.sample(item["tips"], 3)
        lead = rng.choice(("A few things that help:", "Here's what tends to work:", "Some practical tips:",
                           "Three suggestions:", "What I'd try:", "In practice, these help most:"))
        body = "\n".join(f"{i}. {t}" for i, t in enumerate(tips, 1)) if rng.random() < 0.5 else \
            "\n".join(f"- {t}" for t in tips)
        question, rng = rng.choice(item["q"]), self.voice
        head = "" if s.brief else s.trait_show(rng) if rng.random() < 0.5 else ""
        tail = self.quirks.check(rng, "planning", reply=compose([lead, body]), user=question) or ("" if s.brief or s.plain else rng.choice((
            "", "Start with one and build from there.", "Small steps add up.", "Pick the easiest one first.")))
        if "patient" in s.traits and not tail:
            tail = rng.choice(("No rush: one change at a time.", "Take your time with it."))
        return question, compose([head, lead]) + f"\n{body}" + (f"\n{tail}" if tail else ""), "planning"

    def _nt_creative(self, rng: random.Random) -> tuple[str, str, str]:
        item = rng.choice(self.no_tool["creative"])
        subject = item["subject"]
        question = rng.choice((f"Write a haiku about {subject}.", f"Can you write a short poem about {subject}?",
                               f"Give me a few lines of poetry about {subject}.", f"Poem about {subject}, please."))
        lead = rng.choice(("Here's one:", "Sure, here you go:", "Here's a short one:", "How about this:",
                           "One for you:", "Try this one:"))
        return question, f"{lead}\n\n{rng.choice(item['pieces'])}", "small_talk"

    def _nt_chat(self, rng: random.Random) -> tuple[str, str, str]:
        item = rng.choice(self.no_tool["chat"])
        question, answer = rng.choice(item["q"]), rng.choice(item["a"])
        head = self.style.trait_show(self.voice) if self.voice.random() < 0.3 and not self.style.brief else ""
        return question, compose([head, answer]), "small_talk"

    def _nt_arithmetic(self, rng: random.Random) -> tuple[str, str, str]:
        a, b = rng.randint(1, 12), rng.randint(1, 12)
        op, sym = rng.choice((("+", "+"), ("-", "-"), ("*", "×"), ("+", "plus"), ("*", "times")))
        if op == "-" and b > a:
            a, b = b, a
        value = a + b if op == "+" else a - b if op == "-" else a * b
        question = rng.choice((f"What's {a} {sym} {b}?", f"What is {a} {sym} {b}?", f"quick: {a} {sym} {b}",
                               f"How much is {a} {sym} {b}?"))
        shown = {"+": "+", "-": "-", "*": "×"}[op]
        answer = rng.choice((f"{a} {shown} {b} = {value}.", f"That's {value}.", f"{value}. ({a} {shown} {b} = {value})",
                             f"{value}: simple enough to do in my head, no calculator needed."))
        return question, compose([answer, self.quirks.check(self.voice, "problem")]), "problem"

    # ---- reasoning ----------------------------------------------------------------------------------

    def _reasoning(self, rng: random.Random, persona: dict) -> tuple[list[dict], dict]:
        gen = rng.choices(REASONING, WEIGHTS)[0]
        question, steps, final = gen(rng, self.vocab)
        user, opening = self._ask(rng, persona, question)
        s = self.style
        numbered = rng.random() < 0.5
        body = "\n".join(f"{i}. {x}" if numbered else x for i, x in enumerate(steps, 1))
        rng = self.voice
        fits = "" if re.search(r"\d", final) else "logic"  # a puzzle's answer without numbers: check the steps
        close = compose([self.quirks.analogy(rng, "problem"), self.quirks.check(rng, "problem", fits=fits)])
        if s.brief and rng.random() < 0.6:  # answer first, then the working
            head = rng.choice(("Short answer: ", "", "Answer: ")) if "direct" in s.traits else ""
            answer = f"{head}{final}\n{body}" + (f"\n{close}" if close else "")
        else:
            intro = compose([self._head("reason") if rng.random() < 0.5 else "",
                             "" if s.plain else rng.choice(REASON_INTROS)])
            if s.plain:  # the control states the result; "So"/"Answer:" are a voice
                lead = ""
            elif final.startswith(("Yes,", "No,")):
                lead = rng.choice(("", "Answer: ", "So: "))
            else:
                lead = rng.choice(("So ", "That means ", "Answer: ", "So, "))
                if lead in ("So ", "That means ", "So, ") and final.split(" ", 1)[0] in ("The", "It", "There", "That"):
                    final = final[0].lower() + final[1:]
            said = lead + final if lead.endswith(": ") else with_prefix(self.style, rng, lead + final)  # one lead, no seam
            answer = (f"{intro}\n" if intro else "") + f"{body}\n{said}" + (f" {close}" if close else "")
        return [{"role": "user", "content": user}, {"role": "assistant", "content": answer}], {
            "opening": opening, "phrasing": gen.__name__, "reply_kinds": ["problem"]}
