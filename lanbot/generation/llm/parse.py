"""An LLM's JSON answer -> a nanochat conversation, with every calculator result recomputed.

`parse_answer(text, arithmetic)` reads the reply (JSON, else the JSON object inside plain text or a code
fence), checks roles, parts and their types, and turns `{"type": "calculator", "expression": ...}` parts
into nanochat's `{"type": "python"}` + `{"type": "python_output"}` pair, the output computed by
lanbot.core.calculator: the LLM's arithmetic is never trusted. Two places hold the LLM's own arithmetic:

- a calculator part's stated "result": where it disagrees, `arithmetic="repair"` puts the calculator's value
  in place of the numbers that came from it (the wrong number in the text after the call and in later
  expressions), only where that is unambiguous: the wrong number appears nowhere before the call (its own
  expression included), and after it at most once unless it has 3 or more digits. Otherwise, and with `"reject"`, the answer is
  refused: a repair never touches "Step 1" or "year 1" because a wrong result happened to be 1.
- arithmetic written as plain text ("12*7 = 85", "3 × 4 = 12"): each `<expression> = <number>` in the
  assistant's text is computed by the calculator; a wrong one is repaired (that number only) or rejected
  (always rejected where the wrong number is used again later in the text).

Anything unusable raises InvalidAnswer with a short reason (json, roles, types, surrogates, ...), counted
in the run's stats.
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
_NUM = r"\d+(?:,\d{3})*(?:\.\d+)?"
_OPERAND = rf"\(*{_NUM}\)*"
_OP = r"(?:\s*[-+*/×÷^]\s*|\s+x\s+)"
# `<expression with at least one operator> = <number>`, not continuing a longer expression or a word
_TEXT_ARITHMETIC = re.compile(
    rf"(?<![\w.,)])(?<![-+*/×÷^=])(?<![-+*/×÷^=]\s)(-?{_OPERAND}(?:{_OP}{_OPERAND})+)\s*=\s*(-?{_NUM})(?![\d]|\.\d|\s*[-+*/×÷^]\s*\d)"
)
DISTINCT_DIGITS = 3  # a wrong result this long, repeated after its call, is that result; "1" or "12" may be anything
_TO_PYTHON = str.maketrans({"×": "*", "÷": "/", "^": "**"})


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
    """The JSON value in `text`: the whole text, else a fenced block, else the outermost {...}.

    Control characters inside strings (raw newlines, as grammar-constrained local models write them) are
    accepted: they are text, not a broken answer.
    """
    text = text.strip()
    try:
        return json.loads(text, strict=False)
    except json.JSONDecodeError:
        pass
    match = _FENCE.search(text)
    candidates = [match.group(1)] if match else []
    start, end = text.find("{"), text.rfind("}")
    if 0 <= start < end:
        candidates.append(text[start : end + 1])
    for candidate in candidates:
        try:
            return json.loads(candidate, strict=False)
        except json.JSONDecodeError:
            continue
    raise InvalidAnswer("json", f"no JSON object in the reply ({text[:80]!r}...)")


def is_prose(text: str) -> bool:
    """Whether a reply is prose with no attempt at JSON at all (a server ignoring the response format)."""
    return "{" not in text


def parse_answer(text: str, arithmetic: str = "repair") -> Parsed:
    """The conversation in the reply `text`; raises InvalidAnswer saying what is wrong."""
    data = extract_json(text)
    try:  # "\ud800" escapes decode to lone surrogates: the calculator and the UTF-8 data files refuse them
        json.dumps(data, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidAnswer("surrogates", "the answer holds lone surrogates (not valid Unicode)") from None
    messages = data.get("messages") if isinstance(data, dict) else data
    if isinstance(messages, dict):  # the ordered form a grammar-constrained schema asks for: {user_1, ...}
        messages = list(messages.values())
    if not isinstance(messages, list) or len(messages) < 2:
        raise InvalidAnswer("json", "expected {'messages': [...]} with at least 2 messages")
    conversation, repaired = [], 0
    before: list[str] = []  # every text and expression so far: where a wrong result's number must not be
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise InvalidAnswer("roles", f"message {i} is not an object")
        role = message.get("role")
        wrong = role_problem(i, role)
        if wrong:
            raise InvalidAnswer("roles", wrong)
        if role == "user":
            content = _plain_text(message, i)
            if not content:
                raise InvalidAnswer("empty", f"message {i}: empty user message")
            conversation.append({"role": "user", "content": content})
            before.append(content)
        else:
            content, fixed = _assistant_content(message, i, arithmetic, before)
            repaired += fixed
            conversation.append({"role": "assistant", "content": content})
    if conversation[-1]["role"] != "assistant":
        raise InvalidAnswer("roles", "the last message must be the assistant's")
    return Parsed(conversation, repaired)


def _text(value: Any, where: str) -> str:
    """A text field: a string (None = empty); any other type is an invalid answer, never str()-ed."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidAnswer("types", f"{where} is a {type(value).__name__}, not text")
    return value.strip()


def _plain_text(message: dict, i: int) -> str:
    content = message.get("content")
    if content is None or isinstance(content, str):
        parts = message.get("parts")
        if content is None and isinstance(parts, list):
            content = parts
        else:
            return _text(content, f"message {i} content")
    if not isinstance(content, list):
        raise InvalidAnswer("types", f"message {i} content is a {type(content).__name__}, not text")
    return " ".join(_text(p.get("text"), f"message {i} part text") for p in content if isinstance(p, dict)).strip()


