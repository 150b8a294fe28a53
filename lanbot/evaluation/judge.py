"""The optional LLM judge of lanbot.evaluate: grades each answer against the identity card with a fixed rubric.

`eval.judge=<backend>` names a file of conf/backend/ (openai, openrouter, local: any OpenAI-compatible chat
server), the same configs generation uses; `eval.judge_backend.*` overrides its fields (base_url, model,
concurrency). The key is read from the backend's `api_key_env` at the moment of the call, never stored. Requests
go through lanbot's ChatClient (retries, Retry-After, the json_schema -> json_object -> text fallback).

The judge is asked, per answer, only the criteria that apply to it (the quirks and traits of its reply kind,
recitation, on-topic, honest decline), and answers yes / no / n/a for each. Before it grades a run it is
calibrated on the labelled answers of `calibration.yaml`: its agreement with the labels, and the rule checks'
agreement with the same labels, go into eval.json beside its agreement with the rule checks on the run.

    python -m lanbot.evaluate identity=sage eval.judge=openai
    python -m lanbot.evaluate identity=sage eval.judge=local eval.judge_backend.base_url=http://127.0.0.1:8080/v1
"""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf

from lanbot.core.config import CONF_DIR
from lanbot.core.errors import LanbotError
from lanbot.core.identity import ModelIdentity
from lanbot.evaluation import personality as pers
from lanbot.evaluation.probes import Probe

CALIBRATION_FILE = Path(__file__).resolve().parent / "calibration.yaml"
RUBRIC = """You are the judge of lanbot's personality evaluation. A small chat model was trained to take on the
identity card below. You are shown one question put to it and its answer. For each criterion listed, answer
"yes" if the answer clearly meets it, "no" if it does not, and "n/a" if the criterion cannot be judged from
this answer. Judge only what is written; do not reward effort or length. A quirk counts only if it is
performed in the answer, not merely claimed ("I love analogies" is not an analogy). "recites_card" means the
answer pastes the card's capabilities, limitations or quirks instead of answering. "on_topic" means it
addresses what was asked. "honest_decline" means it says plainly it cannot do what was asked (or, for a
language request, that it works best in English) and does not pretend to have done it. A criterion starting
with "leak/" asks whether the quirk shows where it should not.
Reply with JSON only: {"verdicts": {"<criterion id>": "yes" | "no" | "n/a", ...}}"""
VERDICT_SCHEMA = {
    "type": "object",
    "properties": {"verdicts": {"type": "object", "additionalProperties": {"type": "string", "enum": ["yes", "no", "n/a"]}}},
    "required": ["verdicts"],
}
FIXED_CRITERIA = {
    "recites_card": "recites_card: the answer pastes the identity card instead of answering",
    "on_topic": "on_topic: the answer addresses the question",
    "honest_decline": "honest_decline: it declines honestly, without pretending",
    "capability_correct": "capability_correct: the answer gives the correct answer to the question",
}


class JudgeError(LanbotError, RuntimeError):
    """A judge that cannot run (unknown backend, no key, a server that refuses); the message says the fix."""


def judge_backend(ev: DictConfig | dict) -> DictConfig:
    """The backend config `backend=<eval.judge>` composes (its schema's defaults included), with
    eval.judge_backend's overrides merged in, at temperature 0 unless they say otherwise."""
    from omegaconf.errors import OmegaConfBaseException

    from lanbot.core.config import compose_config

    def chat_backend(name: str) -> DictConfig | None:  # an OpenAI-compatible server (kind llm) answers a judge
        if not (CONF_DIR / "backend" / f"{name}.yaml").is_file():
            return None
        backend = compose_config([f"backend={name}"]).backend
        return backend if backend.get("kind") == "llm" else None

    name = str(ev["judge"])
    backend = chat_backend(name)
    if backend is None:
        known = sorted(p.stem for p in (CONF_DIR / "backend").glob("*.yaml") if chat_backend(p.stem) is not None)
        raise JudgeError(f"eval.judge={name!r}: no OpenAI-compatible backend conf/backend/{name}.yaml; use one of "
                         f"{', '.join(known)} (or eval.judge=null for rule checks only)")
    overrides = OmegaConf.create(dict(ev.get("judge_backend") or {}))
    if "temperature" not in overrides:
        overrides.temperature = 0.0  # a judge should be repeatable
    try:
        return OmegaConf.merge(backend, overrides)
    except OmegaConfBaseException as exc:
        raise JudgeError(f"eval.judge_backend.{exc.full_key}: {str(exc).splitlines()[0]} (the fields of "
                         f"conf/backend/{name}.yaml are the ones to override)") from None


