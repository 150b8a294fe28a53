"""Context distillation: general answers that carry the model's own knowledge, in the identity's voice.

`python -m lanbot.generate identity=sage data.distill=hf:bundled` writes the template data, then asks the model
that will be trained (here the bundled SmolLM2-135M-Instruct, in-process, batched with the KV cache) each
single-turn general question of `data.distill_types` and puts its answer in place of the template's facts. What
the templates perform well is kept around it: the template reply's opener ("Great question!"), its analogy and
its closing check question. The control is asked the same questions by the same model, without the voice. With
`data.distill_card=true` the identity card is the system prompt (context distillation proper; a capable model
answers in character): SmolLM2-135M then role-plays ("I'm a Sage, a patient teacher ... I'm not a travel agent")
instead of answering, 4 of 63 answers kept against more without it, so the default asks it plainly. Either way
training never sees a card: the conversation written holds no system message.

Quality gates drop what a practitioner would not train on. Sentences of filler about helping are cut first; then
an answer with no prose left (a list, a sentence never finished), one shorter than a sentence, one that loops,
names another model or maker (SmolLM, Hugging Face, OpenAI ...), recites the card, drifts out of English, or
disagrees with the template's checked facts for the same question (their numbers and names, and a quarter of
their content words: "Kyoto, the capital of Japan" and "-18 degrees Celsius" for water's freezing point in
Fahrenheit are dropped) keeps the template's reply. The meta sidecar records each verdict (`distilled`), so a
resumed run asks only what is left, and stats.json counts them.
"""

from __future__ import annotations

import json
import random
import re
from typing import Any

from lanbot.core.identity import ModelIdentity
from lanbot.core.layout import conversations_file, meta_file
from lanbot.generation.datafolder import DataFolder

KINDS = ("explanation", "small_talk", "planning", "advice")  # reply kinds a model's own knowledge answers best
BATCH = 32  # answers decoded at once: on 2 CPU cores a 135M model's step costs about the same for 8 or 32 rows
MAX_TOKENS = 120  # about 4 sentences; longer answers of a 135M model drift
MAX_SENTENCES = 3  # SmolLM2-135M's 4th sentence onwards rambled in 9 of 17 answers read (2026-12-06)
# What a practitioner would not train on, seen in SmolLM2-135M's answers: filler about helping, hedges that deny a
# skill the card lists, condolences for dying plants.
FILLER = re.compile(r"\b(I'?m here to|I'?m (so )?glad|happy to help|I'?d be happy|I'?m not (a|an|sure)|I'?m sorry|as an? \w+ (model|"
                    r"assistant)|my friend|wise question|I hope this helps)\b", re.I)
STOP = frozenset(re.findall(r"\w+", "about above after again their there these those which while where would could "
                                    "should other being because through first every thing things people often "
                                    "really little great question happy answer think means makes called using"))
OTHER_MAKERS = re.compile(r"\b(SmolLM\w*|Hugging ?Face|OpenAI|ChatGPT|GPT-?\d|Claude|Anthropic|Gemini|Llama|Qwen|"
                          r"Alibaba|Meta AI|language model|as an AI)\b", re.I)
SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]?\s+")
ANALOGY = re.compile(r"^(Think of it (like|as)|It's (a bit )?like|Like |Picture |Imagine )")


def card_prompt(identity: ModelIdentity) -> str:
    """The identity card as a system prompt (at generation only: training never sees it)."""
    return (f"You are {identity.name}, {identity.description}, created by {identity.creator}. Your personality: "
            f"{identity.personality}. Answer the user's question correctly and helpfully in a few sentences.")


def sentences(text: str) -> list[str]:
    return [s.strip() for s in SENTENCE_END.split(text.strip()) if s.strip()]


def clean_answer(text: str) -> str:
    """The model's answer as prose: its first complete sentences (at most MAX_SENTENCES); "" for a list or a
    reply that never finished a sentence."""
    text = text.strip()
    if "\n" in text.split("\n\n")[0] or re.search(r"^\s*(\d+\.|[-*])\s", text, re.M):
        return ""  # lists: a 135M model's numbered steps repeat themselves ("Step 9: Convert the Percentage")
    done = [s for s in sentences(text.split("\n\n")[0]) if s[-1:] in ".!?" and not FILLER.search(s)]
    return " ".join(done[:MAX_SENTENCES])


AGREEMENT = 0.25  # of the template's content words: SmolLM2's right answers, in its own words, share 30-60%;
# its wrong ones ("Omsonosis is a concept in philosophy") share none


def key_terms(text: str) -> tuple[set[str], set[str]]:
    """(content-word stems of 6 letters, the numbers and proper names) of a template's facts."""
    stems = {w.lower()[:6] for w in re.findall(r"[A-Za-z]{5,}", text) if w.lower() not in STOP}
    numbers = re.findall(r"(?<![\w.])\d+(?:\.\d+)?(?!\.\s)", text)  # not a list's "1. "
    exact = set(numbers) | set(re.findall(r"(?<=[a-z,] )[A-Z][a-z]{2,}", text))
    return stems, exact


