"""The data format: one conversation per JSON line, as nanochat's CustomJSON reads it, and its rules.

This module is the format's one owner: validation, the role rule, the system-message merge, tool-call
listing and rendering for people; the tokenizer, the LLM parser, the mix loader, the nanochat export and
evaluation all call it. A conversation is a list of messages `{"role": "user"|"assistant", "content": ...}`, user first, roles
alternating, assistant last. Where the assistant calls the calculator, its content is a list of parts:
`{"type": "text", "text": ...}`, `{"type": "python", "text": "<expression>"}` and right after it
`{"type": "python_output", "text": "<result>"}`, the result always equal to lanbot's calculator's.

For the Hub and other trainers (TRL, Axolotl, chat templates) a conversation is also written as chat
messages (`to_messages` / `from_messages`): a string reply stays one assistant message; a reply with calls
becomes, per call, an assistant message whose `content` is the text before the call and whose `tool_calls`
holds it as `{"id": "call00001", "type": "function", "function": {"name": "calculator", "arguments":
{"expression": ...}}}`, then a `{"role": "tool", "tool_call_id": "call00001", "name": "calculator",
"content": <result>}` message, and last an assistant message with the closing text. A leading system
message (the upload's policy, `policy_system_message`) keeps a template's own default system prompt out.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lanbot.core.calculator import CalculatorError, calculate
from lanbot.core.errors import LanbotError


@dataclass(frozen=True)
class ConversationType:
    """One kind of conversation: what it is, how many `data=all` writes, and the rules it must keep.

    A new type is one `register_type(...)` call plus a template writer (lanbot.generation.template.writer);
    data presets, the LLM prompts and every mix pick it up by name.
    """

    name: str
    task: str                  # what the user asks and what the assistant does: the LLM writer's brief
    count: int | None = None   # conversations in `data=all` when data.counts does not name the type
    calls: int | None = 0      # calculator calls: 0 = none allowed, N = at least N, None = either
    plan_first: bool = False   # numbered steps (1. 2. ...) before the first call
    says_name: bool = False    # the identity's name must appear in the assistant's text


TYPE_SPECS: dict[str, ConversationType] = {}
TYPES: list[str] = []  # in registration order; changed in place, so every module that imported it sees new types


def register_type(spec: ConversationType) -> ConversationType:
    """Add (or replace) a conversation type; returns it."""
    if spec.name not in TYPE_SPECS:
        TYPES.append(spec.name)
    TYPE_SPECS[spec.name] = spec
    return spec


for _spec in (
    ConversationType("identity", "the user asks the assistant about itself (who or what it is, its name, who made "
                     "it and when, what it can and cannot do, whether it is some other AI). The assistant answers "
                     "truthfully from its identity, says its name, shows its personality and quirks, and uses no "
                     "calculator.", says_name=True),
    ConversationType("tool_use", "the user has an everyday word problem (a bill split, a tip, a discount, a unit "
                     "conversion, interest, an area, counting letters in a word). The assistant makes exactly one "
                     "calculator call and then states the result in words.", calls=1),
    ConversationType("multi_step_tool", "the user has a problem that needs 2 to 4 calculations where later ones reuse "
                     "earlier results. The assistant makes one calculator call per step, each followed by a "
                     "sentence, and ends with the answer.", calls=2),
    ConversationType("no_tool", "the user asks something that needs no calculator (a fact, advice, a definition, "
                     "creative writing or trivial arithmetic done in the head). The assistant answers helpfully "
                     "with text parts only, no calculator."),
    ConversationType("tool_planning", "the user has a multi-part calculation. The assistant first states its plan as "
                     "numbered steps (\"1. ... 2. ...\") in a text part, then makes the calculator calls, then "
                     "gives the answer.", calls=1, plan_first=True),
    ConversationType("reasoning", "the user asks a question that takes careful thought (letter counting, comparisons, "
                     "simple logic, unit reasoning). The assistant reasons step by step in text, with no "
                     "calculator, and gives a correct final answer."),
):
    register_type(_spec)


def tool_types() -> frozenset[str]:
    """The types that must call the calculator."""
    return frozenset(name for name, spec in TYPE_SPECS.items() if spec.calls)


TOOL_TYPES = tool_types()  # the built-in ones; call tool_types() to include types registered later
PART_TYPES = frozenset({"text", "python", "python_output"})
CALCULATOR_TOOL = "calculator"  # the tool's name in chat messages (`to_messages`)
# The n-th call's id (from 1): 9 letters and digits, the one id form Mistral's templates accept and every other takes.
CALL_ID = "call{:05d}"
# What system message the chat-message form opens with. lanbot's own form has none, but a template fills an
# absent one with its model's default ("You are Qwen, created by Alibaba Cloud. ...", SmolLM2's "You are a
# helpful AI assistant named SmolLM, ..."), which would then be trained into every example:
# "empty": an empty system message (what lanbot itself trains on: no system text, the identity in the weights);
# "identity": `You are <name>.` (the identity also said in the prompt, for a model to be served with it).
SYSTEM_POLICIES = ("empty", "identity")
# How a call's arguments are written: "object" ({"expression": ...}: what Qwen2.5/Qwen3, Llama 3.x, Hermes and
# Mistral templates `tojson`) or "string" (its JSON text: the OpenAI API's form, which DeepSeek's templates add
# to a string).
ARGUMENT_FORMS = ("object", "string")
MESSAGE_KEYS = ("role", "content", "tool_calls", "tool_call_id", "name")  # every message has each (a table column)

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


def expected_role(index: int) -> str:
    """The role of message `index`: user first, then alternating."""
    return "user" if index % 2 == 0 else "assistant"


def role_problem(index: int, role: Any) -> str | None:
    """The role rule for one message: None if `role` is the one expected at `index`."""
    expected = expected_role(index)
    return None if role == expected else f"message {index}: role {role!r}, expected {expected!r} (user first, alternating)"


def merge_system(messages: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """A leading system message folded into the first user message, as nanochat does (ValueError if no user follows)."""
    messages = list(messages)
    if messages and messages[0].get("role") == "system":
        if len(messages) < 2 or messages[1].get("role") != "user":
            raise ValueError("a system message must be followed by a user message")
        merged = {"role": "user", "content": f"{messages[0]['content']}\n\n{messages[1]['content']}"}
        messages = [merged, *messages[2:]]
    return messages


def part_calls(parts: Sequence[dict[str, Any]]) -> list[tuple[str, str]]:
    """Every (expression, output) pair in an assistant's list of parts, in order ("" for a missing output)."""
    calls = []
    for i, part in enumerate(parts):
        if part.get("type") == "python":
            nxt = parts[i + 1] if i + 1 < len(parts) else {}
            calls.append((part.get("text", ""), nxt.get("text", "") if nxt.get("type") == "python_output" else ""))
    return calls