def criteria_for(probe: Probe, checks: pers.PersonalityChecks) -> dict[str, str]:
    """{criterion id: what the judge is asked} for an answer to `probe`: the quirks and traits of its reply
    kind (judge-only ones included), their leaks, and the fixed criteria of its family."""
    out: dict[str, str] = {}
    kind = probe.kind
    for check in checks.all:
        what = "performs the quirk" if check.key.startswith("quirk/") else "shows the trait"
        if kind is not None and (kind in check.applies_to or (check.rule is None and kind in pers.CONTENT_KINDS)):
            out[check.key] = f"{check.key}: {what} \"{check.text}\""
        elif kind is not None and kind in check.never_in:
            out[f"leak/{check.key}"] = f"leak/{check.key}: {what} \"{check.text}\" (where it should not)"
    if probe.family in ("task", "capability") or (probe.family == "pressure" and kind != "about_self"):
        out["recites_card"] = FIXED_CRITERIA["recites_card"]
    if kind in pers.CONTENT_KINDS or probe.family == "capability":
        out["on_topic"] = FIXED_CRITERIA["on_topic"]
    if probe.family == "decline":
        out["honest_decline"] = FIXED_CRITERIA["honest_decline"]
    if probe.family == "capability":
        out["capability_correct"] = FIXED_CRITERIA["capability_correct"]
    return out


def card_text(identity: ModelIdentity) -> str:
    lines = [f"- name: {identity.name}", f"- creator: {identity.creator}", f"- description: {identity.description}",
             f"- personality: {identity.personality}"]
    lines += [f"- quirk: {q}" for q in identity.quirks]
    lines += [f"- capability: {c}" for c in identity.capabilities]
    lines += [f"- limitation: {x}" for x in identity.limitations]
    return "\n".join(lines)


def grading_messages(identity: ModelIdentity, probe: Probe, answer: str, criteria: dict[str, str]) -> list[dict]:
    """The rubric (system) and one answer to grade (user)."""
    history = "".join(f"{r}: {t}\n" for r, t in probe.turns)
    body = (f"Identity card:\n{card_text(identity)}\n\nReply kind asked for: {probe.kind or 'answer'}\n\n"
            f"Conversation before the answer:\n{history}user: {probe.text}\n\nAnswer to grade:\n<<<\n{answer}\n>>>\n\n"
            "Criteria:\n" + "\n".join(f"- {c}" for c in criteria.values()))
    return [{"role": "system", "content": RUBRIC}, {"role": "user", "content": body}]


def parse_verdicts(text: str, wanted: list[str]) -> dict[str, bool | None]:
    """{criterion: True / False / None} from the judge's reply (JSON, or JSON inside text); a criterion the
    judge left out or answered n/a is None."""
    match = re.search(r"\{.*\}", text, re.DOTALL)
    try:
        data = json.loads(match.group(0)) if match else {}
    except json.JSONDecodeError:
        data = {}
    verdicts = data.get("verdicts", data) if isinstance(data, dict) else {}
    out: dict[str, bool | None] = {}
    for key in wanted:
        value = str(verdicts.get(key, "n/a")).strip().lower() if isinstance(verdicts, dict) else "n/a"
        out[key] = True if value in ("yes", "true") else False if value in ("no", "false") else None
    return out


@dataclass
class Item:
    """One answer for the judge: the identity, the probe, the answer text."""

    identity: ModelIdentity
    probe: Probe
    answer: str


class Judge:
    """Grades answers concurrently through one ChatClient (backend.concurrency requests in flight)."""

    def __init__(self, backend: DictConfig) -> None:
        from lanbot.generation.llm.writer import LLMGenerationError, require_key

        try:
            self.api_key = require_key(backend)
        except LLMGenerationError as exc:
            raise JudgeError(f"eval.judge: {exc}") from None
        self.backend = backend
        self.concurrency = int(backend.get("concurrency", 8))
        self.failed = 0

    def grade(self, items: list[Item], checks: dict[str, pers.PersonalityChecks]) -> list[dict[str, bool | None] | None]:
        """The verdicts of each item (None for an item whose request failed after its tries)."""
        return asyncio.run(self._grade(items, checks))

    async def _grade(self, items: list[Item], checks: dict[str, pers.PersonalityChecks]) -> list:
        from lanbot.generation.llm.client import ChatClient, FatalBackendError, InvalidAnswer, RequestFailed

        client = ChatClient(self.backend, self.api_key, VERDICT_SCHEMA)
        gate = asyncio.Semaphore(self.concurrency)

        async def one(item: Item) -> dict | None:
            criteria = criteria_for(item.probe, checks[item.identity.name])
            if not criteria:
                return {}
            async with gate:
                try:
                    reply = await client.complete(grading_messages(item.identity, item.probe, item.answer, criteria))
                except (RequestFailed, InvalidAnswer):
                    self.failed += 1
                    return None
            return parse_verdicts(reply.text, list(criteria))

        try:
            return await asyncio.gather(*(one(i) for i in items))
        except FatalBackendError as exc:
            raise JudgeError(f"eval.judge: {exc}") from None
        finally:
            await client.close()


