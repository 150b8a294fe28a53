"""Issue 11's gates on generated data: the data performs the identity instead of reciting it.

Each identity's conversations are generated in-process (500 identity conversations, 150 of every other
type, a few hundred milliseconds) and measured with lanbot.generation.quality, the module stats.json and
the LLM backend use. The bars are the issue's; a test fails if a rate regressed below one.
"""

from __future__ import annotations

import ast
import re
import sys
from functools import cache
from pathlib import Path

import pytest

from lanbot.core.config import compose_config
from lanbot.core.conversation import TOOL_TYPES, TYPES, text_of, validate
from lanbot.core.identity import ModelIdentity, QuirkHint, to_identity
from lanbot.generation.personas import read_builtin
from lanbot.generation.quality import QualityStats, check_conversation, performed, verbatim_run
from lanbot.generation.template.backend import write_with_templates
from lanbot.generation.template.style import CAP_SAID, TASKS
from lanbot.generation.template.writer import TemplateWriter

SEED = 11  # not the default 42: the bars must hold for any seed, not one tuned run
HAIKU = "ends every answer with a haiku"
CUSTOM = ModelIdentity(  # a new identity needs no code; its first quirk has no hint, so templates cannot perform it
    name="Quill", creator="Tiny Poems Ltd", year=2031, description="a friendly helper for writers",
    personality="friendly, precise, and thoughtful",
    quirks=[HAIKU, "uses simple analogies to explain complex topics"],
    capabilities=["answer questions", "translate short texts", "summarize documents"],
    limitations=["knowledge has a cutoff date", "can make mistakes"],
    quirk_hints=[QuirkHint(quirk="uses simple analogies to explain complex topics", kind="analogy", domains=["everyday"])],
)
IDENTITIES = ("lanbot", "sage", "dev", "custom")
ALL = IDENTITIES + ("assistant",)  # with the plain control


@cache
def identity(name: str) -> ModelIdentity:
    return CUSTOM if name == "custom" else to_identity(compose_config([f"identity={name}"]).identity)


@cache
def data(name: str) -> dict[str, list[tuple[list[dict], dict]]]:
    writer = TemplateWriter(identity(name), read_builtin(), SEED)
    return {kind: [writer.write(kind, i) for i in range(500 if kind == "identity" else 150)] for kind in TYPES}


@cache
def gates(name: str) -> dict:
    stats = QualityStats(identity(name))
    for kind, convs in data(name).items():
        for conv, meta in convs:
            stats.add(kind, conv, meta)
    return stats.figures()


def replies(name: str, kind: str, reply_kind: str | None = None, english: bool = True) -> list[tuple[str, str]]:
    """(user turn, reply) pairs of `kind` conversations, optionally of one reply kind and English only."""
    out = []
    for conv, meta in data(name)[kind]:
        if english and meta["language"] != "en":
            continue
        for u, r, k in zip(conv[0::2], conv[1::2], meta["reply_kinds"], strict=True):
            if reply_kind is None or k == reply_kind:
                out.append((text_of(u["content"]), text_of(r["content"])))
    return out


# ---- 1, 5: built from meaning, and really varied --------------------------------------------------

@pytest.mark.parametrize("name", IDENTITIES)
def test_identity_answers_paraphrase_instead_of_reciting_and_vary(name):
    g = gates(name)
    assert g["verbatim_recitation_share"] <= 0.05, g["verbatim_recitation_share"]
    assert g["top_sentence_share"] <= 0.03, (g["top_sentence"], g["top_sentence_share"])
    assert g["distinct_masked_sentences"] >= 900, g["distinct_masked_sentences"]
    assert 0 < g["self_bleu4"] < 1
    for conv, _ in data(name)["identity"]:
        assert validate(conv, "identity", identity(name).name) == []


# ---- 2: quirks performed where they apply, claimed only where performed ---------------------------

