"""Talk to a trained lanbot model in the terminal: `python -m lanbot.chat identity=sage`

Answers stream token by token; when the model calls the calculator, the call and its result are shown
on lines of their own. The conversation is kept (oldest turns dropped when it outgrows the model's
context); `/clear` forgets it, `/quit` (or Ctrl-D) leaves.

    python -m lanbot.chat identity=sage                          # the newest sft checkpoint of Sage
    python -m lanbot.chat identity=sage chat.stage=mid
    python -m lanbot.chat chat.checkpoint=outputs/checkpoints/lanbot/default/tiny/sft
    python -m lanbot.chat identity=sage chat.prompt="What is 17 * 23?"   # answer once and exit
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from omegaconf import DictConfig
from rich.console import Console

import lanbot.core.identity  # noqa: F401  (schema and `slug` resolver)
from lanbot.core.errors import LanbotError
from lanbot.evaluation.engine import Engine, Event
from lanbot.evaluation.inference import load_engine, resolve_checkpoint
from lanbot.training.tokenizer import render_for_completion

Message = dict[str, object]


class ChatError(LanbotError, ValueError):
    """A message the model cannot take (too long for its context); the message says what to shorten."""


def fit_history(engine: Engine, history: list[Message], max_tokens: int) -> tuple[list[Message], list[int]]:
    """(history, prompt ids) with the oldest exchanges dropped until prompt + max_tokens fits the context."""
    limit = engine.model.config.sequence_len
    while True:
        prompt = render_for_completion(engine.tok, history)
        if len(prompt) + max_tokens <= limit or len(history) <= 1:
            break
        history = history[2:]
    if len(prompt) + max_tokens > limit:
        raise ChatError(f"the message is {len(prompt)} tokens; with chat.max_tokens={max_tokens} it exceeds the "
                         f"model's context of {limit}: write a shorter one or lower chat.max_tokens")
    return history, prompt


def show(console: Console, event: Event, state: dict) -> None:
    """Print one streamed event: text as it comes, calculator calls and results on lines of their own."""
    if event.kind == "text":
        text = event.text.lstrip() if state.get("line_start") else event.text
        console.print(text, end="", markup=False, highlight=False)
        state["line_start"] = False
    elif event.kind == "python":
        console.print()
        console.print(f"  [calculator] {event.text}", style="bold cyan", markup=False, highlight=False)
    elif event.kind == "output":
        style = "bold red" if event.text.startswith("Error") else "bold green"
        console.print(f"  [result] {event.text}", style=style, markup=False, highlight=False)
        state["line_start"] = True
    elif event.kind == "end":
        console.print()
        if event.text == "max_tokens":
            console.print("  (stopped at chat.max_tokens)", style="dim", markup=False)


def content_of(events: list[Event]) -> str | list[dict[str, str]]:
    """The answer's events as a message content: a string, or parts (text/python/python_output)."""
    parts: list[dict[str, str]] = []
    kinds = {"text": "text", "python": "python", "output": "python_output"}
    for event in events:
        kind = kinds.get(event.kind)
        if kind is None:
            continue
        if kind == "text" and parts and parts[-1]["type"] == "text":
            parts[-1]["text"] += event.text
        else:
            parts.append({"type": kind, "text": event.text})
    parts = [p for p in parts if p["type"] != "text" or p["text"].strip()]
    if all(p["type"] == "text" for p in parts):
        return "".join(p["text"] for p in parts).strip()
    return parts


def reply(engine: Engine, history: list[Message], message: str, chat: DictConfig | dict, console: Console,
          name: str, turn: int = 0) -> list[Message]:
    """Stream the answer to `message`; return the history with both turns appended."""
    history, prompt = fit_history(engine, [*history, {"role": "user", "content": message}], int(chat["max_tokens"]))
    seed = None if chat.get("seed") is None else int(chat["seed"]) + turn
    console.print(f"{name}> ", style="bold magenta", end="", markup=False)
    events = []
    state = {"line_start": True}
    for event in engine.stream(prompt, max_tokens=int(chat["max_tokens"]), temperature=float(chat["temperature"]),
                               top_k=chat.get("top_k"), seed=seed):
        events.append(event)
        show(console, event, state)
    return [*history, {"role": "assistant", "content": content_of(events) or "…"}]


def chat_loop(engine: Engine, chat: DictConfig | dict, console: Console, name: str,
              read_line: Callable[[], str] | None = None) -> list[Message]:
    """The interactive conversation; returns the history when the user quits."""
    read_line = read_line or (lambda: console.input("[bold]you> [/bold]"))
    history: list[Message] = []
    turn = 0
    while True:
        try:
            line = read_line().strip()
        except (EOFError, KeyboardInterrupt):
            console.print()
            return history
        if not line:
            continue
        if line in ("/quit", "/exit"):
            return history
        if line == "/clear":
            history = []
            console.print("(history cleared)", style="dim", markup=False)
            continue
        if line.startswith("/"):
            console.print(f"unknown command {line}: /clear forgets the conversation, /quit leaves", style="yellow",
                          markup=False)
            continue
        try:
            history = reply(engine, history, line, chat, console, name, turn)
        except ChatError as exc:
            console.print(f"error: {exc}", style="red", markup=False)
        turn += 1


def chat_app(cfg: DictConfig, run_dir: Path | None = None) -> None:
    """`python -m lanbot.chat`: one reply to `chat.prompt`, or a conversation in the terminal."""
    console = Console()
    directory = resolve_checkpoint(cfg, cfg.chat.checkpoint, str(cfg.chat.stage))
    engine, meta = load_engine(cfg, directory, str(cfg.chat.device))
    name = str(cfg.identity.name)
    if cfg.chat.prompt:
        reply(engine, [], str(cfg.chat.prompt), cfg.chat, console, name)
        return
    console.print(f"Chatting with {name} ({meta.get('stage')} checkpoint {directory}, step {meta.get('step')}). "
                  "/clear forgets the conversation, /quit leaves.", style="dim", markup=False)
    chat_loop(engine, cfg.chat, console, name)