def agrees(answer: str, facts: str) -> bool:
    """The answer carries the template's facts: every number and proper name of them (Tokyo, not Kyoto) and at
    least AGREEMENT of their content words (the template banks are checked; a 135M model's memory is not)."""
    stems, exact = key_terms(facts)
    said = answer.lower()
    if any(e not in answer for e in exact):
        return False
    return not stems or sum(stem in said for stem in stems) >= AGREEMENT * len(stems)


def gate(answer: str, raw: str, identity: ModelIdentity, card: str | None, facts: str) -> str:
    """'ok', or why the answer is not trained on."""
    if not answer:
        return "no_prose"
    if len(answer) < 40:
        return "short"
    said = [s.lower() for s in sentences(answer)]
    words = answer.lower().split()
    grams = [" ".join(words[i:i + 6]) for i in range(len(words) - 5)]
    if len(set(said)) < len(said) or len(set(grams)) < len(grams):
        return "repeats"
    if OTHER_MAKERS.search(raw):
        return "other_identity"
    if card and (identity.description.lower() in answer.lower() or identity.personality.lower() in answer.lower()):
        return "recites_card"
    if sum(ord(c) > 0x24F for c in answer) > 0.05 * len(answer) or "<|" in answer or "<tool" in answer:
        return "off_language"
    if not agrees(answer, facts):
        return "disagrees"
    return "ok"


def voice_parts(template_reply: str) -> tuple[str, str, str, str]:
    """(opener, facts, analogy, closer) of a template reply: its short exclamation, its content, its analogy
    sentence and its closing question."""
    parts = sentences(template_reply)
    opener = parts[0] if parts and len(parts[0].split()) <= 4 and parts[0].endswith("!") else ""
    closer = parts[-1] if len(parts) > 1 and parts[-1].endswith("?") else ""
    analogy = next((p for p in parts[1:-1] if ANALOGY.match(p)), "")
    facts = " ".join(p for p in parts if p not in (opener, closer, analogy))
    return opener, facts, analogy, closer


def voiced(template_reply: str, answer: str) -> str:
    """The model's answer inside the template's voice: its short opener, analogy and closing question."""
    opener, _, analogy, closer = voice_parts(template_reply)
    if opener and answer.lower().startswith(opener.lower().rstrip("!")):
        opener = ""  # the model opened the same way itself
    return " ".join(p for p in (opener, answer, analogy, closer) if p)


def eligible(conversation: Any, meta: dict) -> bool:
    """A single-turn English general question with a text answer, not yet distilled."""
    return (isinstance(conversation, list) and len(conversation) == 2 and "distilled" not in meta
            and all(isinstance(m.get("content"), str) for m in conversation)
            and meta.get("language", "en") == "en" and bool(set(meta.get("reply_kinds") or []) & set(KINDS)))


def distill_folder(spec: str, folder: DataFolder, identity: ModelIdentity, kinds: list[str], seed: int,
                   with_card: bool = False) -> dict[str, dict]:
    """Distil the eligible conversations of `kinds` in the open data folder; returns {kind: {verdict: count}} for
    this run. Each batch is written back (atomically, DataFolder.rewrite) as it is done: Ctrl-C keeps them."""
    from lanbot.evaluation.engine import Engine
    from lanbot.training.chat_format import with_system
    from lanbot.training.pretrained_start import start_from_pretrained
    from lanbot.training.tokenizer import render_for_completion

    model, tok, _ = start_from_pretrained(spec)
    engine = Engine(model.eval(), tok)
    card = card_prompt(identity) if with_card and identity.quirks else None  # the plain control: no voice to give
    verdicts: dict[str, dict] = {}
    for kind in kinds:
        conv_path, meta_path = folder.root / conversations_file(kind), folder.root / meta_file(kind)
        if not conv_path.is_file() or not meta_path.is_file():
            continue
        conversations = [json.loads(line) for line in conv_path.read_text(encoding="utf-8").splitlines()]
        metas = [json.loads(line) for line in meta_path.read_text(encoding="utf-8").splitlines()]
        todo = [i for i, (c, m) in enumerate(zip(conversations, metas, strict=True)) if eligible(c, m)]
        counts = verdicts.setdefault(kind, {})
        for start in range(0, len(todo), BATCH):
            batch = todo[start:start + BATCH]
            prompts = [render_for_completion(tok, with_system([conversations[i][0]], card)) for i in batch]
            answers = engine.generate_batch(prompts, num_samples=1, max_tokens=MAX_TOKENS, temperature=0.0,
                                            seed=random.Random(f"{seed}:{kind}:{start}").randrange(2**31))
            for i, (completion,) in zip(batch, answers, strict=True):
                answer = clean_answer(completion.text)
                verdict = gate(answer, completion.text, identity, card, voice_parts(conversations[i][1]["content"])[1])
                if verdict == "ok":
                    conversations[i][1]["content"] = voiced(conversations[i][1]["content"], answer)
                metas[i]["distilled"] = verdict
                counts[verdict] = counts.get(verdict, 0) + 1
            folder.rewrite(kind, conversations, metas)
            print(f"[distill] {kind}: {start + len(batch)}/{len(todo)} answered by {spec} "
                  f"({counts.get('ok', 0)} kept)", flush=True)
    return verdicts

