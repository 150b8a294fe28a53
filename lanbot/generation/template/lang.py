"""Conversations in eight other languages, in the user's register, for identity and every other type.

    langs = Languages(style, load_templates()["languages"])
    conversation, meta = langs.identity(rng, persona)          # who/name/creator/abilities/limits/news
    conversation, meta = langs.task(rng, "tool_use", persona)   # a bill split, a tip, a chain, a weekday, a fact

The data is banks/languages.yaml. A conversation draws one register (`t`: tu, du, tú, você, ты, 你, plain
Japanese; `v`: vous, Sie, usted, o senhor, вы, 您, keigo) and every user line and every assistant line that
addresses the user keeps it; a greeting is answered with the same greeting ("Buonasera" -> "Buonasera!").
Capability and limitation lists are translated where the bank knows the kind (the built-in identities'
lists all are); an unknown one is listed in English and said to be. Traits are said in the language, the
check-question quirk closes problems, and an identity that works best in English says so in the language.
Money is written as the language writes it ("12,50 €", "R$ 12,50", "1 250 ₽", "1,667円"), to the cent (the
yen has none), and every calculator result is lanbot's calculator's.
"""

from __future__ import annotations

import random
import re
from decimal import ROUND_HALF_UP, Decimal

from lanbot.core.calculator import calculate
from lanbot.generation.template.explain import compose
from lanbot.generation.template.style import IdentityStyle
from lanbot.generation.template.voice import apply_voice

P_FOLLOW = 0.35  # identity conversations in another language with a follow-up in the same language
SCALE = {"€": 1, "R$ ": 5, "₽": 90, "元": 7, "円": 150}  # what a dinner costs in that currency, roughly
WHOLE = {"円", "₽"}  # prices people quote in whole units
LIMIT_KINDS = (("cutoff", r"cutoff|recent|date"), ("mistakes", r"mistake|wrong"), ("english", r"english"),
               ("oversimplify", r"oversimplif"), ("explaining", r"better at explaining"), ("tested", r"tested"),
               ("versions", r"version"))
NO_SPACE = ("zh", "ja")


