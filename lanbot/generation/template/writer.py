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
from collections.abc import Callable
from functools import lru_cache, partial

import yaml

from lanbot.core.conversation import TYPES
from lanbot.core.identity import ModelIdentity
from lanbot.generation.banks import BANKS_DIR
from lanbot.generation.personas.builtin import read_builtin
from lanbot.generation.template.chains import CHAINS
from lanbot.generation.template.identity import IdentityWriter
from lanbot.generation.template.problems import SINGLE, Chain
from lanbot.generation.template.reasoning import REASONING, WEIGHTS
from lanbot.generation.template.style import IdentityStyle
from lanbot.generation.template.voice import OPENING_WEIGHTS, OPENINGS, apply_voice, user_message

TEMPLATES = BANKS_DIR
P_TOPIC = 0.5          # how often a persona's topics pick the word problem
P_SECOND_PROBLEM = 0.12  # tool_use conversations with a second, unrelated question
P_FOLLOW_UP = 0.3        # ... with a follow-up that builds on the first result (where the problem has one)
TOOL_INTROS = ("", "", "Sure.", "Let me calculate that.", "I'll use the calculator for this.", "Happy to help.",
               "Let's work it out.", "On it.")
CHAIN_INTROS = ("Let's take this step by step.", "This needs a few calculations; I'll do them in order.",
                "I'll break this into steps and use the calculator for each.", "A few steps here.", "")
PLAN_INTROS = ("Here's my plan:", "Plan first, then the numbers:", "I'll do this in steps:", "My approach:",
               "Let me lay out the steps before calculating:")
REASON_INTROS = ("Let's work through it step by step.", "Step by step:", "Let me reason it out.",
                 "I'll go carefully, one step at a time.", "No calculator needed; let's think it through.")