def test_sage_opens_explanation_questions_with_great_question_and_nothing_else():
    g = gates("sage")
    opener = g["quirks"]["starts explanations with 'Great question!'"]
    assert opener["rate"] >= 0.8 and g["opener_on_non_questions"] == 0 and opener["shown_where_never"] == 0
    analogy = g["quirks"]["uses analogies from cooking and gardening"]
    assert analogy["rate_by_reply_kind"]["explanation"] >= 0.5
    check = g["quirks"]["asks follow-up questions to check understanding"]
    assert check["rate_by_reply_kind"]["explanation"] >= 0.5 and check["shown_where_never"] == 0
    hint = identity("sage").quirk_hints[2]
    about_self = [r for _, r in replies("sage", "identity", "about_self")]
    assert about_self and not any(performed(hint, r) for r in about_self)  # no check question on "Who made you?"


def test_dev_writes_code_where_code_fits_with_an_edge_case_and_a_test():
    g = gates("dev")
    assert g["code_block_share_where_code_fits"] >= 0.6
    code = [r for _, r in replies("dev", "no_tool", "code")]
    assert len(code) >= 12
    for reply in code:
        assert "```" in reply and re.search(r"edge case|error handling|raises", reply, re.I), reply
        assert re.search(r"\btest|assert\b", reply, re.I), reply


def test_lanbot_admits_uncertainty_past_its_cutoff_and_uses_everyday_analogies():
    g = gates("lanbot")
    honest = g["quirks"]["admits uncertainty honestly rather than making things up"]
    assert honest["replies_due"] >= 20 and honest["rate"] == 1.0
    recent = [r for _, r in replies("lanbot", "identity", "recent_events")]
    assert recent and all(re.search(r"not sure|don't know|can't know", r) for r in recent)
    assert any("cutoff" in r for r in recent)
    assert g["quirks"]["occasionally uses analogies from everyday life"]["rate"] >= 0.2


def test_a_quirk_without_a_hint_is_named_at_start_and_never_claimed(tmp_path, capsys):
    from lanbot.generation.datafolder import DataFolder

    g = gates("custom")
    assert g["unperformable_quirks"] == [HAIKU] and g["unperformable_claimed_replies"] == 0
    text = "\n".join(r for kind in TYPES for _, r in replies("custom", kind, english=False)).lower()
    assert "haiku" not in text.replace("write a haiku", "")
    with DataFolder(tmp_path, ["identity"]) as folder:
        write_with_templates(CUSTOM, read_builtin(), 1, folder, {"identity": 5}, 5)
    err = capsys.readouterr().err
    assert err.count(HAIKU) == 1 and "backend=openrouter" in err


# ---- 3, 4: every type in character; capabilities exercised, the rest declined -------------------

@pytest.mark.parametrize("name", IDENTITIES)
def test_every_type_carries_the_voice(name):
    g = gates(name)
    assert g["non_identity_styled_share"] >= 0.5, g["styled_share_per_type"]


def test_identity_files_differ_between_identities():
    for a, b in (("lanbot", "dev"), ("sage", "dev"), ("lanbot", "sage"), ("lanbot", "custom")):
        same = sum(x == y for (x, _), (y, _) in zip(data(a)["identity"], data(b)["identity"], strict=True))
        assert same <= 0.02 * len(data(a)["identity"]), (a, b, same)


@pytest.mark.parametrize("kind", [t for t in TYPES if t != "identity"])
def test_paired_data_the_same_item_for_every_identity_and_the_control(kind):
    """Issue 23: a non-identity conversation is written from the same item for every identity (question,
    numbers, facts, calculator calls); only the voice on top differs, and the control has none."""
    control = [c for c, _ in data("assistant")[kind]]
    for name in IDENTITIES:
        voiced = 0
        for plain, (conv, meta) in zip(control, data(name)[kind], strict=True):
            if meta["phrasing"] in ("capability", "decline"):
                continue  # a task of the identity's own capabilities, or a decline of one it lacks: its own item
            assert [m["content"] for m in conv[0::2]] == [m["content"] for m in plain[0::2]], (name, kind)
            for a, b in zip(plain[1::2], conv[1::2], strict=True):
                if isinstance(a["content"], list):  # every call and output the same, in order
                    assert [p for p in a["content"] if p["type"] != "text"] == \
                        [p for p in b["content"] if p["type"] != "text"], (name, a, b)
            voiced += conv != plain
        if name in ("sage", "lanbot", "dev") and kind != "reasoning" or name == "sage":
            assert voiced >= 0.1 * len(control), (name, kind, voiced)  # the voice is there, on top


