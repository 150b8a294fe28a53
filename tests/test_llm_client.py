"""What real servers do, one behaviour per URL path of the test server (tests/llm_server.py BEHAVIOURS).

Each misbehaviour must be one invalid answer counted by its reason, asked again within backend.max_tries,
and never the end of the run; plus the format fallbacks real servers need, the deadline per request,
OpenRouter's headers, cost and fallbacks, repair that touches only the wrong result, plain-text arithmetic,
and the key masked in whatever lanbot prints.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest

from lanbot.core.config import compose_config
from lanbot.core.conversation import tool_calls
from lanbot.core.identity import to_identity
from lanbot.core.layout import conversations_file, meta_file
from lanbot.generation.datafolder import DataFolder
from lanbot.generation.llm.writer import LLMGenerationError, generate_with_llm
from lanbot.generation.personas import load_personas

sys.path.insert(0, str(Path(__file__).parent))

from llm_server import KEY  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.usefixtures("llm_key")  # the fake key, a clean folder (tests/conftest.py)


def run(base_url, root, targets, *overrides, backend="openai"):
    cfg = compose_config([
        f"backend={backend}", f"backend.base_url={base_url}", "backend.backoff_s=0.01", "backend.timeout_s=10",
        "backend.concurrency=1", f"paths.root={root}", "logger=none", *overrides,
    ])
    folder = DataFolder(Path(cfg.paths.data_dir), list(targets))
    try:
        figures = generate_with_llm(cfg, to_identity(cfg.identity), folder, targets, load_personas(cfg.personas, 0),
                                    None, show_progress=False)
    finally:
        folder.close()
    return cfg, figures


def rows(cfg, kind):
    path = Path(cfg.paths.data_dir) / conversations_file(kind)
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()] if path.exists() else []


# -- a reply of the wrong shape: one invalid answer each, counted by reason, asked again --------------

@pytest.mark.parametrize("behaviour, reason", [
    ("truncated-json", "reply_not_json"), ("html", "reply_not_json"), ("choices-string", "reply_shape"),
    ("content-int", "reply_shape"), ("content-dict", "reply_shape"), ("usage-string", "usage"),
    ("usage-negative", "usage"), ("surrogate-reply", "surrogates"), ("surrogate-expression", "surrogates"),
])
def test_a_bad_reply_is_one_invalid_answer_counted_by_reason_and_asked_again(server, tmp_path, behaviour, reason):
    kind = "tool_use" if behaviour == "surrogate-expression" else "identity"
    cfg, figures = run(server.url(behaviour, times=2), tmp_path, {kind: 2})
    assert server.bad[behaviour] == 2
    assert figures["invalid_reasons"] == {reason: 2} and figures["invalid"] == {kind: 2}
    assert figures["written"] == 2 and figures["failures"] == 0 and len(rows(cfg, kind)) == 2
    assert figures["tokens_prompt"] >= 0 and figures["tokens_completion"] >= 0  # negative usage never summed


def test_bad_replies_past_max_tries_are_failures_and_the_run_goes_on(server, tmp_path):
    # every try of the first conversation is an HTML page: it fails, is counted, and is attempted afresh
    cfg, figures = run(server.url("html", times=3), tmp_path, {"identity": 2}, "backend.max_tries=3")
    assert figures["failures"] == 1 and figures["invalid_reasons"] == {"reply_not_json": 3}
    assert figures["written"] == 2


# -- time: a dripping server cannot stretch a request past its deadline --------------------------------

def test_a_dripping_server_is_cut_at_the_deadline_and_the_request_retried(server, tmp_path):
    server.drip_s = 0.3  # a byte every 0.3 s: each read is quick, so httpx's per-read timeout never fires
    start = time.monotonic()
    _, figures = run(server.url("drip", times=1), tmp_path, {"identity": 1}, "backend.timeout_s=1.5")
    took = time.monotonic() - start
    assert figures["timeouts"] == 1 and figures["written"] == 1
    assert took < 6, f"a dripping answer held the run for {took:.1f} s (deadline 1.5 s)"


@pytest.mark.parametrize("behaviour", ["flood", "flood-sse"])
def test_a_reply_that_never_ends_is_cut_at_the_size_limit_not_held_in_memory(server, tmp_path, behaviour):
    from lanbot.generation.llm import client

    start = time.monotonic()
    _, figures = run(server.url(behaviour, times=1), tmp_path, {"identity": 1}, "backend.timeout_s=20")
    took = time.monotonic() - start
    assert server.bad[behaviour] == 1 and figures["written"] == 1 and figures["failures"] == 0
    # cut at the limit (plus what was in flight on the socket), long before the 20 s deadline
    assert client.MAX_REPLY_BYTES <= server.flooded < client.MAX_REPLY_BYTES + (8 << 20)
    assert took < 15, f"the flood held the request for {took:.1f} s"


def test_the_client_is_built_with_the_installed_openai_types(server, tmp_path):
    """The real client against the loopback server: fails if the installed openai refuses what lanbot passes."""
    import asyncio

    import openai

    from lanbot.generation.llm.client import ChatClient

    cfg = compose_config(["backend=openai", f"backend.base_url={server.base_url}", "backend.timeout_s=7",
                          "backend.connect_timeout_s=2"])
    chat = ChatClient(cfg.backend, KEY, {"type": "object"})
    timeout = chat.client.timeout
    assert isinstance(timeout, openai.Timeout) and timeout.connect == 2 and timeout.read == 7

    async def ask():
        try:
            return await chat.complete([{"role": "user", "content": "identity conversation for Sage, 1 exchange"}])
        finally:
            await chat.close()

    reply = asyncio.run(ask())
    assert reply.text.strip() and chat.usage.requests == 1


# -- response formats as real servers answer them -------------------------------------------------------

def test_json_schema_refused_with_http_500_falls_back_once_to_json_object_with_schema(server, tmp_path):
    cfg, figures = run(server.url("refuse-500", times=0), tmp_path, {"tool_use": 2, "identity": 1})
    assert figures["response_format_fallbacks"] == ["json_schema->json_object_schema (HTTP 500)"]
    assert figures["response_format"] == "json_object_schema" and figures["written"] == 3
    assert figures["server_errors"] == 0  # a refusal is not a server error to back off from
    answered = [s for s in server.seen if s["format"] == "json_object"]
    assert len(answered) == 3 and all(s["schema"] for s in answered)  # the grammar's schema is sent along
    stats_like = [json.loads(line)["response_format"] for line in
                  (Path(cfg.paths.data_dir) / meta_file("tool_use")).read_text().splitlines()]
    assert stats_like == ["json_object_schema"] * 2


def test_a_422_naming_response_format_falls_back_past_the_schema_forms(server, tmp_path):
    _, figures = run(server.url("refuse-422", times=0), tmp_path, {"identity": 2})
    assert figures["response_format_fallbacks"] == ["json_schema->json_object_schema (HTTP 422)",
                                                    "json_object_schema->json_object (HTTP 422)"]
    assert figures["written"] == 2


def test_a_server_that_ignores_the_format_and_answers_prose_is_moved_to_text(server, tmp_path):
    _, figures = run(server.url("prose", times=0), tmp_path, {"identity": 2})
    assert figures["response_format_fallbacks"] == [
        "json_schema->json_object_schema (3 prose answers)", "json_object_schema->json_object (3 prose answers)",
        "json_object->text (3 prose answers)"]
    assert figures["invalid_reasons"] == {"json": 9} and figures["written"] == 2


def test_the_local_preset_needs_no_key_costs_nothing_and_budgets_tokens_and_schema_per_type(server, tmp_path,
                                                                                           monkeypatch):
    import re

    monkeypatch.delenv("OPENAI_API_KEY")
    _, figures = run(server.url("record", times=0), tmp_path, {"identity": 2, "tool_use": 2}, backend="local")
    assert figures["written"] == 4 and figures["cost_usd"] == 0.0  # prices: {"*": 0}: free, not unknown
    budget = compose_config(["backend=local"]).backend.max_tokens_by_type
    for seen in server.seen:
        kind = re.search(r'type "(\w+)"', seen["prompt"])[1]
        turns = int(re.search(r"Exchanges: (\d+)", seen["prompt"])[1])
        assert seen["max_tokens"] == min(budget[kind] * turns, 1024), seen["max_tokens"]
        messages = seen["schema_body"]["properties"]["messages"]["properties"]  # in order: user first
        assert list(messages) == [f"{role}_{t}" for t in range(1, turns + 1) for role in ("user", "assistant")]
        parts = messages["assistant_1"]["properties"]["parts"]
        if kind == "tool_use":  # the order the type needs: intro, a call, the text after it
            assert list(parts["properties"]) == ["intro", "call_1", "after_1"]
        else:  # no stray call possible; the local preset opens an identity reply with the name
            assert "calculator" not in json.dumps(messages)
            assert all("LanBot" in o for o in parts["properties"]["name"]["properties"]["text"]["enum"])


# -- arithmetic: repair only what came from the wrong result; plain text checked too --------------------

def test_repair_changes_only_the_wrong_result_not_other_numbers(server, tmp_path):
    cfg, figures = run(server.url("wrong-result", times=1), tmp_path, {"tool_use": 1})
    assert figures["repaired"] == 1
    conv = rows(cfg, "tool_use")[0]
    assert tool_calls(conv)[0] == ("17 * 23", "391")
    assert conv[1]["content"][-1]["text"] == "So 391 for year 1, step 1 done (391 in total)."
    assert conv[0]["content"] == "Step 1 of my budget for year 1: what is 17 * 23?"


def test_a_wrong_result_that_cannot_be_told_from_other_numbers_is_rejected_not_rewritten(server, tmp_path):
    cfg, figures = run(server.url("wrong-result-ambiguous", times=1), tmp_path, {"tool_use": 1})
    assert figures["invalid_reasons"] == {"arithmetic": 1} and figures["repaired"] == 0
    assert all("cat" not in json.dumps(c) for c in rows(cfg, "tool_use"))  # the ambiguous answer was not kept


def test_plain_text_arithmetic_is_checked_by_the_calculator(server, tmp_path):
    cfg, figures = run(server.url("text-arithmetic", times=1), tmp_path, {"reasoning": 1})
    assert figures["repaired"] == 1
    text = rows(cfg, "reasoning")[0][1]["content"]
    assert text == "Step 1: 12*7 = 84. Step 2: so that is the answer, in year 1."
    server.bad.clear()
    _, figures = run(server.url("text-arithmetic", times=1), tmp_path / "reject", {"reasoning": 1},
                     "backend.arithmetic=reject")
    assert figures["invalid_reasons"] == {"arithmetic": 1} and figures["rejected"] == 1


# -- OpenRouter: attribution headers, reported cost, routing and model fallbacks passed through ---------

def test_openrouter_headers_cost_provider_and_model_fallbacks(server, tmp_path, monkeypatch):
    monkeypatch.setenv("OPENROUTER_API_KEY", KEY)
    cfg, figures = run(server.url("openrouter", times=0), tmp_path, {"identity": 2}, "backend.app_url=https://ex.org/app",
                       "backend.models=[openai/gpt-4o-mini]", "++backend.provider={order: [deepinfra], sort: price}",
                       backend="openrouter")
    seen = server.seen
    assert {(s["referer"], s["title"]) for s in seen} == {("https://ex.org/app", "lanbot")}
    assert all(s["models"] == ["google/gemini-2.5-flash", "openai/gpt-4o-mini"] for s in seen)
    assert all(s["provider"] == {"order": ["deepinfra"], "sort": "price"} and s["usage"] == {"include": True}
               for s in seen)
    # the cost the server reported (1e-6 USD per token here), not the price table's gemini figure
    assert figures["cost_usd"] == pytest.approx(figures["tokens_total"] * 1e-6, rel=1e-6)
    assert figures["cost_reported_usd"] == figures["cost_usd"]
    metas = [json.loads(line) for line in (Path(cfg.paths.data_dir) / meta_file("identity")).read_text().splitlines()]
    assert {m["answered_by"] for m in metas} == {"openai/gpt-4o-mini"}
    assert sum(m["spent"]["cost_usd"] for m in metas) == pytest.approx(figures["cost_usd"], abs=1e-6)


def test_the_price_table_is_the_fallback_when_no_cost_is_reported(server, tmp_path, monkeypatch):
    monkeypatch.setenv("OPENROUTER_API_KEY", KEY)
    _, figures = run(server.base_url, tmp_path, {"identity": 2}, backend="openrouter")
    assert figures["cost_reported_usd"] == 0
    assert figures["cost_usd"] == pytest.approx(
        (figures["tokens_prompt"] * 0.30 + figures["tokens_completion"] * 2.50) / 1e6, rel=1e-3)


# -- secrets ------------------------------------------------------------------------------------------

def test_a_key_echoed_by_the_server_is_masked_in_every_message(server, tmp_path):
    with pytest.raises(LLMGenerationError) as err:  # 401 is fatal: its message is what lanbot prints
        run(server.url("echo-key", times=0), tmp_path, {"identity": 1})
    assert KEY not in str(err.value) and "invalid key Bearer ***" in str(err.value)
    with pytest.raises(LLMGenerationError) as err:  # a 500 echoing it, in the failure summary
        run(server.url("echo-key-500", times=0), tmp_path / "b", {"identity": 12}, "backend.max_tries=1")
    assert KEY not in str(err.value) and "Bearer ***" in str(err.value)


def test_the_app_prints_the_echoed_key_masked(server, tmp_path):
    import os
    import subprocess

    env = {**os.environ, "OPENAI_API_KEY": KEY, "WANDB_MODE": "offline"}
    proc = subprocess.run(
        [sys.executable, "-m", "lanbot.generate", "backend=openai", f"backend.base_url={server.url('echo-key', 0)}",
         f"paths.root={tmp_path}", "data=identity", "data.count=1", "logger=none"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2 and "401" in out and "***" in out, out[-2000:]
    assert KEY not in out
