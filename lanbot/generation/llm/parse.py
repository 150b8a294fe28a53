"""An LLM's JSON answer -> a nanochat conversation, with every calculator result recomputed.

`parse_answer(text, arithmetic)` reads the reply (strict JSON, else the JSON object inside plain text or a
code fence), checks roles and parts, and turns `{"type": "calculator", "expression": ...}` parts into
nanochat's `{"type": "python"}` + `{"type": "python_output"}` pair, the output computed by
lanbot.core.calculator: the LLM's arithmetic is never trusted. Where the LLM stated a result (its "result" field)
that disagrees, `arithmetic="repair"` puts the calculator's value in its place in the following text
(counted as repaired) and `"reject"` refuses the conversation. Anything unusable raises InvalidAnswer.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from lanbot.core.calculator import CalculatorError, calculate
from lanbot.core.conversation import role_problem
from lanbot.core.errors import LanbotError

MARKERS = ("<|python_start|>", "<|python_end|>", "<|output_start|>", "<|output_end|>", "<|assistant", "<|user")
_FENCE = re.compile(r"```(?:json)?\s*(\{.*\})\s*```", re.S)


class InvalidAnswer(LanbotError, ValueError):
    """The reply cannot become a valid conversation; `reason` is a short tag counted in the run's stats."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


@dataclass
class Parsed:
    conversation: list[dict]
    repaired: int  # calculator results the LLM got wrong and that were corrected in the text


def extract_json(text: str) -> Any:
    """The JSON value in `text`: the whole text, else a fenced block, else the outermost {...}."""
    text = text.strip()
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        pass
    match = _FENCE.search(text)
    candidates = [match.group(1)] if match else []
    start, end = text.find("{"), text.rfind("}")
    if 0 <= start < end:
        candidates.append(text[start : end + 1])
    for candidate in candidates:
        try:
            return json.loads(candidate)
        except json.JSONDecodeError:
            continue
    raise InvalidAnswer("json", f"no JSON object in the reply ({text[:80]!r}...)")


def parse_answer(text: str, arithmetic: str = "repair") -> Parsed:
    """The conversation in the reply `text`; raises InvalidAnswer saying what is wrong."""
    data = extract_json(text)
    messages = data.get("messages") if isinstance(data, dict) else data
    if not isinstance(messages, list) or len(messages) < 2:
        raise InvalidAnswer("json", "expected {'messages': [...]} with at least 2 messages")
    conversation, repaired = [], 0
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise InvalidAnswer("roles", f"message {i} is not an object")
        role = message.get("role")
        wrong = role_problem(i, role)
        if wrong:
            raise InvalidAnswer("roles", wrong)
        if role == "user":
            content = _plain_text(message)
            if not content:
                raise InvalidAnswer("empty", f"message {i}: empty user message")
            conversation.append({"role": "user", "content": content})
        else:
            content, fixed = _assistant_content(message, i, arithmetic)
            repaired += fixed
            conversation.append({"role": "assistant", "content": content})
    if conversation[-1]["role"] != "assistant":
        raise InvalidAnswer("roles", "the last message must be the assistant's")
    return Parsed(conversation, repaired)


def _plain_text(message: dict) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content.strip()
    parts = message.get("parts") or (content if isinstance(content, list) else [])
    return " ".join(str(p.get("text", "")).strip() for p in parts if isinstance(p, dict)).strip()


def _assistant_content(message: dict, i: int, arithmetic: str) -> tuple[str | list[dict], int]:
    parts = message.get("parts")
    if parts is None:
        parts = message.get("content")
    if isinstance(parts, str):
        parts = [{"type": "text", "text": parts}]
    if not isinstance(parts, list) or not parts:
        raise InvalidAnswer("empty", f"message {i}: the assistant message has no parts")
    out: list[dict] = []
    repaired = 0
    fixes: list[tuple[str, str]] = []  # (claimed, true) results to put right in the text that follows
    for j, part in enumerate(parts):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            text = str(part.get("text") or "").strip()
            if any(marker in text for marker in MARKERS):
                raise InvalidAnswer("markers", f"message {i} part {j}: tool markers written as text")
            for claimed, true in fixes:
                text = _replace_number(text, claimed, true)
            if text:
                if out and out[-1]["type"] == "text":
                    out[-1]["text"] += "\n" + text
                else:
                    out.append({"type": "text", "text": text})
        elif kind in ("calculator", "python", "tool_call"):
            expression = str(part.get("expression") or part.get("text") or "").strip()
            try:
                result = calculate(expression)
            except CalculatorError as exc:
                raise InvalidAnswer("calculator", f"message {i} part {j}: {expression!r}: {exc}") from None
            claimed = str(part.get("result") or "").strip()
            if claimed and not _same_number(claimed, result):
                if arithmetic == "reject":
                    raise InvalidAnswer("arithmetic", f"{expression} = {result}, the LLM said {claimed}")
                fixes.append((claimed, result))
                repaired += 1
            out += [{"type": "python", "text": expression}, {"type": "python_output", "text": result}]
        else:
            raise InvalidAnswer("parts", f"message {i} part {j}: unknown part type {kind!r}")
    if not any(p["type"] == "text" for p in out):
        raise InvalidAnswer("empty", f"message {i}: the assistant says nothing in text")
    if all(p["type"] == "text" for p in out):
        return "\n".join(p["text"] for p in out), repaired
    return out, repaired


def _number(text: str) -> float | None:
    try:
        return float(text.replace(",", "").replace("$", "").strip())
    except ValueError:
        return None


def _same_number(claimed: str, true: str) -> bool:
    """Whether the LLM's claim is the calculator's result, allowing the claim's own rounding."""
    a, b = _number(claimed), _number(true)
    if a is None or b is None:
        return claimed.strip() == true.strip()
    decimals = len(claimed.split(".")[1]) if "." in claimed else 0
    return abs(a - b) <= 1e-9 * max(1.0, abs(b)) or round(b, decimals) == a


def _replace_number(text: str, claimed: str, true: str) -> str:
    """`text` with the claimed number (as a whole number token) replaced by the true one."""
    return re.sub(rf"(?<![\d.]){re.escape(claimed)}(?![\d]|\.\d)", true, text)
