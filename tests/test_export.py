"""The nanochat export, each written line checked against what nanochat's CustomJSON task accepts."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hub_fixtures import CONVERSATIONS, write_data_folder
from rich.console import Console

from lanbot.core.config import compose_config
from lanbot.core.conversation import TYPES
from lanbot.generation.generate_data import generate
from lanbot.sharing.nanochat_export import ExportError, export_nanochat, report


def customjson_accepts(line: str) -> bool:
    """CustomJSON's rules, written out here on their own: a JSON list of >= 2 messages, each with role and
    content, roles alternating from user, every content a string."""
    messages = json.loads(line)
    if not isinstance(messages, list) or len(messages) < 2:
        return False
    for i, message in enumerate(messages):
        if "role" not in message or "content" not in message:
            return False
        if message["role"] != ("user" if i % 2 == 0 else "assistant"):
            return False
        if not isinstance(message["content"], str):
            return False
    return True


@pytest.fixture
def root(tmp_path, monkeypatch):
    monkeypatch.delenv("NANOCHAT_BASE_DIR", raising=False)
    write_data_folder(tmp_path / "out" / "data" / "sage")
    return tmp_path


def _cfg(root: Path, *overrides: str):
    return compose_config(["identity=sage", f"paths.root={root / 'out'}", f"export.base_dir={root / 'nc'}",
                           *overrides])


def _lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


def test_default_exports_identity_only(root):
    target, counts = export_nanochat(_cfg(root))
    assert target == root / "nc" / "identity_conversations.jsonl"
    lines = _lines(target)
    assert all(customjson_accepts(line) for line in lines)
    assert [json.loads(line) for line in lines] == CONVERSATIONS["identity"]
    assert counts == {"identity": {"read": 3, "kept": 3, "rendered": 0, "skipped": 0}}
    assert not list((root / "nc").glob(".*tmp"))  # the temp file of the atomic write is gone


def test_tool_calls_skipped_with_counts(root):
    target, counts = export_nanochat(_cfg(root, "export.types=[identity,tool_use,reasoning]"))
    lines = _lines(target)
    assert len(lines) == 4 and all(customjson_accepts(line) for line in lines)
    assert counts["tool_use"] == {"read": 2, "kept": 0, "rendered": 0, "skipped": 2}
    text = report(target, counts, "skip")
    assert "tool_use" in text and "0 of 2, 2 with tool calls left out" in text and "wrote 4 conversations" in text


def test_tool_calls_rendered(root):
    target, counts = export_nanochat(_cfg(root, "export.types=[tool_use]", "export.tool_calls=render"))
    lines = _lines(target)
    assert len(lines) == 2 and all(customjson_accepts(line) for line in lines)
    first = json.loads(lines[0])
    assert first[0] == {"role": "user", "content": "what is 12 times 3?"}
    assert first[1]["content"] == "Let me work that out. <<12*3=36>> The answer is 36."
    assert counts["tool_use"]["rendered"] == 2


def test_never_overwrites_without_permission(root):
    target, _ = export_nanochat(_cfg(root))
    before = target.read_bytes()
    with pytest.raises(ExportError, match="exists; add export.overwrite=true"):
        export_nanochat(_cfg(root, "export.types=[reasoning]"))
    assert target.read_bytes() == before
    export_nanochat(_cfg(root, "export.types=[reasoning]", "export.overwrite=true"))
    assert [json.loads(line) for line in _lines(target)] == CONVERSATIONS["reasoning"]


def test_base_dir_from_environment(root, monkeypatch):
    monkeypatch.setenv("NANOCHAT_BASE_DIR", str(root / "from-env"))
    target, _ = export_nanochat(compose_config(["identity=sage", f"paths.root={root / 'out'}"]))
    assert target == root / "from-env" / "identity_conversations.jsonl" and target.is_file()


def test_bad_input(root):
    with pytest.raises(ExportError, match="no_tool_conversations.jsonl.*lanbot.generate identity=sage"):
        export_nanochat(_cfg(root, "export.types=[no_tool]"))
    with pytest.raises(ExportError, match="unknown"):
        export_nanochat(_cfg(root, "export.types=[chitchat]"))
    with pytest.raises(ExportError, match="skip or render"):
        export_nanochat(_cfg(root, "export.tool_calls=drop"))
    with pytest.raises(ExportError, match="nothing to export"):
        export_nanochat(_cfg(root, "export.types=[tool_use]"))
    data = root / "out" / "data" / "sage" / "identity_conversations.jsonl"
    with open(data, "a") as f:
        f.write('[{"role": "assistant", "content": "hi"}, {"role": "user", "content": "x"}]\n')
    with pytest.raises(ExportError, match=r"identity_conversations.jsonl:4: nanochat would refuse it: message 0"):
        export_nanochat(_cfg(root))
    assert not (root / "nc" / "identity_conversations.jsonl").exists()


def test_cli(root):
    env = {**os.environ, "WANDB_MODE": "offline"}
    cmd = [sys.executable, "-m", "lanbot.export.nanochat", "identity=sage", f"paths.root={root / 'out'}",
           f"export.base_dir={root / 'nc'}", "export.types=[identity,tool_use]", "hydra.run.dir=" + str(root / "run")]
    first = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert first.returncode == 0, first.stderr
    assert "wrote 3 conversations" in first.stdout and "2 with tool calls left out" in first.stdout
    again = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert again.returncode == 2 and "export.overwrite=true" in again.stderr  # exit 2: lanbot.core.app


def test_generated_folder_every_line_loads_in_customjson(tmp_path, monkeypatch):
    """A folder that lanbot.generate really wrote, every type, tool calls rendered: each line passes
    CustomJSON's checks; the file gets the mode a plain open() gives (nanochat may run as another user)."""
    monkeypatch.setenv("NANOCHAT_BASE_DIR", str(tmp_path / "nc"))
    base = ["identity=sage", f"paths.root={tmp_path / 'out'}", "logger=none"]
    generate(compose_config([*base, "data.count=5"]), tmp_path / "gen", console=Console(file=io.StringIO()))
    types = "[" + ",".join(TYPES) + "]"
    target, counts = export_nanochat(compose_config([*base, f"export.types={types}", "export.tool_calls=render"]))
    lines = _lines(target)
    assert len(lines) == 5 * len(TYPES) and all(customjson_accepts(line) for line in lines)
    assert counts["tool_use"]["rendered"] == 5 and counts["identity"]["rendered"] == 0
    assert sum("<<" in line for line in lines) >= 5 * 3  # the three calculator types at least
    mask = os.umask(0)
    os.umask(mask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~mask
