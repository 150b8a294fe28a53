"""Chat: streamed answers with the calculator shown apart, history, /clear and /quit, the context limit,
and the CLI (one-shot prompt, stage choice, refusals)."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from engine_fixtures import ScriptedModel, random_gpt, save_random_checkpoint, tokenizer
from rich.console import Console

from lanbot.core.config import compose_config
from lanbot.evaluation.chat_session import chat_loop, fit_history
from lanbot.evaluation.engine import Engine, run_tool
from lanbot.training.tokenizer import render_for_completion

ROOT = Path(__file__).resolve().parent.parent
CHAT = {"max_tokens": 80, "temperature": 0.0, "top_k": None, "seed": 1}


def tool_answer(expr: str, after: str) -> list[int]:
    tok = tokenizer()
    sid = tok.special_id
    forced = len(tok.encode(run_tool(expr))) + 2  # where the engine forces <|output_start|>result<|output_end|>
    return (tok.encode("Let me compute.") + [sid("<|python_start|>"), *tok.encode(expr), sid("<|python_end|>")]
            + [0] * forced + tok.encode(after) + [sid("<|assistant_end|>")])


def converse(lines: list[str], script: list[int]) -> tuple[list[dict], str, ScriptedModel]:
    model = ScriptedModel([script], None, tokenizer().vocab_size)
    out = io.StringIO()
    console = Console(file=out, width=200, color_system=None)
    queue = iter(lines)

    def read_line() -> str:
        try:
            return next(queue)
        except StopIteration:
            raise EOFError from None

    history = chat_loop(Engine(model, tokenizer()), CHAT, console, "LanBot", read_line)
    return history, out.getvalue(), model


def test_tool_calls_and_results_are_shown_apart_and_kept_in_history() -> None:
    history, shown, _ = converse(["What is 2+3*4?", "/quit", "never read"], tool_answer("2+3*4", " It is 14."))
    lines = shown.splitlines()
    assert lines[0] == "LanBot> Let me compute."
    assert lines[1] == "  [calculator] 2+3*4" and lines[2] == "  [result] 14" and lines[3] == "It is 14."
    assert history == [{"role": "user", "content": "What is 2+3*4?"},
                       {"role": "assistant", "content": [
                           {"type": "text", "text": "Let me compute."}, {"type": "python", "text": "2+3*4"},
                           {"type": "python_output", "text": "14"}, {"type": "text", "text": " It is 14."}]}]


def test_bad_expression_shows_an_error_result() -> None:
    _, shown, _ = converse(["divide"], tool_answer("7/0", " Hm."))
    assert "  [result] Error: division by zero" in shown.splitlines()


def test_history_grows_and_clear_forgets_it() -> None:
    tok = tokenizer()
    hello = tok.encode("Hello there.") + [tok.special_id("<|assistant_end|>")]
    history, shown, model = converse(["hi", "again", "/clear", "fresh", "/nonsense"], hello)
    assert [m["content"] for m in history] == ["fresh", "Hello there."]
    first, second, third = model.prompts
    assert second[: len(first)] == first and len(second) > len(first)  # turn 2 sees turn 1
    assert third == render_for_completion(tok, [{"role": "user", "content": "fresh"}])  # /clear: only "fresh"
    assert "(history cleared)" in shown and "unknown command /nonsense" in shown


def test_fit_history_drops_oldest_turns_and_refuses_an_oversized_message() -> None:
    tok = tokenizer()
    engine = Engine(random_gpt(tok.vocab_size), tok)  # context: 64 tokens
    history = []
    for i in range(4):
        history += [{"role": "user", "content": f"question number {i}"}, {"role": "assistant", "content": "ok"}]
    history.append({"role": "user", "content": "last question"})
    kept, prompt = fit_history(engine, history, max_tokens=32)
    assert kept[-1]["content"] == "last question" and len(kept) < len(history) and len(prompt) + 32 <= 64
    with pytest.raises(ValueError, match="exceeds the model's context"):
        fit_history(engine, [{"role": "user", "content": "word " * 200}], max_tokens=8)


def run_cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "WANDB_MODE": "offline"}
    return subprocess.run([sys.executable, "-m", "lanbot.chat", f"paths.root={tmp_path}",
                           f"hydra.run.dir={tmp_path}/run", "chat.max_tokens=6", *args],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def test_cli_answers_once_picks_the_stage_and_refuses_bad_checkpoints(tmp_path: Path) -> None:
    cfg = compose_config(["identity=sage", f"paths.root={tmp_path}"])
    mid = save_random_checkpoint(cfg, stage="mid")
    missing = run_cli(tmp_path, "identity=sage", "chat.prompt=Who are you?")
    assert missing.returncode == 2 and "python -m lanbot.train stage=sft identity=sage" in missing.stderr
    once = run_cli(tmp_path, "identity=sage", "chat.stage=mid", "chat.prompt=Who are you?")
    assert once.returncode == 0, once.stderr
    assert once.stdout.startswith("Sage> ")
    other = run_cli(tmp_path, "identity=lanbot", f"chat.checkpoint={mid}", "chat.prompt=hi")
    assert other.returncode == 2 and "'Sage'" in other.stderr and "'LanBot'" in other.stderr