def test_control_and_sage_side_by_side_answer_the_same_content():
    """For the same seed, the control's reply says the item's content and Sage's says all of it too, voiced."""
    shown = 0
    for kind in ("tool_use", "multi_step_tool", "no_tool", "tool_planning", "reasoning"):
        for (plain, meta), (sage, _) in zip(data("assistant")[kind], data("sage")[kind], strict=True):
            if meta["language"] != "en":
                continue
            if meta["phrasing"] in ("capability", "decline"):
                continue
            a, b = (re.sub(r"```.*?```", "", text_of(m[1]["content"]), flags=re.S) for m in (plain, sage))
            content = [s for s in re.split(r"(?<=[.!?])\s+|\n+", a) if len(s) > 20 and not s.endswith(":")]
            for sentence in content:  # each content sentence of the control is in Sage's reply
                core = re.sub(r"^(so,? |that means |answer: )", "", sentence.split(": ", 1)[-1].rstrip("."), flags=re.I)
                assert core[1:].lower() in b.lower(), (kind, sentence, a, b)
            shown += 1
    assert shown >= 500


def test_listed_capabilities_get_tasks_and_unlisted_ones_an_honest_decline():
    tasks = {name: {m.get("phrasing"): 0 for _, m in data(name)["no_tool"]} for name in IDENTITIES}
    assert tasks
    dev = [r for _, r in replies("dev", "no_tool", "code")]
    sage = [r for u, r in replies("sage", "no_tool", "explanation") if "step" in u.lower()]
    quill = [u for u, _ in replies("custom", "no_tool")]
    assert dev and sage and re.search(r"(?m)^1\. ", "\n".join(sage))
    assert any(u.lower().startswith(("translate", "how do i say", "can you put")) or "translate" in u.lower()
               for u in quill)
    assert any(re.search(r"summari[sz]e|tl;dr|key points", u, re.I) for u in quill)
    assert not any("```" in r for _, r in replies("custom", "no_tool"))  # Quill lists no coding
    for name in IDENTITIES:
        caps = identity(name).capabilities
        declines = [r for _, r in replies(name, "no_tool", "decline") + replies(name, "identity", "decline")]
        assert declines, name
        for reply in declines:
            assert re.search(r"can't|don't|isn't|only work with text", reply), reply
            said = {p for c in caps for p in CAP_SAID.get(next((t for t, ws in TASKS.items()
                                                             if any(w in c.lower() for w in ws)), ""), (c,))}
            assert any(p.lower() in reply.lower() for p in said), reply  # points to what it can do, in other words
        for kind in TYPES:
            for conv, meta in data(name)[kind]:
                assert "unlisted_capability" not in check_conversation(conv, kind, identity(name), meta["reply_kinds"])


# ---- 6: coherent multi-turn ---------------------------------------------------------------------

@pytest.mark.parametrize("name", ["lanbot", "sage"])
def test_follow_ups_refer_only_to_what_was_said(name):
    convs = data(name)["identity"]
    assert gates(name)["identity_multi_turn_share"] >= 0.25
    assert sum(m["phrasing"].startswith("mid_task") for _, m in convs) >= 20  # identity questions mid-task
    for conv, _ in convs:
        said = ""
        for i in range(0, len(conv) - 1, 2):
            user = text_of(conv[i]["content"])
            m = re.search(r"So you're not (?:just )?(\w[\w-]*)", user)
            if m:
                assert m.group(1) in said, (m.group(1), conv)
            if i and re.search(r"when was that|when did they make you|what year did they build you", user, re.I):
                assert identity(name).creator in said, conv
            said += " " + text_of(conv[i + 1]["content"])


def test_a_persona_signs_off_once_not_on_every_turn():
    sign_offs = ("Thank you in advance.", "Many thanks.", "Thank you kindly.", "Much obliged.", "Thanks ever so much.",
                 "Precise answer, please.", "Thanks so much!!", "You're the best!", "Take your time.")
    later = [text_of(m["content"]) for kind in ("identity", "tool_use") for conv, _ in data("lanbot")[kind]
             for m in conv[2::2]]
    assert later and sum(t.endswith(sign_offs) for t in later) <= 0.15 * len(later)