def _assistant_content(message: dict, i: int, arithmetic: str, before: list[str]) -> tuple[str | list[dict], int]:
    parts = message.get("parts")
    if parts is None:
        parts = message.get("content")
    if isinstance(parts, str):
        parts = [{"type": "text", "text": parts}]
    if isinstance(parts, dict):  # the ordered form a grammar-constrained schema asks for: {intro, call_1, ...}
        parts = list(parts.values())
    if not isinstance(parts, list) or not parts:
        raise InvalidAnswer("empty", f"message {i}: the assistant message has no parts")
    items: list[dict] = []  # checked parts: {"type": "text", "text"} or {"type": "calc", "expression", "result"}
    for j, part in enumerate(parts):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            items.append({"type": "text", "text": _text(part.get("text"), f"message {i} part {j} text")})
        elif kind == "plan":  # {"type": "plan", "steps": [...]} -> "1. ...\n2. ..."
            steps = part.get("steps")
            if not isinstance(steps, list):
                raise InvalidAnswer("types", f"message {i} part {j}: plan steps are not a list")
            steps = [_text(step, f"message {i} part {j} step") for step in steps]
            items.append({"type": "text", "text": "\n".join(f"{n}. {t}" for n, t in enumerate(steps, 1) if t)})
        elif kind in ("calculator", "python", "tool_call"):
            expression = _text(part.get("expression") if part.get("expression") is not None else part.get("text"),
                               f"message {i} part {j} expression").rstrip(" ,;")  # "2 * 3," is not a tuple
            claimed = part.get("result")
            if isinstance(claimed, int | float) and not isinstance(claimed, bool):
                claimed = str(claimed)
            items.append({"type": "calc", "expression": expression,
                          "claimed": _text(claimed, f"message {i} part {j} result"), "where": f"{i}/{j}"})
        else:
            raise InvalidAnswer("parts", f"message {i} part {j}: unknown part type {kind!r}")
    repaired = 0
    out: list[dict] = []
    for j, item in enumerate(items):
        if item["type"] == "text":
            text = item["text"]
            if any(marker in text for marker in MARKERS):
                raise InvalidAnswer("markers", f"message {i} part {j}: tool markers written as text")
            text, fixed = check_text_arithmetic(text, arithmetic)
            repaired += fixed
            before.append(text)
            if text:
                if out and out[-1]["type"] == "text":
                    out[-1]["text"] += "\n" + text
                else:
                    out.append({"type": "text", "text": text})
            continue
        expression = item["expression"]
        try:
            result = calculate(expression)
        except CalculatorError as exc:
            raise InvalidAnswer("calculator", f"message {i} part {j}: {expression!r}: {exc}") from None
        claimed = item["claimed"]
        if claimed and not _same_number(claimed, result):
            if arithmetic == "reject":
                raise InvalidAnswer("arithmetic", f"{expression} = {result}, the LLM said {claimed}")
            _repair_after(items, j, claimed, result, before + [expression])
            repaired += 1
        before.append(expression)
        out += [{"type": "python", "text": expression}, {"type": "python_output", "text": result}]
    if not any(p["type"] == "text" for p in out):
        raise InvalidAnswer("empty", f"message {i}: the assistant says nothing in text")
    if all(p["type"] == "text" for p in out):
        return "\n".join(p["text"] for p in out), repaired
    return out, repaired


def _repair_after(items: list[dict], j: int, claimed: str, true: str, before: list[str]) -> None:
    """Put `true` in place of the wrong result `claimed` in the parts after `items[j]`, where unambiguous."""
    pattern = _number_pattern(claimed)
    if any(pattern.search(text) for text in before):
        raise InvalidAnswer("arithmetic", f"the wrong result {claimed} (true: {true}) also appears before the "
                                          "call: which numbers came from it is ambiguous")
    later_text = sum(len(pattern.findall(item["text"])) for item in items[j + 1:] if item["type"] == "text")
    if later_text > 1 and sum(c.isdigit() for c in claimed) < DISTINCT_DIGITS:
        raise InvalidAnswer("arithmetic", f"the wrong result {claimed} (true: {true}) appears {later_text} times "
                                          "after the call: which came from it is ambiguous")
    for item in items[j + 1:]:
        key = "text" if item["type"] == "text" else "expression"
        item[key] = pattern.sub(true, item[key])


def check_text_arithmetic(text: str, arithmetic: str = "repair") -> tuple[str, int]:
    """`text` with each wrong `<expression> = <number>` repaired (or InvalidAnswer under reject)."""
    fixed = 0

    def check(match: re.Match) -> str:
        nonlocal fixed
        expression, claimed = match.group(1), match.group(2)
        try:
            true = calculate(re.sub(r"\s+x\s+", " * ", expression.replace(",", "")).translate(_TO_PYTHON))
        except CalculatorError:
            return match.group(0)  # not arithmetic the calculator reads (unbalanced, too big): left as is
        if _same_number(claimed, true):
            return match.group(0)
        if arithmetic == "reject":
            raise InvalidAnswer("arithmetic", f"the text says {expression} = {claimed}; the calculator: {true}")
        if _number_pattern(claimed).search(text, match.end()):  # the wrong number goes on being used: reject
            raise InvalidAnswer("arithmetic", f"the text says {expression} = {claimed} (the calculator: {true}) "
                                              f"and uses {claimed} again after it")
        fixed += 1
        return match.group(0)[: match.start(2) - match.start(0)] + true

    return _TEXT_ARITHMETIC.sub(check, text), fixed


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


def _number_pattern(claimed: str) -> re.Pattern:
    """The claimed number as a whole number token (not part of a longer number)."""
    return re.compile(rf"(?<![\d.]){re.escape(claimed)}(?![\d]|\.\d)")
