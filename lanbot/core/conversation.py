"""The data format: one conversation per JSON line, as nanochat's CustomJSON reads it, and its rules.

A conversation is a list of messages `{"role": "user"|"assistant", "content": ...}`, user first, roles
alternating, assistant last. Where the assistant calls the calculator, its content is a list of parts:
`{"type": "text", "text": ...}`, `{"type": "python", "text": "<expression>"}` and right after it
`{"type": "python_output", "text": "<result>"}`, the result always equal to lanbot's calculator's.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from lanbot.core.calculator import CalculatorError, calculate
from lanbot.core.errors import LanbotError

TYPES: tuple[str, ...] = ("identity", "tool_use", "multi_step_tool", "no_tool", "tool_planning", "reasoning")
TOOL_TYPES = frozenset({"tool_use", "multi_step_tool", "tool_planning"})
MIN_CALLS = {"tool_use": 1, "multi_step_tool": 2, "tool_planning": 1}
PART_TYPES = frozenset({"text", "python", "python_output"})

Conversation = list[dict[str, Any]]


class BadLine(LanbotError, ValueError):
    """A JSONL line that is not valid JSON; the message starts with `<file>:<line>:`."""


def read_jsonl(path: str | Path, skip_bad: bool = False) -> Iterator[tuple[int, Any]]:
    """(line number, value) of every non-blank line of a JSONL file.

    A line that is not JSON raises BadLine naming the file and line, or with `skip_bad` is passed over
    (the torn last line of an interrupted write, where only reading matters)."""
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except json.JSONDecodeError as exc:
                if skip_bad:
                    continue
                raise BadLine(f"{path}:{number}: not valid JSON ({exc.msg})") from exc
            yield number, value






def text_of(content: str | list[dict[str, str]]) -> str:
    """The readable text of a message's content (parts joined; tool calls shown as the expression)."""
    if isinstance(content, str):
        return content
    return " ".join(part.get("text", "") for part in content)


def assistant_text(conversation: Conversation) -> str:
    """All assistant text of a conversation, in order, tool parts excluded."""
    chunks = []
    for message in conversation:
        if message.get("role") != "assistant":
            continue
        content = message.get("content")
        if isinstance(content, str):
            chunks.append(content)
        elif isinstance(content, list):
            chunks.extend(p.get("text", "") for p in content if p.get("type") == "text")
    return "\n".join(chunks)


def tool_calls(conversation: Conversation) -> list[tuple[str, str]]:
    """Every (expression, output) pair the assistant produced, in order."""
    calls = []
    for message in conversation:
        content = message.get("content")
        if message.get("role") == "assistant" and isinstance(content, list):
            for i, part in enumerate(content):
                if part.get("type") == "python":
                    nxt = content[i + 1] if i + 1 < len(content) else {}
                    calls.append((part.get("text", ""), nxt.get("text", "") if nxt.get("type") == "python_output" else ""))
    return calls


def validate(conversation: Any, kind: str | None = None, identity_name: str | None = None) -> list[str]:
    """Every rule the conversation breaks, as readable problems; an empty list means it is valid.

    `kind` adds the type's rules (tool calls required or forbidden, a plan before the first call);
    `identity_name` requires an identity conversation to say the name.
    """
    if not isinstance(conversation, list) or len(conversation) < 2:
        return ["a conversation is a list of at least 2 messages"]
    problems: list[str] = []
    for i, message in enumerate(conversation):
        where = f"message {i}"
        if not isinstance(message, dict) or set(message) != {"role", "content"}:
            problems.append(f"{where}: must be an object with exactly 'role' and 'content'")
            continue
        expected = "user" if i % 2 == 0 else "assistant"
        if message["role"] != expected:
            problems.append(f"{where}: role is {message['role']!r}, expected {expected!r} (roles alternate from user)")
        content = message["content"]
        if isinstance(content, str):
            if not content.strip():
                problems.append(f"{where}: empty content")
        elif isinstance(content, list) and message["role"] == "assistant":
            problems.extend(f"{where}: {p}" for p in _part_problems(content))
        else:
            problems.append(f"{where}: content must be text (or, for the assistant, a list of parts)")
    if conversation[-1].get("role") != "assistant" if isinstance(conversation[-1], dict) else True:
        problems.append("the last message must be the assistant's")
    if problems or kind is None:
        return problems
    calls = tool_calls(conversation)
    if kind in TOOL_TYPES and len(calls) < MIN_CALLS[kind]:
        problems.append(f"{kind} needs at least {MIN_CALLS[kind]} calculator call(s), found {len(calls)}")
    if kind not in TOOL_TYPES and calls:
        problems.append(f"{kind} must not call the calculator, found {len(calls)} call(s)")
    if kind == "tool_planning" and not _has_plan_before_first_call(conversation):
        problems.append("tool_planning must state numbered steps (1. 2. ...) before the first calculator call")
    if kind == "identity" and identity_name and identity_name.lower() not in assistant_text(conversation).lower():
        problems.append(f"identity conversation never says the name {identity_name!r}")
    return problems


def _part_problems(parts: list) -> list[str]:
    problems = []
    if not parts:
        return ["empty list of parts"]
    for j, part in enumerate(parts):
        if not isinstance(part, dict) or set(part) != {"type", "text"} or part.get("type") not in PART_TYPES:
            problems.append(f"part {j}: must be {{'type': text|python|python_output, 'text': str}}")
            continue
        if not isinstance(part["text"], str) or not part["text"].strip():
            problems.append(f"part {j}: empty {part['type']} text")
            continue
        prev = parts[j - 1] if j > 0 else None
        nxt = parts[j + 1] if j + 1 < len(parts) else None
        if part["type"] == "python":
            if not (isinstance(nxt, dict) and nxt.get("type") == "python_output"):
                problems.append(f"part {j}: a python call must be followed by its python_output")
                continue
            try:
                expected = calculate(part["text"])
            except CalculatorError as exc:
                problems.append(f"part {j}: calculator refuses {part['text']!r}: {exc}")
                continue
            if str(nxt.get("text", "")).strip() != expected:
                problems.append(f"part {j + 1}: python_output {nxt.get('text')!r} but the calculator says {expected!r}")
        elif part["type"] == "python_output" and not (isinstance(prev, dict) and prev.get("type") == "python"):
            problems.append(f"part {j}: python_output must follow a python call")
    if not any(isinstance(p, dict) and p.get("type") == "text" for p in parts):
        problems.append("an assistant message with tool calls also needs text")
    return problems


_STEP = re.compile(r"(?m)(^|\s)1[.)]\s.*?(^|\s)2[.)]\s", re.S)


def _has_plan_before_first_call(conversation: Conversation) -> bool:
    for message in conversation:
        content = message["content"]
        if message["role"] != "assistant" or not isinstance(content, list):
            continue
        before = []
        for part in content:
            if part["type"] == "python":
                return bool(_STEP.search(" ".join(before)))
            if part["type"] == "text":
                before.append(part["text"])
    return False


_NON_WORD = re.compile(r"[^\w]+", re.UNICODE)


def normalise(conversation: Conversation) -> str:
    """The conversation's text, lower case, punctuation and spacing collapsed: near duplicates match."""
    text = " ".join(text_of(m.get("content", "")) for m in conversation)
    return _NON_WORD.sub(" ", text.lower()).strip()


def dedup_key(conversation: Conversation) -> bytes:
    """A 16-byte digest of the normalised text: what two near-duplicate conversations share."""
    return hashlib.blake2b(normalise(conversation).encode(), digest_size=16).digest()