FOLLOW_UP_ASKS = ("Another one:", "Next question:", "Thanks! Now:", "ok and", "Also,", "One more:")
NO_TOOL_WEIGHTS = {"facts": 24, "definitions": 24, "advice": 14, "creative": 12, "chat": 8, "arithmetic": 18}


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
        self.identity_writer = IdentityWriter(self.style, data["identity_questions"], data["languages"])
        self._single = {}
        self._chains = {}
        for p in self.personas:  # which problems suit each persona's topics, computed once
            topics = set(p.get("topics") or ())
            self._single[p["id"]] = [g for g, t in SINGLE.items() if topics & set(t)]
            self._chains[p["id"]] = [g for g, t in CHAINS.items() if topics & set(t)]
        self._nt_kinds = list(NO_TOOL_WEIGHTS)
        self._nt_weights = list(NO_TOOL_WEIGHTS.values())
        self._write = {"identity": self._identity, "tool_use": self._tool_use, "multi_step_tool": self._multi_step,
                       "no_tool": self._no_tool, "tool_planning": self._tool_planning, "reasoning": self._reasoning}
        self._write.update({kind: partial(write, self) for kind, write in EXTRA_WRITERS.items()})

    def write(self, kind: str, index: int) -> tuple[list[dict], dict]:
        """Conversation number `index` of `kind`, and its meta (persona, language, opening, phrasing, turns)."""
        if kind not in self._write:
            raise ValueError(f"unknown conversation type {kind!r}; the types are {', '.join(TYPES)}")
        rng = random.Random(f"{self.seed}:{kind}:{index}")
        persona = self.personas[rng.randrange(len(self.personas))]
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
        conv = [{"role": "user", "content": user}, {"role": "assistant", "content": self._solve(rng, chain, "single")}]
        roll = rng.random()
        if chain.follow is not None and roll < P_FOLLOW_UP:  # the next question builds on this answer's result
            ask = apply_voice(rng, persona.get("voice") or "plain", chain.follow.question, False)
            conv += [{"role": "user", "content": ask},
                     {"role": "assistant", "content": self._solve(rng, chain.follow, "single")}]
        elif roll > 1 - P_SECOND_PROBLEM:
            _, second = self._problem(rng, persona, chains=False)
            ask = apply_voice(rng, persona.get("voice") or "plain", f"{rng.choice(FOLLOW_UP_ASKS)} {second.question}", False)
            conv += [{"role": "user", "content": ask}, {"role": "assistant", "content": self._solve(rng, second, "single")}]
        return conv, {"opening": opening, "phrasing": topic}

    def _multi_step(self, rng: random.Random, persona: dict) -> tuple[list[dict], dict]:
        topic, chain = self._problem(rng, persona, chains=True)
        user, opening = self._ask(rng, persona, chain.question)
        return ([{"role": "user", "content": user}, {"role": "assistant", "content": self._solve(rng, chain, "chain")}],
                {"opening": opening, "phrasing": topic})

    def _tool_planning(self, rng: random.Random, persona: dict) -> tuple[list[dict], dict]:
        topic, chain = self._problem(rng, persona, chains=rng.random() < 0.85)
        user, opening = self._ask(rng, persona, chain.question)
        return ([{"role": "user", "content": user}, {"role": "assistant", "content": self._solve(rng, chain, "plan")}],
                {"opening": opening, "phrasing": topic})

    def _solve(self, rng: random.Random, chain: Chain, mode: str) -> list[dict]:
        """The assistant's parts: text before each call, the call and its output, the final answer."""
        parts: list[dict] = []
        lead = ""
        if mode == "plan":
            steps = [c.plan[0].upper() + c.plan[1:] for c in chain.calls]
            if len(steps) == 1:
                steps.append("State the result clearly")
            lead = rng.choice(PLAN_INTROS) + "\n" + "\n".join(f"{i}. {s}." for i, s in enumerate(steps, 1)) + "\n\n"
        else:
            lead = rng.choice(TOOL_INTROS if mode == "single" else CHAIN_INTROS)
            if self.style.brief and rng.random() < 0.6:  # a concise or direct personality skips the preamble
                lead = ""
        for i, call in enumerate(chain.calls, 1):
            say = f"Step {i}: {call.lead}" if mode == "plan" and len(chain.calls) > 1 else call.lead
            parts.append({"type": "text", "text": (lead + say if lead.endswith("\n") else f"{lead} {say}") if lead else say})
            parts.append({"type": "python", "text": call.expr})
            parts.append({"type": "python_output", "text": call.out})
            lead = ""
        tail = self.style.check_question(rng, 0.3) or rng.choice(("", "", "Anything else you'd like to work out?"))
        parts.append({"type": "text", "text": f"{chain.final} {tail}".strip()})
        return parts

    # ---- no tool ------------------------------------------------------------------------------------

    def _no_tool(self, rng: random.Random, persona: dict) -> tuple[list[dict], dict]:
        category = rng.choices(self._nt_kinds, self._nt_weights)[0]
        question, answer = getattr(self, f"_nt_{category}")(rng)
        user, opening = self._ask(rng, persona, question)
        return [{"role": "user", "content": user}, {"role": "assistant", "content": answer}], {
            "opening": opening, "phrasing": category}

    def _nt_facts(self, rng: random.Random) -> tuple[str, str]:
        item = rng.choice(self.no_tool["facts"])
        head = rng.choice(("", "", "Sure!", "Good one.", "Quick answer:", "Here's the answer:", "Happy to help."))
        tail = rng.choice(("", "", "Want to know more about it?", "Anything else you're curious about?",
                           "Hope that helps!", "Let me know if you'd like more detail."))
        return rng.choice(item["q"]), " ".join(p for p in (head, item["a"], tail) if p)

    def _nt_definitions(self, rng: random.Random) -> tuple[str, str]:
        item, s = rng.choice(self.no_tool["definitions"]), self.style
        term = item["term"]
        bare = term.split(" ", 1)[1] if term.startswith(("a ", "an ", "the ")) else term
        question = rng.choice((f"What is {term}?", f"What does {bare} mean?", f"Define {bare}.",
                               f"Can you explain {bare} simply?", f"Explain {bare} like I'm new to it."))
        head = s.opener_for(rng) or rng.choice(("", "", "In short:", "Simply put:", "Here's the idea.", "Sure."))
        pieces = [head, item["a"]]
        if "cooking" in s.analogy_domains or "gardening" in s.analogy_domains:
            pieces.append(item.get("kitchen") or item.get("analogy", ""))
        elif s.analogy_domains and rng.random() < 0.8:
            pieces.append(item.get("analogy", ""))
        if s.code_examples and item.get("code"):
            pieces.append(f"\n```python\n{item['code']}\n```\n")
            if s.suggests_tests:
                pieces.append(f"A quick test to go with it: `{item['test']}`.")
        pieces.append(s.check_question(rng) or rng.choice(("", "", "Want an example?", "Hope that helps!")))
        return question, " ".join(p for p in pieces if p).replace(" \n", "\n").replace("\n ", "\n")

    def _nt_advice(self, rng: random.Random) -> tuple[str, str]:
        item = rng.choice(self.no_tool["advice"])
        tips = rng.sample(item["tips"], 3)
        lead = rng.choice(("A few things that help:", "Here's what tends to work:", "Some practical tips:",
                           "Three suggestions:"))
        body = "\n".join(f"{i}. {t}" for i, t in enumerate(tips, 1)) if rng.random() < 0.5 else \
            "\n".join(f"- {t}" for t in tips)
        tail = self.style.check_question(rng, 0.5) or rng.choice(("", "Start with one and build from there.",
                                                                  "Small steps add up."))
        return rng.choice(item["q"]), " ".join(p for p in (self.style.opener_for(rng, 0.5), lead) if p) + \
            f"\n{body}" + (f"\n{tail}" if tail else "")

    def _nt_creative(self, rng: random.Random) -> tuple[str, str]:
        item = rng.choice(self.no_tool["creative"])
        subject = item["subject"]
        question = rng.choice((f"Write a haiku about {subject}.", f"Can you write a short poem about {subject}?",
                               f"Give me a few lines of poetry about {subject}.", f"Poem about {subject}, please."))
        lead = rng.choice(("Here's one:", "Sure, here you go:", "Here's a short one:", "How about this:"))
        return question, f"{lead}\n\n{rng.choice(item['pieces'])}"

    def _nt_chat(self, rng: random.Random) -> tuple[str, str]:
        item = rng.choice(self.no_tool["chat"])
        return rng.choice(item["q"]), rng.choice(item["a"])

    def _nt_arithmetic(self, rng: random.Random) -> tuple[str, str]:
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
        return question, answer

    # ---- reasoning ----------------------------------------------------------------------------------

    def _reasoning(self, rng: random.Random, persona: dict) -> tuple[list[dict], dict]:
        gen = rng.choices(REASONING, WEIGHTS)[0]
        question, steps, final = gen(rng, self.vocab)
        user, opening = self._ask(rng, persona, question)
        s = self.style
        intro = " ".join(p for p in (s.opener_for(rng), rng.choice(REASON_INTROS)) if p)
        numbered = rng.random() < 0.5
        body = "\n".join(f"{i}. {x}" if numbered else x for i, x in enumerate(steps, 1))
        close = s.check_question(rng, 0.5)
        lead = rng.choice(("So ", "That means ", "Answer: ", "So, "))
        if lead != "Answer: " and final.split(" ", 1)[0] in ("The", "It", "There", "That"):
            final = final[0].lower() + final[1:]
        answer = f"{intro}\n{body}\n{lead}{final}" + (f" {close}" if close else "")
        return [{"role": "user", "content": user}, {"role": "assistant", "content": answer}], {
            "opening": opening, "phrasing": gen.__name__}