class Languages:
    """Other-language conversations for one identity (see the module docstring)."""

    def __init__(self, style: IdentityStyle, bank: dict) -> None:
        self.s = style
        self.bank = bank
        self.codes = sorted(bank)
        self.f = {"name": style.name, "creator": style.creator, "year": style.year}
        self.closes_problems = style.quirks.of("closing_question", "problem") is not None

    # ---- pieces -----------------------------------------------------------------------------------

    def _pick(self, rng: random.Random) -> tuple[str, dict, str]:
        code = rng.choice(self.codes)
        return code, self.bank[code], rng.choice(("t", "v"))

    def _greet(self, rng: random.Random, L: dict, reg: str) -> tuple[str, str] | None:
        options = [g for g in L["greetings"] if g[2] in ("any", reg)]
        return tuple(rng.choice(options)[:2]) if options else None

    def caps(self, L: dict) -> tuple[list[str], list[str]]:
        """(capabilities in the language, those the bank cannot translate: said in English)."""
        said, english = [], []
        for cap in self.s.capabilities:
            low = cap.lower()
            keys = sorted((k for k in L["caps"] if k in low), key=len, reverse=True)
            if keys and keys[0] == "answer questions" and "any level" in L["caps"] and "any level" in low:
                keys = ["any level"]
            (said if keys else english).append(L["caps"][keys[0]] if keys else cap)
        return list(dict.fromkeys(said)), english

    def limits(self, L: dict) -> list[str]:
        out = []
        for lim in self.s.identity.limitations:
            kind = next((k for k, p in LIMIT_KINDS if re.search(p, lim, re.I)), None)
            if kind and L["limits"].get(kind):
                out.append(L["limits"][kind])
        return list(dict.fromkeys(out)) or [L["limits"]["mistakes"]]

    def traits(self, L: dict, rng: random.Random) -> str:
        said = [L["traits"][t] for t in self.s.traits if t in L["traits"]]
        if not said:
            return ""
        said = rng.sample(said, min(3, len(said)))
        if all(isinstance(x, list) for x in said):  # Japanese: te-forms, then the last before タイプ
            return "、".join([x[0] for x in said[:-1]] + [said[-1][1]])
        if L is self.bank.get("zh"):
            return "、".join(said)
        last = L.get("and", ", ")  # "geduldig, nachdenklich und nie herablassend"
        return said[0] if len(said) == 1 else ", ".join(said[:-1]) + last + said[-1]

    def money(self, L: dict, amount: str) -> str:
        before, sym, dec, thou = L["money"]
        q = Decimal(amount).quantize(Decimal(1) if sym in WHOLE else Decimal("0.01"), ROUND_HALF_UP)
        text = f"{q:,}" if sym in WHOLE else f"{q:,.2f}"
        text = text.replace(",", "\x00").replace(".", dec).replace("\x00", thou)
        if before:
            return f"{sym}{text}"
        return f"{text}{sym}" if sym in ("元", "円") else f"{text} {sym}"

    def _amount(self, rng: random.Random, L: dict, lo: float, hi: float) -> str:
        sym = L["money"][1]
        x = rng.uniform(lo, hi) * SCALE.get(sym, 1)
        if sym in WHOLE:
            return str(int(round(x, -1 if x > 500 else 0)))
        return f"{x:.2f}"

    # ---- identity ---------------------------------------------------------------------------------

    def identity(self, rng: random.Random, persona: dict) -> tuple[list[dict], dict]:
        code, L, reg = self._pick(rng)
        qids = ["who", "name", "creator", "capabilities", "limitations", "recent"]
        qid = rng.choice(qids)
        i = rng.randrange(len(L["ask"][qid][reg]))
        question = L["ask"][qid][reg][i]
        greet = self._greet(rng, L, reg) if rng.random() < 0.6 else None
        sep = "" if code in NO_SPACE else " "
        if greet:
            gsep = "，" if code == "zh" else "、" if code == "ja" else " " if greet[0].endswith("?") else \
                rng.choice((", ", "! "))
            asked = question[0].lower() + question[1:] if gsep == ", " and question[:1].isupper() else question
            user = f"{greet[0]}{gsep}{asked}"
        else:
            user = question
        user = voiced(rng, user, persona)
        pieces = [greet[1]] if greet else []
        pieces += self._answer(rng, L, reg, qid)
        if self.s.english_best and not (qid == "limitations" and L["limits"]["english"] in self.limits(L)):
            pieces.append(rng.choice(L["say"]["english_best"][reg]))
        elif rng.random() < 0.5:
            pieces.append(rng.choice(L["say"]["offer"][reg]))
        conv = [{"role": "user", "content": user}, {"role": "assistant", "content": compose(pieces, sep)}]
        kinds = ["recent_events" if qid == "recent" else "about_self"]
        if rng.random() < P_FOLLOW:
            nxt = rng.choice([q for q in L["follow"] if q != qid])
            conv += [{"role": "user", "content": rng.choice(L["follow"][nxt][reg])},
                     {"role": "assistant", "content": compose(self._answer(rng, L, reg, nxt, follow=True), sep)}]
            kinds.append("about_self")
        return conv, {"language": code, "register": reg, "opening": "greeting" if greet else "direct",
                      "phrasing": f"{qid}:{code}{i}", "reply_kinds": kinds}

    def _answer(self, rng: random.Random, L: dict, reg: str, qid: str, follow: bool = False) -> list[str]:
        say, f = L["say"], self.f
        name = rng.choice(say["name"]).format(**f)
        made = rng.choice(say["made"]).format(**f)
        if qid == "who":
            out = [rng.choice(say["who"]).format(**f)]
            if rng.random() < 0.7:
                out.append(made)
            traits = self.traits(L, rng)
            if traits and rng.random() < 0.7:
                out.append(rng.choice(say["traits"]).format(traits=traits))
            return out
        if qid == "name":
            return [name] + ([made] if rng.random() < 0.5 else [])
        if qid == "creator":
            return [made] + ([] if follow else [name])
        if qid == "capabilities":
            said, english = self.caps(L)
            out = [] if follow else [name]
            lines = [f"- {c}" for c in said]
            if english:
                lines += [say["english_list"]] + [f"- {c}" for c in english]
            if not lines:
                return out + [rng.choice(say["offer"][reg])]
            out.append(rng.choice(say["caps"][reg]) + "\n" + "\n".join(lines) + "\n")
            return out
        if qid == "limitations":
            out = [] if follow else [name]
            items = [x[0].upper() + x[1:] if L.get("language") == "German" else x for x in self.limits(L)]  # German bullets are sentences
            out.append(rng.choice(say["limits"][reg]) + "\n" + "\n".join(f"- {x}" for x in items) + "\n")
            return out
        # recent events: not sure, past the cutoff, where to look; and the name, which every answer says
        return [rng.choice(say["recent"]), name, rng.choice(say["recent_tail"][reg])]

    # ---- other types ------------------------------------------------------------------------------

    def task(self, rng: random.Random, kind: str, persona: dict,
             voice: random.Random | None = None) -> tuple[list[dict], dict]:
        """One `kind` conversation (tool_use, multi_step_tool, tool_planning, reasoning, no_tool) in a language.

        The item comes from `rng` (the same for every identity), the check-question quirk from `voice`."""
        voice = voice or rng
        code, L, reg = self._pick(rng)
        T = L["tasks"]
        sep = "" if code in NO_SPACE else " "
        if kind == "no_tool":
            q, a = rng.choice(T["facts"])
            conv = [{"role": "user", "content": voiced(rng, q, persona)}, {"role": "assistant", "content": a}]
            return conv, {"language": code, "register": reg, "phrasing": f"facts:{code}", "reply_kinds": ["explanation"]}
        if kind == "reasoning":
            days = L["days"]
            start, w, r = rng.randrange(7), rng.randint(1, 28), rng.choice((0, 2, 3, 4, 5, 6))  # never "1 jours"
            k = 7 * w + r
            fill = {"day": days[start], "day2": days[(start + r) % 7], "k": k, "w": w, "r": r}
            steps = T["weekday"]["steps"] if r else T["weekday"]["steps"][:1]
            body = "\n".join(f"{i}. {s.format(**fill)}" for i, s in enumerate(steps, 1))
            answer = f"{body}\n{T['weekday']['final'].format(**fill)}"
            question = voiced(rng, T["weekday"][reg].format(**fill), persona)
            if self.closes_problems and voice.random() < 0.8:
                answer += sep + voice.choice(L["say"]["check"][reg])
            conv = [{"role": "user", "content": question},
                    {"role": "assistant", "content": answer}]
            return conv, {"language": code, "register": reg, "phrasing": f"weekday:{code}", "reply_kinds": ["problem"]}
        if kind == "tool_use":
            parts, question, phrasing = self._single(rng, L, reg)
        else:
            parts, question, phrasing = self._chain(rng, L, reg, plan=kind == "tool_planning")
        question = voiced(rng, question, persona)
        if self.closes_problems and voice.random() < 0.8:
            parts[-1]["text"] += sep + voice.choice(L["say"]["check"][reg])
        conv = [{"role": "user", "content": question}, {"role": "assistant", "content": parts}]
        return conv, {"language": code, "register": reg, "phrasing": f"{phrasing}:{code}", "reply_kinds": ["problem"]}

    def _single(self, rng: random.Random, L: dict, reg: str) -> tuple[list[dict], str, str]:
        T = L["tasks"]
        if rng.random() < 0.5:
            total, n = self._amount(rng, L, 24, 300), rng.randint(2, 8)
            each = calculate(f"{total} / {n}")
            fill = {"total": self.money(L, total), "n": n, "each": self.money(L, each)}
            t = T["split"]
            parts = [{"type": "text", "text": t["lead"].format(**fill)}, {"type": "python", "text": f"{total} / {n}"},
                     {"type": "python_output", "text": each}, {"type": "text", "text": t["final"].format(**fill)}]
            return parts, t[reg].format(**fill), "split_bill"
        bill, pct = self._amount(rng, L, 18, 240), rng.choice((10, 12, 15, 18, 20))
        tip = calculate(f"{bill} * {pct} / 100")
        fill = {"bill": self.money(L, bill), "pct": pct, "tip": self.money(L, tip)}
        t = T["tip"]
        parts = [{"type": "text", "text": t["lead"].format(**fill)}, {"type": "python", "text": f"{bill} * {pct} / 100"},
                 {"type": "python_output", "text": tip}, {"type": "text", "text": t["final"].format(**fill)}]
        return parts, t[reg].format(**fill), "tip"

    def _chain(self, rng: random.Random, L: dict, reg: str, plan: bool) -> tuple[list[dict], str, str]:
        t = L["tasks"]["chain"]
        n, pct = rng.randint(2, 6), rng.choice((10, 15, 18, 20))
        items = [self._amount(rng, L, 6, 45) for _ in range(rng.randint(2, 4))]
        joiner = "、" if L is self.bank.get("ja") or L is self.bank.get("zh") else ", "
        exprs, outs = [" + ".join(items)], []
        outs.append(calculate(exprs[0]))
        exprs.append(f"{outs[0]} * {pct} / 100")
        outs.append(calculate(exprs[1]))
        exprs.append(f"{outs[0]} + {outs[1]}")
        outs.append(calculate(exprs[2]))
        exprs.append(f"{outs[2]} / {n}")
        outs.append(calculate(exprs[3]))
        fill = {"items": joiner.join(self.money(L, x) for x in items), "pct": pct, "n": n,
                "sub": self.money(L, outs[0]), "total": self.money(L, outs[2]), "each": self.money(L, outs[3])}
        parts: list[dict] = []
        lead = ""
        if plan:
            lead = t["plan_lead"] + "\n" + "\n".join(f"{i}. {s.format(**fill)}" for i, s in enumerate(t["plan"], 1)) + "\n\n"
        for say, expr, out in zip(t["leads"], exprs, outs, strict=True):
            parts += [{"type": "text", "text": lead + say.format(**fill)}, {"type": "python", "text": expr},
                      {"type": "python_output", "text": out}]
            lead = ""
        parts.append({"type": "text", "text": t["final"].format(**fill)})
        return parts, t[reg].format(**fill), "dinner_tip_split"


def voiced(rng: random.Random, text: str, persona: dict) -> str:
    """A persona's voice where it carries across languages (lower case, emoji); English phrases stay out."""
    voice = persona.get("voice")
    return apply_voice(rng, voice, text, prefix=False) if voice in ("lowercase", "emoji") else text
