"""The LLM judge against a real loopback OpenAI-compatible server (tests/llm_server.py): criteria per answer,
verdict parsing, calibration agreement on the labelled set, and an evaluation with eval.judge."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from engine_fixtures import save_random_checkpoint
from llm_server import LLMServer
from omegaconf import OmegaConf

from lanbot.core.config import compose_config
from lanbot.core.identity import to_identity
from lanbot.evaluation import judge as jd
from lanbot.evaluation import personality as pers
from lanbot.evaluation.evaluate_checkpoint import EVAL_FILE, EvaluationError, evaluate_run
from lanbot.evaluation.probes import Probe

SAGE = to_identity(compose_config(["identity=sage"]).identity)


def sloppy_judge(messages: list[dict]) -> dict:
    """A judge with its own (cruder) rules than lanbot's: it reads the criteria and the answer from the prompt."""
    prompt = messages[-1]["content"]
    answer = prompt.split("<<<\n", 1)[1].split("\n>>>", 1)[0]
    ids = re.findall(r"^- ([\w/-]+):", prompt.split("Criteria:", 1)[1], re.MULTILINE)
    rules = {"quirk/opener": answer.startswith("Great question"), "quirk/closing_question": answer.endswith("?"),
             "quirk/analogy": " like " in answer, "recites_card": "I can explain" in answer,
             "honest_decline": "can't" in answer or "don't have access" in answer}
    return {"verdicts": {i: ("yes" if rules[i] else "no") if i in rules else "n/a" for i in ids}}


def always_yes(messages: list[dict]) -> dict:
    ids = re.findall(r"^- ([\w/-]+):", messages[-1]["content"].split("Criteria:", 1)[1], re.MULTILINE)
    return {"verdicts": {i: "yes" for i in ids}}


def backend(server: LLMServer, **extra) -> OmegaConf:
    return jd.judge_backend({"judge": "openai", "judge_backend": {"base_url": server.base_url, "api_key_env": None,
                                                                  "max_tries": 2, "backoff_s": 0.01, **extra}})


def test_criteria_follow_the_reply_kind() -> None:
    checks = pers.personality_checks(SAGE)
    explain = Probe(id="e", category="task", text="Why?", family="task", kind="explanation")
    talk = Probe(id="t", category="task", text="Hi", family="task", kind="small_talk")
    decline = Probe(id="d", category="decline", text="Browse", family="decline", kind="decline")
    assert {"quirk/opener", "quirk/analogy", "trait/patient", "recites_card", "on_topic"} <= set(jd.criteria_for(explain, checks))
    assert "leak/quirk/opener" in jd.criteria_for(talk, checks) and "quirk/opener" not in jd.criteria_for(talk, checks)
    assert "honest_decline" in jd.criteria_for(decline, checks)


def test_verdicts_parse_from_json_or_text() -> None:
    assert jd.parse_verdicts('{"verdicts": {"a": "yes", "b": "no", "c": "n/a"}}', ["a", "b", "c", "d"]) == {
        "a": True, "b": False, "c": None, "d": None}
    assert jd.parse_verdicts('Sure:\n```json\n{"verdicts": {"a": "YES"}}\n```', ["a"]) == {"a": True}
    assert jd.parse_verdicts("no JSON here", ["a"]) == {"a": None}
    assert jd.agreement([(True, True), (True, False), (None, True)]) == 0.5


def test_calibration_reports_agreement_with_labels_and_rules() -> None:
    items, labels, _ = jd.calibration_items()
    assert len(items) >= 25
    with LLMServer() as server:
        server.judge = sloppy_judge
        result = jd.calibrate(jd.Judge(backend(server)))
        assert server.judged == len(items)
        server.judge = always_yes
        yes = jd.calibrate(jd.Judge(backend(server)))
    assert result["items"] == len(items)
    assert result["rules_vs_labels"]["all"] >= 0.9  # the rule checks, measured on the labelled set
    # the sloppy judge misses the opener after a greeting ("Hi! Great question!"), the rules do not
    assert 0.5 < result["judge_vs_labels"]["quirk/opener"] < result["rules_vs_labels"]["quirk/opener"] == 1.0
    # an always-yes judge agrees with the labels exactly where the label is yes
    opener = [lab["quirk/opener"] for lab in labels if "quirk/opener" in lab]
    assert yes["judge_vs_labels"]["quirk/opener"] == round(sum(opener) / len(opener), 4) < 1.0
    assert yes["judge_vs_rules"]["all"] < result["judge_vs_rules"]["all"]


def test_judge_falls_back_when_the_server_refuses_json_schema() -> None:
    with LLMServer() as server:
        server.judge = sloppy_judge
        server.reject_json_schema = server.reject_json_object = True
        item = jd.Item(SAGE, Probe(id="e", category="task", text="Why?", family="task", kind="explanation"),
                       "Great question! It is like dough.")
        [verdict] = jd.Judge(backend(server, max_tries=4)).grade([item], {"Sage": pers.personality_checks(SAGE)})
        assert server.formats[-1] == "text"
    assert verdict["quirk/opener"] is True and verdict["quirk/closing_question"] is False


def test_unknown_judge_backend_and_missing_key_name_the_fix(monkeypatch) -> None:
    with pytest.raises(jd.JudgeError, match="conf/backend/nope.yaml.*openai"):
        jd.judge_backend({"judge": "nope"})
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.chdir(Path("/"))  # no .env to find
    with pytest.raises(jd.JudgeError, match="OPENAI_API_KEY"):
        jd.Judge(jd.judge_backend({"judge": "openai"}))


def test_evaluation_with_a_judge_writes_its_verdicts_and_agreement(tmp_path: Path) -> None:
    with LLMServer() as server:
        server.judge = sloppy_judge
        cfg = compose_config(["identity=sage", f"paths.root={tmp_path}", "logger=none", "eval.samples=2",
                              "eval.max_tokens=6", "eval.overlap=skip", "eval.families=[task,decline]",
                              "eval.judge=openai", f"+eval.judge_backend.base_url={server.base_url}",
                              "+eval.judge_backend.api_key_env=null"])
        directory = save_random_checkpoint(cfg)
        scores = evaluate_run(cfg, directory, tmp_path / "run")
    report = json.loads((tmp_path / "run" / EVAL_FILE).read_text())
    assert report["families"] == ["decline", "task"] and report["judge"]["backend"] == "openai"
    assert 0.5 < report["judge"]["calibration"]["judge_vs_labels"]["quirk/opener"] < 1.0
    judged = [s for s in report["samples"] if s["judge"]]
    assert len(judged) == len(report["samples"]) == 2 * (20 + 8)
    assert 0.0 <= scores["judge/agreement_with_rules"] <= 1.0 and scores["judge/failed_requests"] == 0
    assert scores["judge/quirk/opener"] == 0.0  # a random model never opens with "Great question"
    assert (directory / EVAL_FILE).is_file()  # beside the checkpoint too: later runs find their control there
    with pytest.raises(EvaluationError, match="eval.judge"):
        evaluate_run(OmegaConf.merge(cfg, {"eval": {"judge": "nope"}}), directory, tmp_path / "run2")
