"""Hugging Face model folders in: config.json, model.safetensors (or shards and their index), tokenizer.json,
tokenizer_config.json -> lanbot's Llama config, state dict, tokenizer and chat template.

Every tensor's name and shape is checked against the config's model before it is read (safetensors' header
gives shapes without reading data), and the config is bounded first (lanbot/sharing/pretrained.py). Weights
come out float32 (SmolLM2 ships bf16): lanbot keeps float32 master weights and trains under bf16 autocast.
The chat template is `chat_template.jinja` (transformers >= 4.43 writes it) or tokenizer_config.json's
`chat_template` (a string, or a list of named templates of which `default` is taken).

    pretrained = import_pretrained("path/to/SmolLM2-135M-Instruct")    # or a .gguf file
    model = pretrained.model(); ids = pretrained.tokenizer.encode("Hi").ids
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from tokenizers import Tokenizer as HFTokenizer

from lanbot.sharing.pretrained import (
    MAX_JSON_BYTES,
    Pretrained,
    PretrainedImportError,
    check_complete,
    check_tensor,
    config_from_hf,
    expected_shapes,
    read_json,
)

CONFIG = "config.json"
WEIGHTS = "model.safetensors"
INDEX = "model.safetensors.index.json"
TOKENIZER = "tokenizer.json"
TOKENIZER_CONFIG = "tokenizer_config.json"
TEMPLATE_FILE = "chat_template.jinja"
GENERATION_CONFIG = "generation_config.json"
MAX_TEMPLATE_BYTES = 1 << 20  # chat templates are a few KB; Llama 3.2's, the longest common one, 4 KB
IGNORED = ("rotary_emb.inv_freq",)  # a buffer older transformers saved; lanbot recomputes it


def import_pretrained(source: str | Path) -> Pretrained:
    """A Hugging Face folder or a GGUF file (by its extension) as lanbot's model, tokenizer and template."""
    path = Path(source).expanduser()
    if path.is_file() and path.suffix.lower() == ".gguf":
        from lanbot.sharing.gguf_import import import_gguf  # the gguf package only for GGUF files

        return import_gguf(path)
    return import_hf_folder(path)


def import_hf_folder(folder: str | Path) -> Pretrained:
    """The model, tokenizer and chat template of a Hugging Face folder."""
    folder = Path(folder).expanduser()
    if not (folder / CONFIG).is_file():
        raise PretrainedImportError(f"{folder}: no {CONFIG}; point at a Hugging Face model folder (config.json, "
                                    "model.safetensors, tokenizer.json) or a .gguf file")
    config = config_from_hf(read_json(folder / CONFIG), str(folder / CONFIG))
    expected = expected_shapes(config)
    state: dict[str, torch.Tensor] = {}
    for file in weight_files(folder):
        state.update(read_safetensors(file, expected))
    if config.tie_word_embeddings:
        state.pop("lm_head.weight", None)
    check_complete(set(state), expected, str(folder))
    tokenizer = read_tokenizer(folder / TOKENIZER)
    template, special = chat_format(folder)
    return Pretrained(config, state, tokenizer, template, special, source=str(folder))


def weight_files(folder: Path) -> list[Path]:
    """model.safetensors, or the shards model.safetensors.index.json names (plain names inside the folder)."""
    if (folder / WEIGHTS).is_file():
        return [folder / WEIGHTS]
    if not (folder / INDEX).is_file():
        lone = "; pytorch_model.bin is pickle, which lanbot does not load" if (folder / "pytorch_model.bin").exists() else ""
        raise PretrainedImportError(f"{folder}: no {WEIGHTS} or {INDEX}{lone}; download the safetensors weights")
    index = read_json(folder / INDEX)
    weight_map = index.get("weight_map") if isinstance(index, dict) else None
    if not isinstance(weight_map, dict) or not weight_map:
        raise PretrainedImportError(f"{folder / INDEX}: no weight_map; download it again")
    names = sorted(set(map(str, weight_map.values())))
    for name in names:
        if Path(name).name != name or not name.endswith(".safetensors"):
            raise PretrainedImportError(f"{folder / INDEX}: shard {name!r} is not a .safetensors file in the folder")
        if not (folder / name).is_file():
            raise PretrainedImportError(f"{folder / name}: missing (named by {INDEX}); the download is incomplete")
    return [folder / name for name in names]


def read_safetensors(file: Path, expected: dict[str, tuple[int, ...]]) -> dict[str, torch.Tensor]:
    """The file's tensors as float32, each name and shape checked from the header before its data is read."""
    out: dict[str, torch.Tensor] = {}
    try:
        with safe_open(str(file), framework="pt") as f:
            for name in f.keys():  # noqa: SIM118 (safe_open has keys(), not iteration)
                if name.endswith(IGNORED) or (name == "lm_head.weight" and name not in expected):
                    continue  # a tied model's copy of the embedding
                check_tensor(name, tuple(f.get_slice(name).get_shape()), expected, str(file))
                out[name] = f.get_tensor(name).float()
    except SafetensorError as exc:
        raise PretrainedImportError(f"{file}: cannot be read ({exc}); the file is damaged, download it again") from None
    return out


def read_tokenizer(path: Path) -> HFTokenizer:
    if not path.is_file():
        raise PretrainedImportError(f"{path}: missing; lanbot needs the fast tokenizer's tokenizer.json")
    try:
        size = path.stat().st_size
        if size > MAX_JSON_BYTES:
            raise PretrainedImportError(f"{path}: {size:,} bytes, more than lanbot reads from a tokenizer.json")
        return HFTokenizer.from_str(path.read_text(encoding="utf-8"))
    except PretrainedImportError:
        raise
    except Exception as exc:  # noqa: BLE001 (tokenizers raises a bare Exception for a file it cannot parse)
        raise PretrainedImportError(f"{path}: not a readable tokenizer.json ({str(exc)[:160]})") from None


def _token_text(value: Any) -> str | None:
    """A special token as tokenizer_config.json writes it: a string, or {"content": ...}."""
    if isinstance(value, dict):
        value = value.get("content")
    return value if isinstance(value, str) and value else None


def chat_format(folder: Path) -> tuple[str | None, dict[str, str]]:
    """(chat template, {bos, eos, pad: token text}) from the folder's tokenizer files."""
    settings = read_json(folder / TOKENIZER_CONFIG) if (folder / TOKENIZER_CONFIG).is_file() else {}
    if not isinstance(settings, dict):
        raise PretrainedImportError(f"{folder / TOKENIZER_CONFIG}: not a JSON object; download it again")
    special = {key: text for key in ("bos", "eos", "pad") if (text := _token_text(settings.get(f"{key}_token")))}
    template = settings.get("chat_template")
    if isinstance(template, list):  # [{"name": "default", "template": ...}, {"name": "tool_use", ...}]
        named = {t.get("name"): t.get("template") for t in template if isinstance(t, dict)}
        template = named.get("default")
    if (folder / TEMPLATE_FILE).is_file():
        size = (folder / TEMPLATE_FILE).stat().st_size
        if size > MAX_TEMPLATE_BYTES:
            raise PretrainedImportError(f"{folder / TEMPLATE_FILE}: {size:,} bytes, past the {MAX_TEMPLATE_BYTES:,} "
                                        "a chat template may have")
        template = (folder / TEMPLATE_FILE).read_text(encoding="utf-8")
    if template is not None and (not isinstance(template, str) or len(template) > MAX_TEMPLATE_BYTES):
        raise PretrainedImportError(f"{folder / TOKENIZER_CONFIG}: chat_template is not a template string")
    return template, special
