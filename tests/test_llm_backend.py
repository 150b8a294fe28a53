"""The LLM backend against a real OpenAI-compatible HTTP server on 127.0.0.1 (tests/llm_server.py).

Every test drives the real openai client over HTTP: retries (429 + Retry-After, 500, timeouts), the
response-format fallback chain, parsing and arithmetic repair, re-asking invalid answers, the failure
bound, the key's handling, and (through `python -m lanbot.generate`) resume after a kill and no key leak.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lanbot.core.calculator import calculate
from lanbot.core.config import compose_config
from lanbot.core.conversation import TYPES, dedup_key, tool_calls, validate
from lanbot.core.identity import to_identity
from lanbot.core.layout import conversations_file
from lanbot.generation.datafolder import DataFolder
from lanbot.generation.llm.parse import InvalidAnswer, parse_answer
from lanbot.generation.llm.writer import LLMGenerationError, generate_with_llm, status_line
from lanbot.generation.personas import load_personas

sys.path.insert(0, str(Path(__file__).parent))

from llm_server import KEY  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.usefixtures("llm_key")  # the fake key, a clean folder (tests/conftest.py)


def run_llm(server, tmp_path, targets, *overrides, personas=None):
    cfg = compose_config([
        "backend=openai", f"backend.base_url={server.base_url}", "backend.backoff_s=0.01",
        "backend.timeout_s=10", f"paths.root={tmp_path}", "logger=none", *overrides,
    ])
    folder = DataFolder(Path(cfg.paths.data_dir), list(targets))
    try:
        figures = generate_with_llm(cfg, to_identity(cfg.identity), folder, targets,
                                    personas or load_personas(cfg.personas, 0), None, show_progress=False)
    finally:
        folder.close()
    return cfg, figures


def lines(cfg, kind):
    path = Path(cfg.paths.data_dir) / conversations_file(kind)
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


# -- parsing ---------------------------------------------------------------------------------------

def test_parse_turns_calculator_parts_into_nanochat_parts_with_recomputed_outputs():
    answer = {"messages": [
        {"role": "user", "content": "What is 15% of 80?"},
        {"role": "assistant", "parts": [
            {"type": "text", "text": "Let me compute."},
            {"type": "calculator", "expression": "80 * 0.15", "result": "12"},
            {"type": "text", "text": "It is 12."}]}]}
    parsed = parse_answer(json.dumps(answer))
    assert parsed.repaired == 0
    assert parsed.conversation[1]["content"] == [
        {"type": "text", "text": "Let me compute."}, {"type": "python", "text": "80 * 0.15"},
        {"type": "python_output", "text": "12"}, {"type": "text", "text": "It is 12."}]
    assert validate(parsed.conversation, "tool_use") == []


def test_parse_repairs_or_rejects_wrong_arithmetic():
    answer = json.dumps({"messages": [
        {"role": "user", "content": "What is 17 * 23?"},
        {"role": "assistant", "parts": [
            {"type": "calculator", "expression": "17 * 23", "result": "381"},
            {"type": "text", "text": "17 times 23 is 381, so 381 it is (not 3810)."}]}]})
    parsed = parse_answer(answer, "repair")
    assert parsed.repaired == 1
    assert parsed.conversation[1]["content"][-1]["text"] == "17 times 23 is 391, so 391 it is (not 3810)."
    with pytest.raises(InvalidAnswer) as err:
        parse_answer(answer, "reject")
    assert err.value.reason == "arithmetic"


def test_repair_touches_only_the_wrong_result_and_rejects_what_it_cannot_tell_apart():
    def answer(user, *parts):
        return json.dumps({"messages": [{"role": "user", "content": user}, {"role": "assistant", "parts": list(parts)}]})

    calc = {"type": "calculator", "expression": "2 + 3", "result": "6"}
    # "6" nowhere before the call and once after: that one is the result
    parsed = parse_answer(answer("Add 2 and 3, year 1.", calc, {"type": "text", "text": "It is 6, in year 1."}))
    assert parsed.repaired == 1 and parsed.conversation[1]["content"][-1]["text"] == "It is 5, in year 1."
    # "6" also in the question: which 6 came from the result cannot be told, so no rewrite: a reject
    with pytest.raises(InvalidAnswer, match="ambiguous"):
        parse_answer(answer("I have 6 apples; add 2 and 3.", calc, {"type": "text", "text": "6."}))
    # a short wrong number twice after the call: ambiguous too; a long one is the result wherever it appears
    with pytest.raises(InvalidAnswer, match="ambiguous"):
        parse_answer(answer("Add 2 and 3.", calc, {"type": "text", "text": "6 apples, 6 days."}))
    # plain-text arithmetic: checked by the calculator, repaired, or rejected where the wrong number is reused
    parsed = parse_answer(answer("12 times 7?", {"type": "text", "text": "12 × 7 = 85, as 2^3 = 8."}))
    assert parsed.repaired == 1 and parsed.conversation[1]["content"] == "12 × 7 = 84, as 2^3 = 8."
    with pytest.raises(InvalidAnswer, match="again"):
        parse_answer(answer("12 times 7?", {"type": "text", "text": "12*7 = 85, so 85 it is."}))
    for fine in ("In 2024 - 2020 = 4 years", "15% of 80 = 12", "x + 5 = 11", "1,000 + 250 = 1,250"):
        assert parse_answer(answer("?", {"type": "text", "text": fine})).repaired == 0, fine


def test_parse_reads_the_ordered_form_that_grammar_constrained_schemas_ask_for():
    from lanbot.generation.llm.prompt_book import PromptBook

    answer = {"messages": {
        "user_1": {"role": "user", "content": "Split 84 by 4, then add 3."},
        "assistant_1": {"role": "assistant", "parts": {
            "plan": {"type": "plan", "steps": ["divide 84 by 4", "add 3"]},
            "call_1": {"type": "calculator", "expression": "84 / 4,", "result": "21"},
            "after_1": {"type": "text", "text": "That is 21; plus 3 is 24."}}}}}
    parsed = parse_answer(json.dumps(answer))
    assert parsed.conversation[1]["content"][0] == {"type": "text", "text": "1. divide 84 by 4\n2. add 3"}
    assert tool_calls(parsed.conversation) == [("84 / 4", "21")]  # a trailing comma is not a tuple
    assert validate(parsed.conversation, "tool_planning") == []
    schema = PromptBook().schema_for("tool_planning", 2)["properties"]["messages"]["properties"]
    assert list(schema) == ["user_1", "assistant_1", "user_2", "assistant_2"]
    assert list(schema["assistant_1"]["properties"]["parts"]["properties"]) == ["plan", "call_1", "after_1"]


def test_parse_refuses_wrong_types_and_surrogates_instead_of_crashing():
    for part, reason in [({"type": "text", "text": 42}, "types"), ({"type": "text", "text": {"a": 1}}, "types"),
                         ({"type": "calculator", "expression": ["1+1"]}, "types"),
                         ({"type": "text", "text": "hi \ud800"}, "surrogates")]:
        text = json.dumps({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "parts": [part]}]})
        with pytest.raises(InvalidAnswer) as err:
            parse_answer(text)
        assert err.value.reason == reason, part


def test_parse_extracts_json_from_plain_text_and_refuses_bad_answers():
    good = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "parts": [{"type": "text", "text": "Hello!"}]}]}
    parsed = parse_answer("Sure, here you go:\n```json\n" + json.dumps(good) + "\n```\nEnjoy.")
    assert parsed.conversation == [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "Hello!"}]
    cases = {
        "json": "no json here at all",
        "roles": json.dumps({"messages": [{"role": "assistant", "content": "x"}, {"role": "user", "content": "y"}]}),
        "markers": json.dumps({"messages": [{"role": "user", "content": "2+2?"}, {"role": "assistant", "parts": [
            {"type": "text", "text": "<|python_start|>2+2<|python_end|> is 4"}]}]}),
        "calculator": json.dumps({"messages": [{"role": "user", "content": "?"}, {"role": "assistant", "parts": [
            {"type": "calculator", "expression": "__import__('os')"}, {"type": "text", "text": "done"}]}]}),
    }
    for reason, text in cases.items():
        with pytest.raises(InvalidAnswer) as err:
            parse_answer(text)
        assert err.value.reason == reason, text


def test_prompts_name_real_languages_and_record_their_codes_as_the_template_writer_does():
    import random

    import yaml

    from lanbot.core.identity import OTHER_ASSISTANTS as OTHERS
    from lanbot.generation.llm.prompt_book import TEMPLATES, PromptBook

    book = PromptBook()
    codes = set(yaml.safe_load((TEMPLATES / "languages.yaml").read_text(encoding="utf-8")))
    assert set(book.languages) == codes  # both writers cover the same languages
    identity = to_identity(compose_config([]).identity)
    seen = {}
    for i in range(300):
        messages, meta = book.compose(identity, "identity", {"id": "p", "persona": "someone"}, random.Random(i))
        seen[meta["language"]] = messages[1]["content"]
    assert "en" in seen and len(set(seen) - {"en"}) >= 4 and set(seen) <= codes | {"en"}
    for code, prompt in seen.items():
        name = book.languages.get(code, "English")
        assert name.isalpha() and f"Language: {name}." in prompt, prompt
    # "Are you just {other} with a different name?": the placeholder is filled, never sent as is
    prompts = [book.compose(identity, "identity", {"id": "p", "persona": "x"}, random.Random(i))[0][1]["content"]
               for i in range(300)]
    assert not any("{other}" in p for p in prompts)
    assert any(f"{other} " in p for p in prompts for other in OTHERS if "{other}" not in p)


# -- the backend over HTTP -------------------------------------------------------------------------

def test_writes_exact_counts_of_valid_conversations_with_usage_and_cost(server, tmp_path):
    targets = {kind: 3 for kind in TYPES}
    cfg, figures = run_llm(server, tmp_path, targets)
    for kind in TYPES:
        rows = lines(cfg, kind)
        assert len(rows) == 3
        assert all(validate(conv, kind, "LanBot") == [] for conv in rows)
    assert figures["written"] == 18 and figures["requests"] == server.requests == 18
    assert figures["tokens_prompt"] > 0 and figures["tokens_completion"] > 0
    assert figures["cost_usd"] == pytest.approx(
        (figures["tokens_prompt"] * 0.15 + figures["tokens_completion"] * 0.60) / 1e6, rel=1e-3)
    assert server.auth_headers == {f"Bearer {KEY}"}
    assert set(server.formats) == {"json_schema"}


def test_each_conversation_gets_its_own_persona_while_they_last(server, tmp_path):
    personas = [{"id": f"p{i}", "persona": f"person {i}", "voice": None} for i in range(20)]
    cfg, _ = run_llm(server, tmp_path, {"identity": 10, "no_tool": 10}, personas=personas)
    used = [json.loads(line)["persona"] for kind in ("identity", "no_tool")
            for line in (Path(cfg.paths.data_dir) / f"{kind}_meta.jsonl").read_text().splitlines()]
    assert sorted(used) == sorted(p["id"] for p in personas)


def test_an_unpriced_model_costs_unknown_until_given_a_price(server, tmp_path):
    _, figures = run_llm(server, tmp_path, {"identity": 2}, "backend.model=my/local-model")
    assert figures["cost_usd"] is None and figures["tokens_total"] > 0
    assert status_line(figures).endswith("cost ? (add my/local-model to backend.prices)")
    _, figures = run_llm(server, tmp_path / "priced", {"identity": 2}, "backend.model=my/local-model",
                         "++backend.prices={my/local-model: {prompt: 1.0, completion: 2.0}}")
    assert figures["cost_usd"] == pytest.approx((figures["tokens_prompt"] + 2 * figures["tokens_completion"]) / 1e6)
    assert f"cost ${figures['cost_usd']:.4f}" in status_line(figures)


def test_429_waits_as_long_as_retry_after_says(server, tmp_path):
    server.fail_429, server.retry_after_s = 1, 0.5
    _, figures = run_llm(server, tmp_path, {"tool_use": 1}, "backend.concurrency=1")
    assert figures["rate_limited"] == 1 and figures["written"] == 1
    waited = server.times_after_429[0] - server.times_429[0]
    assert waited >= 0.5, f"retried {waited:.3f}s after a 429 with Retry-After: 0.5"


def test_500_and_timeouts_back_off_and_then_succeed(server, tmp_path):
    server.fail_500, server.hang, server.hang_s = 2, 1, 1.5
    _, figures = run_llm(server, tmp_path, {"no_tool": 2}, "backend.concurrency=1", "backend.timeout_s=0.4")
    assert figures["server_errors"] == 2 and figures["timeouts"] == 1
    assert figures["written"] == 2 and figures["failures"] == 0 and figures["retries"] == 3


def test_malformed_json_wrong_type_tools_and_wrong_arithmetic_are_asked_again(server, tmp_path):
    server.malformed, server.wrong_type_tools = 2, 2
    cfg, figures = run_llm(server, tmp_path, {"no_tool": 4, "reasoning": 2}, "backend.concurrency=2")
    assert figures["invalid_reasons"] == {"json": 2, "validation": 2}
    assert sum(figures["invalid"].values()) == 4 and set(figures["invalid"]) <= {"no_tool", "reasoning"}
    assert len(lines(cfg, "no_tool")) == 4 and not any(tool_calls(c) for c in lines(cfg, "no_tool"))
    assert server.answered == 6 + 4

    server.wrong_arithmetic = 2
    cfg, figures = run_llm(server, tmp_path / "reject", {"tool_use": 3}, "backend.arithmetic=reject")
    assert figures["rejected"] == 2 and len(lines(cfg, "tool_use")) == 3

    server.wrong_arithmetic = 2
    cfg, figures = run_llm(server, tmp_path / "repair", {"tool_use": 3}, "backend.concurrency=1")
    assert figures["repaired"] == 2 and figures["rejected"] == 0
    for conv in lines(cfg, "tool_use"):
        expression, output = tool_calls(conv)[0]
        assert conv[1]["content"][-1]["text"] == f"The total is {output}."


def test_tool_answers_without_calculator_calls_are_asked_again(server, tmp_path):
    server.missing_tools = 2
    cfg, figures = run_llm(server, tmp_path, {"tool_use": 2, "multi_step_tool": 2}, "backend.concurrency=2")
    assert figures["invalid_reasons"] == {"validation": 2} and server.answered == 6
    assert all(tool_calls(c) for kind in ("tool_use", "multi_step_tool") for c in lines(cfg, kind))


def test_connection_errors_back_off_and_a_dead_server_stops_with_a_summary(tmp_path):
    import socket

    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    dead = type("Dead", (), {"base_url": f"http://127.0.0.1:{port}/v1"})()
    with pytest.raises(LLMGenerationError, match=r"max_failure_rate.*last error: 2 tries, last: connection error"):
        run_llm(dead, tmp_path, {"identity": 20}, "backend.max_tries=2", "backend.concurrency=2")


def test_response_format_falls_back_to_json_object_then_plain_text(server, tmp_path):
    server.reject_json_schema = True
    _, figures = run_llm(server, tmp_path, {"identity": 3}, "backend.concurrency=1")
    assert figures["response_format"] == "json_object_schema" and figures["written"] == 3
    assert server.formats == ["json_object"] * 3  # {"type": "json_object", "schema": ...}, llama.cpp's form

    server.reject_json_object = True
    server.formats.clear()
    _, figures = run_llm(server, tmp_path / "text", {"identity": 3}, "backend.concurrency=1")
    assert figures["response_format_fallbacks"] == [
        "json_schema->json_object_schema (HTTP 400)", "json_object_schema->json_object (HTTP 400)",
        "json_object->text (HTTP 400)"]
    assert server.formats == ["text"] * 3 and figures["written"] == 3


def test_concurrency_is_bounded_and_used(server, tmp_path):
    server.latency_s = 0.05
    _, figures = run_llm(server, tmp_path, {"identity": 24}, "backend.concurrency=6")
    assert server.max_in_flight == 6
    assert figures["requests"] == 24


def test_failure_rate_past_the_bound_stops_with_a_summary(server, tmp_path):
    server.always_wrong_type_tools = True
    with pytest.raises(LLMGenerationError, match=r"backend.max_failure_rate=0.2") as err:
        run_llm(server, tmp_path, {"no_tool": 30}, "backend.max_tries=2", "backend.concurrency=4")
    assert "run again" in str(err.value)
    assert "last error: invalid no_tool answer: no_tool must not call the calculator" in str(err.value)
    assert server.requests < 60  # it stopped early, not after asking for all 30 twice over


def test_missing_key_stops_before_any_request(server, tmp_path, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY")
    with pytest.raises(LLMGenerationError, match=r"OPENAI_API_KEY.*export OPENAI_API_KEY=.*\.env"):
        run_llm(server, tmp_path, {"identity": 1})
    assert server.requests == 0
    (tmp_path / ".env").write_text(f"OPENAI_API_KEY={KEY}-dotenv\n")
    run_llm(server, tmp_path, {"identity": 1})
    assert server.auth_headers == {f"Bearer {KEY}-dotenv"}
    (tmp_path / ".env").unlink()
    run_llm(server, tmp_path / "local", {"identity": 1}, "backend.api_key_env=null")  # a local server: no key


# -- the real app: resume after a kill, and the key never written anywhere -------------------------

def _generate(server, root, *extra, **popen):
    env = {**os.environ, "OPENAI_API_KEY": KEY, "WANDB_MODE": "offline", "WANDB_SILENT": "true"}
    cmd = [sys.executable, "-m", "lanbot.generate", "backend=openai", f"backend.base_url={server.base_url}",
           f"paths.root={root}", "backend.backoff_s=0.01", *extra]
    return subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, **popen)


def test_killed_run_resumes_without_loss_duplicates_or_wasted_requests(server, tmp_path):
    server.latency_s = 0.05
    args = ["data=agentic", "data.count=30", "backend.concurrency=4", "logger=none"]
    proc = _generate(server, tmp_path, *args)
    data = tmp_path / "data" / "lanbot"
    deadline = time.monotonic() + 30
    while sum(1 for f in data.glob("*_conversations.jsonl") for _ in f.open()) < 40:
        assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read().decode()[-2000:]
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    written_before = sum(1 for f in data.glob("*_conversations.jsonl") for _ in f.open())
    requests_before = server.requests
    assert written_before < 120

    out = _generate(server, tmp_path, *args).communicate(timeout=60)[0].decode()
    kinds = ["tool_use", "multi_step_tool", "no_tool", "tool_planning"]
    keys = set()
    for kind in kinds:
        rows = [json.loads(line) for line in (data / conversations_file(kind)).read_text().splitlines()]
        assert len(rows) == 30, out[-2000:]
        keys |= {dedup_key(r) for r in rows}
    assert len(keys) == 120  # no duplicates
    # the second run asked only for what was missing (a torn last line may cost one more)
    assert server.requests - requests_before <= 120 - written_before + 1
    # the first run lost at most its in-flight requests
    assert requests_before <= written_before + 4 + 1
    # stats.json adds up what both runs spent on the folder, less only the killed run's requests in flight
    stats = json.loads((data / "stats.json").read_text())
    spent = stats["folder_spent"]
    # (a request counts as spent when sent: one the kill cut before the server read it is spent, not received)
    assert server.requests - 4 <= spent["requests"] <= server.requests + 4, (spent, server.requests)
    assert spent["requests"] > stats["requests"]  # more than the second run sent by itself
    assert spent["tokens_total"] == spent["tokens_prompt"] + spent["tokens_completion"] > stats["tokens_total"]


def test_app_records_tokens_cost_and_invalid_answers_and_never_writes_the_key(server, tmp_path):
    from test_generate import _wandb_records

    server.malformed_types = set(TYPES)  # the first request of each of the six types is not JSON
    proc = _generate(server, tmp_path, "data=all", "data.count=2", "backend.concurrency=6", "logger=wandb",
                     f"hydra.run.dir={tmp_path / 'run'}")
    out = proc.communicate(timeout=120)[0].decode()
    assert proc.returncode == 0, out[-3000:]
    stats = json.loads((tmp_path / "data" / "lanbot" / "stats.json").read_text())
    assert stats["requests"] == server.requests == 18 and stats["invalid_dropped"] == dict.fromkeys(TYPES, 1)
    assert stats["invalid_reasons"] == {"json": 6}
    assert stats["tokens_total"] == stats["tokens_prompt"] + stats["tokens_completion"] > 0
    # one run from an empty folder: what the folder cost is what the run cost, invalid answers included
    assert {k: stats["folder_spent"][k] for k in ("requests", "tokens_total")} == {
        k: stats[k] for k in ("requests", "tokens_total")}
    assert stats["folder_spent"]["cost_usd"] == pytest.approx(stats["cost_usd"], abs=1e-5)  # per-line rounding
    assert stats["cost_usd"] == pytest.approx(
        (stats["tokens_prompt"] * 0.15 + stats["tokens_completion"] * 0.60) / 1e6, abs=1e-6)  # gpt-4o-mini
    records = _wandb_records(next((tmp_path / "run" / "wandb").glob("offline-run-*/run-*.wandb")))
    summary = {k: v for r in records if r.get("type") == "summary" for k, v in r["summary"].get("update", {}).items()}
    assert summary["cost_usd"] == stats["cost_usd"] and summary["tokens_total"] == stats["tokens_total"]
    assert summary["llm/cost_usd"] == stats["cost_usd"]
    assert KEY not in out
    assert "HTTP Request:" not in out, "the HTTP client's per-request log lines bury the progress bar"
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.name == "config.yaml" and p.parent.name == ".hydra" for p in files)
    assert any("wandb" in p.parts for p in files), "the wandb offline run should be under the run folder"
    leaks = [p for p in files if KEY.encode() in p.read_bytes()]
    assert not leaks, f"the key was written to {leaks}"
    assert server.auth_headers == {f"Bearer {KEY}"}


def test_missing_key_exits_non_zero_naming_the_variable_before_any_work(server, tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}
    # personas from a path that does not exist: loading them first would fail with another message
    proc = subprocess.run(
        [sys.executable, "-m", "lanbot.generate", "backend=openai", f"backend.base_url={server.base_url}",
         f"paths.root={tmp_path}", "data.count=2", "logger=wandb", "personas=nemotron",
         f"personas.path={tmp_path / 'no-such-personas'}"],
        cwd=tmp_path, env={**env, "WANDB_MODE": "offline", "PYTHONPATH": str(REPO)}, capture_output=True, text=True,
        timeout=120,
    )
    out = " ".join((proc.stdout + proc.stderr).split())
    assert proc.returncode == 2, out  # a LanbotError: exit 2 in every app (lanbot.core.app)
    assert "OPENAI_API_KEY is not set" in out and "export OPENAI_API_KEY=" in out and ".env" in out, out
    assert server.requests == 0
    # stopped before any work: no data folder, no personas loaded, no wandb run
    assert not (tmp_path / "data").exists() and "personas" not in out
    assert not list(tmp_path.rglob("wandb")), "a wandb run was started for a run that had no key"


def test_loopback_server_spends_one_switch_unit_per_answer_not_per_exchange(server):
    """One unit of a misbehaviour switch makes exactly one bad answer, whatever its number of exchanges
    (a unit spent per exchange made the malformed/wrong-type test above flaky under concurrency)."""
    server.wrong_type_tools, server.wrong_arithmetic = 2, 1

    def replies(kind):
        answer = json.loads(server.compose(f'Write one conversation of type "{kind}"\nExchanges: 3'))
        return [m["parts"] for m in answer["messages"] if m["role"] == "assistant"]

    def calls(parts):
        return [p for p in parts if p["type"] == "calculator"]

    for left in (1, 0):
        no_tool = replies("no_tool")
        assert len(no_tool) == 3 and calls(no_tool[0]) and not calls(no_tool[1]) + calls(no_tool[2])
        assert server.wrong_type_tools == left
    tool_use = replies("tool_use")
    wrong = [c for parts in tool_use for c in calls(parts) if c["result"] != calculate(c["expression"])]
    assert len(wrong) == 1 and wrong[0] is calls(tool_use[0])[0]
    assert server.wrong_type_tools == 0 and server.wrong_arithmetic == 0
    assert not any(calls(parts) for parts in replies("no_tool"))  # spent: the next answer is clean


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_ends_requests_in_flight_keeps_what_was_written_and_says_how_to_resume(server, tmp_path, sig, code):
    server.latency_s = 0.05
    args = ["data=agentic", "data.count=10", "backend.concurrency=4", "logger=none", "backend.timeout_s=60"]
    proc = _generate(server, tmp_path, *args)
    data = tmp_path / "data" / "lanbot"
    deadline = time.monotonic() + 60
    while sum(1 for f in data.glob("*_conversations.jsonl") for _ in f.open()) < 8:
        assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read().decode()[-2000:]
        time.sleep(0.02)
    server.latency_s = 60  # the requests now in flight would take a minute: the signal must end them
    time.sleep(0.3)
    sent = time.monotonic()
    proc.send_signal(sig)
    out = proc.communicate(timeout=30)[0].decode()
    assert proc.returncode == code, out[-3000:]
    assert time.monotonic() - sent < 15, "the signal waited for the requests in flight"
    assert "interrupted: run the same command again to resume" in " ".join(out.split())
    assert "Traceback" not in out and "Data folder:" in out and "conversations (agentic)" in out  # the summary
    stats = json.loads((data / "stats.json").read_text())
    assert stats["interrupted"] == sig.name and 8 <= stats["total"] < 40
    written = stats["total"]
    for kind in ("tool_use", "multi_step_tool", "no_tool", "tool_planning"):
        assert all(validate(json.loads(line), kind, "LanBot") == [] for line in (data / conversations_file(kind)).open())
    server.latency_s = 0.0
    out = _generate(server, tmp_path, *args).communicate(timeout=120)[0].decode()
    stats = json.loads((data / "stats.json").read_text())
    assert stats["total"] == 40 and stats["resumed_from"] and sum(stats["resumed_from"].values()) == written, out
    assert stats["interrupted"] is None