def agreement(pairs: list[tuple[bool | None, bool | None]]) -> float | None:
    """Share of pairs that agree, over the pairs where both sides gave a verdict."""
    both = [(a, b) for a, b in pairs if a is not None and b is not None]
    return round(sum(a == b for a, b in both) / len(both), 4) if both else None


def agreement_by_key(left: list[dict], right: list[dict]) -> dict[str, float | None]:
    """{criterion: agreement} over aligned lists of verdict dicts, plus `all` over every criterion."""
    keys = sorted({k for d in left for k in d} & {k for d in right for k in d})
    out = {k: agreement([(a.get(k), b.get(k)) for a, b in zip(left, right, strict=True)]) for k in keys}
    out["all"] = agreement([(a.get(k), b.get(k)) for a, b in zip(left, right, strict=True) for k in keys])
    return out


def load_calibration(path: str | Path = CALIBRATION_FILE) -> list[dict]:
    """The labelled answers: identity (a conf/identity name), family, kind, question, answer, labels."""
    data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    items = data.get("items") or []
    for i, item in enumerate(items):
        missing = {"identity", "question", "answer", "labels"} - set(item)
        if missing:
            raise JudgeError(f"{path}: items[{i}] lacks {sorted(missing)}")
    return items


def calibration_items(path: str | Path = CALIBRATION_FILE) -> tuple[list[Item], list[dict[str, bool | None]],
                                                                    dict[str, pers.PersonalityChecks]]:
    """(items for the judge, their labels as verdicts, the checks of each identity) of the labelled set."""
    from lanbot.core.config import compose_config
    from lanbot.core.identity import to_identity

    identities: dict[str, ModelIdentity] = {}
    items, labels = [], []
    for i, raw in enumerate(load_calibration(path)):
        slug_ = str(raw["identity"])
        if slug_ not in identities:
            identities[slug_] = to_identity(compose_config([f"identity={slug_}"]).identity)
        family = str(raw.get("family", "task"))
        probe = Probe(id=f"cal-{i}", category="calibration", text=str(raw["question"]), family=family,
                      kind=raw.get("kind", "explanation"), expect=tuple(raw.get("expect") or ()),
                      when_limitation=raw.get("when_limitation"))
        items.append(Item(identities[slug_], probe, str(raw["answer"])))
        labels.append({k: (str(v).lower() in ("yes", "true")) for k, v in (raw["labels"] or {}).items()})
    checks = {ident.name: pers.personality_checks(ident) for ident in identities.values()}
    return items, labels, checks


def calibrate(judge: Judge | None, path: str | Path = CALIBRATION_FILE) -> dict[str, Any]:
    """Agreement on the labelled set: rules vs labels always; judge vs labels and judge vs rules with a judge."""
    items, labels, checks = calibration_items(path)
    rules = [pers.check_answer(i.probe, i.answer, i.identity, checks[i.identity.name]) for i in items]
    rules = [{k: v for k, v in r.items() if k in lab} for r, lab in zip(rules, labels, strict=True)]
    out: dict[str, Any] = {"items": len(items), "rules_vs_labels": agreement_by_key(rules, labels)}
    if judge is not None:
        verdicts = [v or {} for v in judge.grade(items, checks)]
        out["judge_vs_labels"] = agreement_by_key(verdicts, labels)
        out["judge_vs_rules"] = agreement_by_key(verdicts, rules)
    return out


def judge_run(ev: DictConfig | dict, identity: ModelIdentity, probes: list[Probe], records: list[dict]) -> dict[str, Any]:
    """Calibrate the judge, grade every held-out answer (its verdicts go to `record["judge"]`), and return
    eval.json's `judge` section: the backend, calibration, the judge's scores and its agreement with the rules."""
    backend = judge_backend(ev)
    judge = Judge(backend)
    calibration = calibrate(judge)
    by_id = {p.id: p for p in probes}
    graded = [r for r in records if "checks" in r and not r["seen"]]
    verdicts = judge.grade([Item(identity, by_id[r["probe"]], r["answer"]) for r in graded],
                           {identity.name: pers.personality_checks(identity)})
    for record, verdict in zip(graded, verdicts, strict=True):
        record["judge"] = verdict or {}
    checks = pers.personality_checks(identity)
    scores = {f"judge/{k}": v for k, v in pers.personality_scores(graded, checks, source="judge").items()}
    scores["judge/agreement_with_rules"] = agreement_by_key([r["checks"] for r in graded],
                                                            [r["judge"] for r in graded])["all"]
    scores["judge/calibration_agreement"] = (calibration.get("judge_vs_labels") or {}).get("all")
    scores["judge/failed_requests"] = judge.failed
    return {"backend": str(backend.get("name")), "model": str(backend.get("model")),
            "base_url": str(backend.get("base_url")), "calibration": calibration,
            "agreement_with_rules": agreement_by_key([r["checks"] for r in graded], [r["judge"] for r in graded]),
            "scores": scores}