def render_parts(parts: Sequence[dict[str, Any]], calls: str = "inline") -> str:
    """An assistant's parts as one string for people: each call `[calc 2+3 = 5]` (inline) or, as nanochat's
    CustomJSON writes tool use in plain text, `<<2+3=5>>` (calls="nanochat")."""
    chunks = []
    for i, part in enumerate(parts):
        kind, text = part.get("type"), str(part.get("text", "")).strip()
        if kind == "text":
            chunks.append(text)
        elif kind == "python":
            nxt = parts[i + 1] if i + 1 < len(parts) else {}
            result = str(nxt.get("text", "")).strip() if nxt.get("type") == "python_output" else ""
            chunks.append(f"<<{text}={result}>>" if calls == "nanochat" else f"[calc {text} = {result}]")
    return " ".join(chunk for chunk in chunks if chunk)


def render_text(conversation: Conversation) -> str:
    """A conversation for people: one `role: text` line per message, calculator calls inline."""
    return "\n".join(f"{m['role']}: {m['content'] if isinstance(m['content'], str) else render_parts(m['content'])}"
                     for m in conversation)


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
    return [call for m in conversation if m.get("role") == "assistant" and isinstance(m.get("content"), list)
            for call in part_calls(m["content"])]


def policy_system_message(policy: str, identity_name: str) -> str:
    """The system message `policy` (one of SYSTEM_POLICIES) writes for an identity; ValueError for another."""
    if policy == "empty":
        return ""
    if policy == "identity":
        return f"You are {identity_name}."
    raise ValueError(f"system message policy {policy!r}: choose {' or '.join(SYSTEM_POLICIES)}")


def _message(role: str, content: str, **fields: Any) -> dict[str, Any]:
    return {"role": role, "content": content, **{key: fields.get(key) for key in MESSAGE_KEYS[2:]}}


