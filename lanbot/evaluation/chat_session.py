"""Talk to a trained lanbot model in the terminal: `python -m lanbot.chat identity=sage`

Answers stream token by token; when the model calls the calculator, the call and its result are shown
on lines of their own. The conversation is kept (oldest turns dropped when it outgrows the model's
context); `/clear` forgets it, `/quit` (or Ctrl-D) leaves. Any input is taken: bytes that are not UTF-8
become U+FFFD, a message longer than the context keeps its end (with a note), text that spells a special
token (`<|assistant_start|>`) stays plain text, and Ctrl-C stops an answer without ending the chat.

    python -m lanbot.chat identity=sage                          # the newest sft checkpoint of Sage
    python -m lanbot.chat identity=sage chat.stage=mid
    python -m lanbot.chat chat.checkpoint=outputs/checkpoints/lanbot/default/tiny/sft
    python -m lanbot.chat identity=sage chat.prompt="What is 17 * 23?"   # answer once and exit
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

from omegaconf import DictConfig
from rich.console import Console

import lanbot.core.identity  # noqa: F401  (schema and `slug` resolver)
from lanbot.core.app import Terminated
from lanbot.core.errors import LanbotError
from lanbot.evaluation.engine import Engine, Event
from lanbot.evaluation.inference import load_engine, resolve_checkpoint
from lanbot.training.tokenizer import render_for_completion

Message = dict[str, object]


class ChatError(LanbotError, ValueError):
    """A message the model cannot take (too long for its context); the message says what to shorten."""


def clean_input(text: str) -> tuple[str, int]:
    """(text, characters replaced): bytes that are not UTF-8 (read as lone surrogates) become U+FFFD, which the
    tokenizer takes (it refuses surrogates)."""
    try:
        raw = text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a surrogate that no byte stands for
        raw = text.encode("utf-8", "replace")
    clean = raw.decode("utf-8", "replace")
    return clean, clean.count("\ufffd") - text.count("\ufffd")


def fit_message(engine: Engine, message: str, max_tokens: int) -> tuple[str, str | None]:
    """(message, note): a message too long for the context on its own keeps its last tokens, and the note says so."""
    limit = engine.model.config.sequence_len
    budget = limit - max_tokens - len(render_for_completion(engine.tok, [{"role": "user", "content": ""}]))
    if budget < 1:
        raise ChatError(f"chat.max_tokens={max_tokens} leaves no room for a message in the model's context of "
                        f"{limit} tokens: lower chat.max_tokens")
    text = message[-limit * 64:]  # a huge paste: no token is longer than this, so nothing that could fit is lost
    ids = engine.tok.encode(text)
    if len(ids) <= budget and len(text) == len(message):
        return message, None
    keep = budget
    while keep > 0:
        text = engine.tok.decode(ids[-keep:]).lstrip("\ufffd")  # a cut may split a character's bytes
        if len(engine.tok.encode(text)) <= budget:
            break
        keep -= max(1, keep // 20)
    return text, (f"(the message is too long for the model's context of {limit} tokens with chat.max_tokens="
                  f"{max_tokens}: only its last {len(text):,} of {len(message):,} characters were read)")


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
    message, note = fit_message(engine, message, int(chat["max_tokens"]))
    if note:
        console.print(note, style="dim", markup=False)
    history, prompt = fit_history(engine, [*history, {"role": "user", "content": message}], int(chat["max_tokens"]))
    seed = None if chat.get("seed") is None else int(chat["seed"]) + turn
    console.print(f"{name}> ", style="bold magenta", end="", markup=False)
    events = []
    state = {"line_start": True}
    try:
        for event in engine.stream(prompt, max_tokens=int(chat["max_tokens"]),
                                   temperature=float(chat["temperature"]), top_k=chat.get("top_k"), seed=seed):
            events.append(event)
            show(console, event, state)
    except KeyboardInterrupt as exc:  # Ctrl-C stops this answer, not the chat (SIGTERM still ends it)
        if isinstance(exc, Terminated):
            raise
        console.print()
        console.print("  (stopped)", style="dim", markup=False)
    return [*history, {"role": "assistant", "content": content_of(events) or "…"}]


def chat_loop(engine: Engine, chat: DictConfig | dict, console: Console, name: str,
              read_line: Callable[[], str] | None = None) -> list[Message]:
    """The interactive conversation; returns the history when the user quits."""
    read_line = read_line or (lambda: console.input("[bold]you> [/bold]"))
    history: list[Message] = []
    turn = 0
    while True:
        try:
            line, replaced = clean_input(read_line())
        except (EOFError, KeyboardInterrupt):
            console.print()
            return history
        except UnicodeDecodeError:  # a stream that could not be set to keep undecodable bytes
            line, replaced = "", 1
        line = line.strip()
        if replaced:
            console.print("(note: that line was not all UTF-8 text; what could not be read is shown as \ufffd)",
                          style="dim", markup=False)
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
    if hasattr(sys.stdout, "reconfigure"):  # an ASCII terminal shows ? for what it cannot show, never a crash
        sys.stdout.reconfigure(errors="replace")
    console = Console()
    directory = resolve_checkpoint(cfg, cfg.chat.checkpoint, str(cfg.chat.stage))
    engine, meta = load_engine(cfg, directory, str(cfg.chat.device))
    name = str(cfg.identity.name)
    if cfg.chat.prompt:
        reply(engine, [], clean_input(str(cfg.chat.prompt))[0], cfg.chat, console, name)
        return
    console.print(f"Chatting with {name} ({meta.get('stage')} checkpoint {directory}, step {meta.get('step')}). "
                  "/clear forgets the conversation, /quit leaves.", style="dim", markup=False)
    if hasattr(sys.stdin, "reconfigure"):  # bytes that are not UTF-8 are kept (as surrogates), replaced later
        sys.stdin.reconfigure(errors="surrogateescape")
    chat_loop(engine, cfg.chat, console, name)
