"""The data format's rules (lanbot.core.conversation): what validate accepts and refuses, and near-duplicate keys."""

from __future__ import annotations

import copy

import pytest

from lanbot.core.conversation import (
    ARGUMENT_FORMS,
    TYPES,
    assistant_text,
    dedup_key,
    from_messages,
    normalise,
    policy_system_message,
    to_messages,
    tool_calls,
    validate,
)
from lanbot.core.layout import COMBINED_FILE, conversations_file


def user(text):
    return {"role": "user", "content": text}


def assistant(content):
    return {"role": "assistant", "content": content}


TOOL = [user("What is 15% of 80?"), assistant([
    {"type": "text", "text": "Let me compute that."},
    {"type": "python", "text": "80 * 0.15"},
    {"type": "python_output", "text": "12"},
    {"type": "text", "text": "It is 12."},
])]
CHAIN = [user("Two steps please"), assistant([
    {"type": "text", "text": "Plan:\n1. Add the items.\n2. Add the tip."},
    {"type": "python", "text": "12.5 + 7.5"}, {"type": "python_output", "text": "20"},
    {"type": "text", "text": "Now the tip."},
    {"type": "python", "text": "20 * 1.15"}, {"type": "python_output", "text": "23"},
    {"type": "text", "text": "23 in total."},
])]
IDENTITY = [user("who are you?"), assistant("I'm Sage, made by Your Company."),
            user("and what can you do?"), assistant("I explain things step by step.")]


def test_names_of_files():
    assert tuple(TYPES) == ("identity", "tool_use", "multi_step_tool", "no_tool", "tool_planning", "reasoning")
    assert conversations_file("identity") == "identity_conversations.jsonl"
    assert COMBINED_FILE == "all_conversations.jsonl" and COMBINED_FILE not in {conversations_file(k) for k in TYPES}


def test_good_conversations_pass():
    assert validate(TOOL, "tool_use") == []
    assert validate(CHAIN, "multi_step_tool") == []
    assert validate(CHAIN, "tool_planning") == []
    assert validate(IDENTITY, "identity", "Sage") == []
    assert validate([user("hi"), assistant("hello")], "no_tool") == []


@pytest.mark.parametrize("conversation, problem", [
    ([], "at least 2 messages"),
    ({"role": "user"}, "at least 2 messages"),
    ([user("hi")], "at least 2 messages"),
    ([assistant("hi"), user("hello")], "expected 'user'"),
    ([user("a"), user("b")], "expected 'assistant'"),
    ([user("a"), assistant("b"), user("c")], "last message must be the assistant's"),
    ([user("  "), assistant("b")], "empty content"),
    ([user("a"), {"role": "assistant", "content": "b", "name": "x"}], "exactly 'role' and 'content'"),
    ([user(["a"]), assistant("b")], "content must be text"),
    ([user("a"), assistant([])], "empty list of parts"),
    ([user("a"), assistant([{"type": "image", "text": "x"}])], "part 0"),
    ([user("a"), assistant([{"type": "python", "text": "1+1"}, {"type": "text", "text": "2"}])],
     "must be followed by its python_output"),
    ([user("a"), assistant([{"type": "python_output", "text": "2"}, {"type": "text", "text": "2"}])],
     "must follow a python call"),
    ([user("a"), assistant([{"type": "python", "text": "1+1"}, {"type": "python_output", "text": "3"},
                            {"type": "text", "text": "3"}])], "the calculator says '2'"),
    ([user("a"), assistant([{"type": "python", "text": "__import__('os')"}, {"type": "python_output", "text": "0"},
                            {"type": "text", "text": "x"}])], "calculator refuses"),
    ([user("a"), assistant([{"type": "python", "text": "1+1"}, {"type": "python_output", "text": "2"}])],
     "also needs text"),
])
def test_broken_conversations_say_what_is_wrong(conversation, problem):
    problems = validate(conversation)
    assert problems and any(problem in p for p in problems), problems


def test_type_rules():
    assert "tool_use needs at least 1 calculator call(s), found 0" in validate([user("a"), assistant("b")], "tool_use")
    assert any("at least 2" in p for p in validate(TOOL, "multi_step_tool"))
    assert any("must not call the calculator" in p for p in validate(TOOL, "no_tool"))
    assert any("must not call the calculator" in p for p in validate(TOOL, "reasoning"))
    assert any("numbered steps" in p for p in validate(TOOL, "tool_planning"))
    assert any("never says the name 'Dev'" in p for p in validate(IDENTITY, "identity", "Dev"))


def test_tool_calls_and_assistant_text():
    assert tool_calls(CHAIN) == [("12.5 + 7.5", "20"), ("20 * 1.15", "23")]
    assert assistant_text(TOOL) == "Let me compute that.\nIt is 12."
    assert "80 * 0.15" not in assistant_text(TOOL)