def to_messages(conversation: Conversation, system: str | None = None, arguments: str = "object") -> list[dict[str, Any]]:
    """The conversation as chat messages with tool calls (the module docstring's form), each message with the
    same keys (MESSAGE_KEYS, None where a message has no such field), as a table column needs them.

    `system`: a system message to open with (policy_system_message), None for none; `arguments`: the form
    of a call's arguments (ARGUMENT_FORMS). Exact both ways for lanbot's own conversations: `from_messages`
    with the same `system` gives back the same list. A reply whose parts are not text and calls taking turns
    (two text parts in a row, or parts without any call), or a call without its output, raises ValueError:
    it has no one-to-one form as messages.
    """
    if arguments not in ARGUMENT_FORMS:
        raise ValueError(f"tool call arguments {arguments!r}: choose {' or '.join(ARGUMENT_FORMS)}")
    out: list[dict[str, Any]] = [] if system is None else [_message("system", system)]
    calls = 0
    for i, message in enumerate(conversation):
        content = message["content"]
        if isinstance(content, str):
            out.append(_message(message["role"], content))
            continue
        kinds = [part.get("type") for part in content]
        if "python" not in kinds:
            raise ValueError(f"message {i}: a list of parts without a calculator call (write the text as a string)")
        text: str | None = None
        j = 0
        while j < len(content):
            kind, value = kinds[j], content[j].get("text", "")
            if kind == "text":
                if text is not None:
                    raise ValueError(f"message {i} part {j}: two text parts in a row (join them into one)")
                text = value
            elif kind == "python" and j + 1 < len(content) and kinds[j + 1] == "python_output":
                calls += 1
                call_id = CALL_ID.format(calls)
                args: dict[str, str] | str = {"expression": value}
                if arguments == "string":
                    args = json.dumps(args, ensure_ascii=False)
                call = {"id": call_id, "type": "function", "function": {"name": CALCULATOR_TOOL, "arguments": args}}
                out.append(_message("assistant", text or "", tool_calls=[call]))
                out.append(_message("tool", content[j + 1].get("text", ""), tool_call_id=call_id, name=CALCULATOR_TOOL))
                text, j = None, j + 1
            else:
                raise ValueError(f"message {i} part {j}: a {kind!r} part where a text or a python call with its "
                                 "python_output belongs")
            j += 1
        if text is not None:
            out.append(_message("assistant", text))
    return out


def from_messages(messages: Sequence[dict[str, Any]], system: Collection[str] = ("",)) -> Conversation:
    """A conversation from chat messages in `to_messages`' form: the assistant and tool messages after a user
    message are one reply, a list of parts where they hold a call (ValueError for a message it cannot read).

    A leading system message whose text is one of `system` (by default the empty one, which says nothing) is
    the policy's (lanbot's form has none) and is dropped; any other system message is kept. Call ids and tool names are the form's, not lanbot's: dropped.
    Arguments are read in either form (ARGUMENT_FORMS)."""
    if messages and messages[0].get("role") == "system" and (messages[0].get("content") or "") in system:
        messages = messages[1:]
    conversation: Conversation = []
    reply: list[dict[str, Any]] = []

    def close() -> None:
        if not reply:
            return
        if len(reply) == 1 and not reply[0].get("tool_calls"):
            conversation.append({"role": "assistant", "content": reply[0].get("content") or ""})
        else:
            parts: list[dict[str, str]] = []
            for m in reply:
                if m["role"] == "tool":
                    parts.append({"type": "python_output", "text": m.get("content") or ""})
                    continue
                if m.get("content"):
                    parts.append({"type": "text", "text": m["content"]})
                for call in m.get("tool_calls") or []:
                    arguments = (call.get("function") or {}).get("arguments") or {}
                    if isinstance(arguments, str):  # the string form: arguments as JSON text
                        arguments = json.loads(arguments)
                    parts.append({"type": "python", "text": str(arguments.get("expression", ""))})
            conversation.append({"role": "assistant", "content": parts})
        reply.clear()

    for i, message in enumerate(messages):
        role = message.get("role")
        if role in ("user", "system"):
            close()
            conversation.append({"role": role, "content": message.get("content") or ""})
        elif role in ("assistant", "tool"):
            reply.append(message)
        else:
            raise ValueError(f"message {i}: role {role!r}, expected user, assistant or tool")
    close()
    return conversation


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
        wrong = role_problem(i, message["role"])
        if wrong:
            problems.append(wrong)
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
    spec = TYPE_SPECS.get(kind)
    if spec is None:
        return [f"unknown conversation type {kind!r}; the types are {', '.join(TYPES)}"]
    calls = tool_calls(conversation)
    if spec.calls and len(calls) < spec.calls:
        problems.append(f"{kind} needs at least {spec.calls} calculator call(s), found {len(calls)}")
    if spec.calls == 0 and calls:
        problems.append(f"{kind} must not call the calculator, found {len(calls)} call(s)")
    if spec.plan_first and not _has_plan_before_first_call(conversation):
        problems.append(f"{kind} must state numbered steps (1. 2. ...) before the first calculator call")
    if spec.says_name and identity_name and identity_name.lower() not in assistant_text(conversation).lower():
        problems.append(f"{kind} conversation never says the name {identity_name!r}")
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