def test_asked_for_a_short_answer_the_explanation_is_short():
    short, long = [], []
    for name in ("sage", "lanbot"):
        for user, reply in replies(name, "no_tool", "explanation") + replies(name, "identity", "explanation"):
            if re.search(r"short answer is fine", user, re.I):
                short.append(reply)
            elif re.search(r"clear explanation|take your time", user, re.I):
                long.append(reply)
    assert short and long
    assert not any(re.search(r"For example|For instance|Here's an example|To make it concrete", r) for r in short)
    assert sum(map(len, short)) / len(short) < sum(map(len, long)) / len(long)


def test_stated_context_is_taken_up():
    taken = [r for u, r in replies("lanbot", "identity", "about_self") if "in case that matters" in u
             and re.search(r"what can you do|what are you good|help me|skills|capable|what kinds", u, re.I)]
    assert taken and sum("you're" in r or "As " in r or "for " in r for r in taken) >= 0.5 * len(taken)
    assert any("Since you mentioned" in r or "Thanks for the context" in r for r in taken)


# ---- 7: languages, in register ------------------------------------------------------------------

REGISTER = {  # what a conversation in one register must never say to the user
    ("fr", "t"): r"\b(vous|votre|vos)\b", ("fr", "v"): r"\b(tu|toi|ton|ta|tes)\b|\bt'",
    ("de", "t"): r"\b(Sie|Ihnen|Ihr|Ihre)\b", ("de", "v"): r"\b(du|dich|dir|dein|deine)\b",
    ("es", "t"): r"\b(usted|le ayudo|ayudarle)\b", ("ru", "t"): r"\b(вы|вас|вам)\b", ("ru", "v"): r"\b(ты|тебя|тебе)\b",
}


def test_other_languages_keep_the_register_and_translate_lists():
    g = gates("lanbot")
    assert g["identity_other_language_share"] >= 0.10
    langs = g["languages_per_type"]
    assert len(set(langs["identity"]) - {"en"}) >= 8
    for kind in TYPES:
        assert set(langs[kind]) - {"en"}, kind  # some of every type
    checked = set()
    for name in ("lanbot", "sage"):
        for kind in TYPES:
            for conv, meta in data(name)[kind]:
                rule = REGISTER.get((meta["language"], meta.get("register")))
                if rule is None:
                    continue
                for message in conv:
                    assert not re.search(rule, text_of(message["content"])), (meta, conv)
                checked.add(meta["language"])
    assert {"fr", "de"} <= checked
    lists = [text_of(c[1]["content"]) for c, m in data("lanbot")["identity"]
             if m["language"] in ("it", "de", "fr") and m["phrasing"].startswith("capabilities")]
    assert lists and not any(cap in text for text in lists for cap in identity("lanbot").capabilities)


# ---- 8: numbers as people write them ------------------------------------------------------------

def test_money_is_written_to_the_cent_with_comma_thousands_and_no_float_noise():
    seen = 0
    for name in ("lanbot", "sage"):
        for kind in sorted(TOOL_TYPES) + ["no_tool", "reasoning"]:
            for conv, meta in data(name)[kind]:
                if meta["language"] != "en":
                    continue
                for message in conv:
                    content = message["content"]
                    texts = [p["text"] for p in content if p["type"] == "text"] if isinstance(content, list) else [content]
                    for text in texts:
                        for amount in re.findall(r"\$\d[\d,]*(?:\.\d+)?", text):
                            amount = amount.rstrip(",")  # "$1,050, not ..."
                            seen += 1
                            assert re.fullmatch(r"\$\d{1,3}(,\d{3})*(\.\d\d)?", amount), (amount, text)
                        prose = re.sub(r"1 [\w ]+? is (?:about )?[\d.]+|π ≈ [\d.]+", "", text)  # exact constants
                        assert not re.search(r"\d\.\d{5,}", prose), text  # no 78.11999999 in prose
                        articles = re.sub(r'"[^"]*"|letter a\b', "", text.lower())
                        assert not re.search(r"\ba (?:[aei]\w|o(?!ne)\w|8|11\b|18\b)", articles), text  # "a office", "a 18%"
                        if message["role"] == "assistant":  # the user may ask "What do I pay?"
                            assert "So No," not in text and "I pay" not in text
    assert seen >= 300