def test_near_duplicates_share_a_key_and_different_ones_do_not():
    variant = copy.deepcopy(IDENTITY)
    variant[0]["content"] = "Who are you??"
    variant[1]["content"] = "I'm  SAGE, made by Your Company!"
    assert normalise(variant) == normalise(IDENTITY)
    assert dedup_key(variant) == dedup_key(IDENTITY) and len(dedup_key(IDENTITY)) == 16
    other = copy.deepcopy(IDENTITY)
    other[1]["content"] = "I'm Sage, built by Your Company."
    assert dedup_key(other) != dedup_key(IDENTITY)
    assert dedup_key(TOOL) != dedup_key(CHAIN)


def test_read_jsonl_numbers_lines_skips_blanks_and_names_a_bad_line(tmp_path):
    import pytest

    from lanbot.core.conversation import BadLine, read_jsonl

    path = tmp_path / "x.jsonl"
    path.write_text('[1]\n\n[2]\n{"torn": \n', encoding="utf-8")
    assert list(read_jsonl(path, skip_bad=True)) == [(1, [1]), (3, [2])]
    with pytest.raises(BadLine, match=r"x.jsonl:4: not valid JSON"):
        list(read_jsonl(path))


def test_chat_messages_with_tool_calls_and_back():
    """to_messages: the chat-template form (content + tool_calls with an id, then a tool message naming the call
    and the tool); from_messages undoes it, with the policy's system message or without."""
    call = {"id": "call00001", "type": "function",
            "function": {"name": "calculator", "arguments": {"expression": "80 * 0.15"}}}
    none = {"tool_calls": None, "tool_call_id": None, "name": None}
    assert to_messages(TOOL) == [
        {"role": "user", "content": "What is 15% of 80?", **none},
        {"role": "assistant", "content": "Let me compute that.", **none, "tool_calls": [call]},
        {"role": "tool", "content": "12", **none, "tool_call_id": "call00001", "name": "calculator"},
        {"role": "assistant", "content": "It is 12.", **none},
    ]
    first_call = [user("2+2?"), assistant([{"type": "python", "text": "2+2"}, {"type": "python_output", "text": "4"},
                                          {"type": "text", "text": "Four."}])]
    last_call = [user("2+2?"), assistant([{"type": "text", "text": "Here:"}, {"type": "python", "text": "2+2"},
                                          {"type": "python_output", "text": "4"}])]
    back_to_back = [user("two"), assistant([{"type": "text", "text": "Both:"}, {"type": "python", "text": "1+1"},
                                            {"type": "python_output", "text": "2"}, {"type": "python", "text": "2+2"},
                                            {"type": "python_output", "text": "4"}, {"type": "text", "text": "2, 4."}])]
    for conversation in (TOOL, CHAIN, IDENTITY, first_call, last_call, back_to_back, [*IDENTITY, *TOOL]):
        assert from_messages(to_messages(conversation)) == conversation
        for system in ("", "You are Sage."):
            for form in ARGUMENT_FORMS:
                messages = to_messages(conversation, system, form)
                assert messages[0] == {"role": "system", "content": system, **none}
                assert from_messages(messages, {system}) == conversation
    assert [m["role"] for m in to_messages(CHAIN)] == ["user", "assistant", "tool", "assistant", "tool", "assistant"]
    # every call of a conversation has its own id, and its result names it
    chain = to_messages(CHAIN)
    ids = [m["tool_calls"][0]["id"] for m in chain if m["tool_calls"]]
    assert ids == ["call00001", "call00002"] and [m["tool_call_id"] for m in chain if m["role"] == "tool"] == ids
    assert all(len(i) == 9 and i.isalnum() for i in ids)  # the only id form Mistral's templates accept
    assert to_messages(first_call)[1]["content"] == ""
    # the string form of arguments (the OpenAI API's, DeepSeek's templates) is JSON text of the same object
    string = to_messages(TOOL, arguments="string")[1]["tool_calls"][0]["function"]["arguments"]
    assert string == '{"expression": "80 * 0.15"}'
    # a system message that is not the policy's stays in the conversation: nothing is dropped unasked
    assert from_messages(to_messages(TOOL, "You are Qwen."), {""})[0] == {"role": "system", "content": "You are Qwen."}
    assert policy_system_message("identity", "Sage") == "You are Sage." and policy_system_message("empty", "Sage") == ""
    with pytest.raises(ValueError, match="choose empty or identity"):
        policy_system_message("qwen", "Sage")
    with pytest.raises(ValueError, match="choose object or string"):
        to_messages(TOOL, arguments="yaml")


@pytest.mark.parametrize(("content", "problem"), [
    ([{"type": "text", "text": "a"}, {"type": "text", "text": "b"}, {"type": "python", "text": "1+1"},
      {"type": "python_output", "text": "2"}], "part 1: two text parts in a row"),
    ([{"type": "text", "text": "just text"}], "without a calculator call"),
    ([{"type": "text", "text": "a"}, {"type": "python", "text": "1+1"}], "part 1: a 'python' part where"),
])
def test_replies_without_a_one_to_one_message_form_are_refused(content, problem):
    with pytest.raises(ValueError, match=problem):
        to_messages([user("q"), assistant(content)])