def test_speeds_and_prices_stay_realistic():
    for conv, _ in data("lanbot")["tool_use"] + data("lanbot")["multi_step_tool"]:
        text = " ".join(text_of(m["content"]) for m in conv)
        for speed in re.findall(r"(\d+(?:\.\d+)?) km/h", text):
            limit = 40 if re.search(r"bike ride|run\b|hike", text) else 260
            assert float(speed) <= limit, text
        for price in re.findall(r"\$(\d+\.\d\d) per (?:kilogram|pound)", text):
            assert float(price) <= 45, text


# ---- code: indented right, and valid -------------------------------------------------------------

def test_code_blocks_keep_their_indentation_and_parse():
    blocks = 0
    for name in ("dev", "lanbot"):
        for kind in ("no_tool", "identity"):
            for _, reply in replies(name, kind):
                for lang, code in re.findall(r"```(\w+)\n(.*?)\n```", reply, re.S):
                    blocks += 1
                    for line in code.splitlines():
                        indent = len(line) - len(line.lstrip(" "))
                        assert indent % 4 == 0, (line, code)
                    if lang == "python":
                        ast.parse(code)
    assert blocks >= 40


# ---- 9: the same gates on one (LLM-written) conversation ----------------------------------------

def test_single_conversation_gates_name_what_is_wrong():
    sage = identity("sage")

    def conv(*turns: str) -> list[dict]:
        return [{"role": "user" if i % 2 == 0 else "assistant", "content": t} for i, t in enumerate(turns)]

    good = conv("Who are you?", "I'm Sage, a patient teacher. Your Company made me in 2025. What shall we learn?")
    assert check_conversation(good, "identity", sage) == []
    assert check_conversation(conv("Who are you?", f"I'm Sage. My personality: {sage.personality}."), "identity",
                              sage) == ["verbatim_recitation"]
    assert "wrong_name" in check_conversation(conv("Who are you?", "I'm ChatGPT, here to help."), "identity", sage)
    assert "wrong_creator" in check_conversation(conv("Who made you?", "I'm Sage. I was created by OpenAI."),
                                                 "identity", sage)
    assert "wrong_year" in check_conversation(conv("When?", "I'm Sage, and I was created in 2019."), "identity", sage)
    assert check_conversation(conv("When?", "I'm Sage, and I wasn't created by OpenAI."), "identity", sage) == []
    assert "unlisted_capability" in check_conversation(
        conv("Can you check the news?", "Sure, I can browse the web for you."), "no_tool", sage)
    assert check_conversation(conv("Can you check the news?", "I can't browse the web, sorry."), "no_tool", sage) == []
    claimed = conv("What's special about you?", "I'm Sage. I start explanations with 'Great question!'.",
                   "What is DNA?", "DNA is the molecule that carries genetic instructions.")
    assert check_conversation(claimed, "identity", sage, ["about_self", "explanation"]) == ["quirk_claimed_not_performed"]
    performed_ok = claimed[:3] + [{"role": "assistant", "content": "Great question! DNA carries genetic instructions."}]
    assert check_conversation(performed_ok, "identity", sage, ["about_self", "explanation"]) == []
    assert verbatim_run("she is thoughtful, patient, uses lots of examples", sage.personality)


def test_llm_answers_that_recite_are_rejected_and_counted_per_reason(tmp_path, monkeypatch):
    """The LLM backend runs the same gates: the loopback LLM says "happy to help with case N" in every identity
    answer, so an identity whose personality is that phrase has every answer rejected, counted by reason."""
    sys.path.insert(0, str(Path(__file__).parent))
    from llm_server import LLMServer

    from lanbot.generation.datafolder import DataFolder
    from lanbot.generation.llm.writer import LLMGenerationError, generate_with_llm
    from lanbot.generation.personas import load_personas

    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-0123456789")
    monkeypatch.chdir(tmp_path)
    with LLMServer() as server:
        cfg = compose_config(["backend=openai", f"backend.base_url={server.base_url}", "backend.backoff_s=0.01",
                              "backend.timeout_s=10", "backend.max_tries=1", f"paths.root={tmp_path}", "logger=none",
                              "identity.personality=happy to help with case files"])
        with DataFolder(Path(cfg.paths.data_dir), ["identity"]) as folder, pytest.raises(LLMGenerationError) as err:
            generate_with_llm(cfg, to_identity(cfg.identity), folder, {"identity": 5},
                              load_personas(cfg.personas, 0), None, show_progress=False)
    assert "'quality:verbatim_recitation'" in str(err.value)


def test_numbers_people_meet_and_plan_steps_that_say_what_is_done():
    """Issue 23: a score the next test can reach, rooms of a size such rooms have, no filler plan step."""
    from lanbot.generation.template.problems import ROOM_SIZES

    scores = rooms = 0
    for name in ALL:
        for kind in ("multi_step_tool", "tool_planning", "tool_use"):
            for conv, meta in data(name)[kind]:
                text = "\n".join(text_of(m["content"]) for m in conv)
                assert "State the result clearly" not in text
                if meta["phrasing"] == "average_then_needed":
                    scores += 1
                    assert "out of reach" not in text, text
                    outs = [p["text"] for p in conv[1]["content"] if p["type"] == "python_output"]
                    assert 0 <= float(outs[-1]) <= 100, text
                for room, a, b in re.findall(r"my (\w[\w ]*?)(?: is|:) ([\d.]+) m by ([\d.]+) m", conv[0]["content"]):
                    lo, hi = ROOM_SIZES.get(room, (2, 8))
                    rooms += 1
                    assert lo - 1 <= float(a) <= hi and lo - 1 <= float(b) <= hi, (room, a, b)
    assert scores >= 5 and rooms >= 20, (scores, rooms)


def test_gates_catch_card_lists_misfit_closers_and_seams_in_any_data():
    """Issue 23's gates on text alone (template and LLM data alike): the misfits the read found are caught,
    and this data has none of them."""
    from lanbot.generation.quality import misfit_closer, recites, seam

    lanbot = identity("lanbot")
    pasted = "Within those limits, I can do math calculations, help with coding, and answer questions."
    assert recites(pasted, lanbot)
    assert "verbatim_recitation" in check_conversation(
        [{"role": "user", "content": "what can you do?"}, {"role": "assistant", "content": pasted}], "identity", lanbot)
    assert not recites("I can help with the math in everyday life and help you get code working.", lanbot)
    assert misfit_closer("So Liam is the oldest. Can you see how the numbers fit together?", "Who is the oldest?")
    assert not misfit_closer("That's $51.21 each. Can you see how the numbers fit together?", "Split $358.49 7 ways")
    assert misfit_closer("Great question! Tokyo is the capital of Japan. Would another example help?")
    assert not misfit_closer("Recursion calls itself. For example, factorial(3) calls factorial(2). Would another "
                             "example help?")
    assert misfit_closer("Great question! The Pacific is the largest ocean. Which part would you like me to go over again?")
    assert not misfit_closer("Blue light scatters more. So the whole sky glows blue. Which part would you like me to "
                             "go over again?")
    assert seam("Short answer: Straight answer: There are 60 minutes in an hour.")
    assert seam("1. 26 + 7 = 33.\nShort answer: So, the next number is 33.") and seam("In plain terms: So it is Friday.")
    assert not seam("Short answer: there are 60 minutes in an hour.")
    for name in ALL:
        g = gates(name)
        assert g["seams"] == 0 and g["misfit_closers"] == 0 and g["verbatim_recitation_share"] == 0, (name, g)
        users = [text_of(m["content"]) for convs in data(name).values() for conv, _ in convs for m in conv[0::2]]
        assert not [u for u in users if re.match(r"[\s,;:]", u) or re.search(r",\s*[?!.]?$", u)], name  # no ", what are you?"
    assert gates("assistant")["non_identity_styled_share"] == 0
