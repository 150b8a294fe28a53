"""Hugging Face model folders out: lanbot's Llama-family model -> config.json, model.safetensors, tokenizer.json,
tokenizer_config.json (chat template, bos/eos/pad), special_tokens_map.json, generation_config.json; the folder
transformers' AutoModelForCausalLM / AutoTokenizer load and llama.cpp's convert_hf_to_gguf.py converts (for
llama.cpp or Ollama).

The inverse of hf_import.py: config.json is what `config_from_hf` reads back to the same LlamaConfig, in
transformers 4's keys (`rope_theta`, `rope_scaling`, `torch_dtype`), which transformers 5 and llama.cpp's converter
read too. The family is the one the config's biases say: q/k/v biases without an o_proj bias is Qwen2, anything
else Llama (Llama's `attention_bias` sets both). tokenizer_config.json names `PreTrainedTokenizerFast`, so
transformers loads tokenizer.json as it is rather than picking a family's tokenizer class by `model_type`, and
carries the chat template itself, where llama.cpp's converter (gguf's SpecialVocab) looks for it.

The folder is written whole beside `out_dir` and renamed into place: a reader never sees half an export, a
failed or interrupted one leaves nothing; a non-empty `out_dir` or a link there is refused in one line.

    export_hf_folder(model.config, model.state_dict(), tokenizer, template, {"bos": ..., "eos": ...}, "out/sage-hf")
"""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file
from tokenizers import Tokenizer as HFTokenizer

from lanbot.core.errors import LanbotError
from lanbot.core.files import (
    check_not_link,
    io_error,
    make_dirs,
    remove_stale_temps,
    write_json_atomic,
    write_text_atomic,
)
from lanbot.core.lock import FolderLock
from lanbot.sharing.hf_import import CONFIG, GENERATION_CONFIG, TOKENIZER, TOKENIZER_CONFIG, WEIGHTS
from lanbot.sharing.pretrained import check_complete, check_tensor, expected_shapes
from lanbot.training.llama import LlamaConfig

SPECIAL_TOKENS_MAP = "special_tokens_map.json"
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
ARCHITECTURES = {"llama": "LlamaForCausalLM", "qwen2": "Qwen2ForCausalLM"}
INITIALIZER_RANGE = 0.02  # Hugging Face's default for both families; only read when a model is built from nothing


class HFExportError(LanbotError, ValueError):
    """A model, tokenizer or folder that cannot be exported; the message names it and the fix."""


def family_of(config: LlamaConfig) -> str:
    """`llama` or `qwen2`, from the biases (the one detail that tells them apart in lanbot's config)."""
    if config.attention_bias and not config.attention_out_bias:
        if config.mlp_bias:
            raise HFExportError("attention_bias without attention_out_bias is Qwen2's shape, which has no mlp_bias; "
                                "no Hugging Face family has this model's biases")
        return "qwen2"
    if config.attention_out_bias and not config.attention_bias:
        raise HFExportError("attention_out_bias without attention_bias: no Hugging Face family has an o_proj bias "
                            "alone; set both (Llama) or neither")
    return "llama"


def hf_config(config: LlamaConfig, special_ids: dict[str, int], dtype: str = "float32") -> dict[str, Any]:
    """config.json of `config`: the inverse of pretrained.config_from_hf."""
    family = family_of(config)
    rope_scaling = None
    if config.rope_scaling_type == "llama3":
        rope_scaling = {"rope_type": "llama3", "factor": config.rope_factor,
                        "low_freq_factor": config.rope_low_freq_factor,
                        "high_freq_factor": config.rope_high_freq_factor,
                        "original_max_position_embeddings": config.rope_original_max_len}
    hf: dict[str, Any] = {
        "architectures": [ARCHITECTURES[family]],
        "model_type": family,
        "vocab_size": config.vocab_size,
        "hidden_size": config.n_embd,
        "intermediate_size": config.intermediate_size,
        "num_hidden_layers": config.n_layer,
        "num_attention_heads": config.n_head,
        "num_key_value_heads": config.n_kv_head,
        "head_dim": config.head_dim,
        "max_position_embeddings": config.sequence_len,
        "rms_norm_eps": config.rms_norm_eps,
        "rope_theta": config.rope_theta,
        "rope_scaling": rope_scaling,
        "tie_word_embeddings": config.tie_word_embeddings,
        "hidden_act": "silu",
        "attention_dropout": 0.0,
        "initializer_range": INITIALIZER_RANGE,
        "use_cache": True,
        "torch_dtype": dtype,
        "bos_token_id": special_ids.get("bos"),
        "eos_token_id": special_ids.get("eos"),
        "pad_token_id": special_ids.get("pad"),
    }
    if family == "llama":
        hf.update(attention_bias=config.attention_bias, mlp_bias=config.mlp_bias, pretraining_tp=1)
    else:  # the whole context attended: config_from_hf refuses a sliding window
        hf.update(use_sliding_window=False, sliding_window=None, max_window_layers=config.n_layer)
    return hf


def special_token_ids(tokenizer: HFTokenizer, special_tokens: dict[str, str]) -> dict[str, int]:
    """{bos, eos, pad: id}; a named token the tokenizer lacks is refused (transformers would add it as a new id)."""
    ids = {}
    for key, text in special_tokens.items():
        if key not in ("bos", "eos", "pad"):
            raise HFExportError(f"special token {key!r}: an export names bos, eos and pad only")
        index = tokenizer.token_to_id(text)
        if index is None:
            raise HFExportError(f"special token {key}={text!r} is not in the tokenizer's vocabulary; name one of its "
                                "tokens (ChatML: bos <|im_start|>, eos and pad <|im_end|>)")
        ids[key] = index
    return ids


def weights_to_save(config: LlamaConfig, state_dict: dict[str, torch.Tensor], dtype: str) -> dict[str, torch.Tensor]:
    """The state dict checked name by name and shape by shape against the config, in `dtype`, contiguous; a tied
    model's lm_head left out (transformers ties it again on load, and safetensors refuses shared tensors)."""
    state = dict(state_dict)
    adapters = sorted(name for name in state if ".lora_" in name)
    if adapters:
        raise HFExportError(f"the state dict holds LoRA adapters ({adapters[0]}, ...); export the merged model "
                            "(lanbot.training.lora.merge_lora) so the folder holds plain weights")
    expected = expected_shapes(config)
    if config.tie_word_embeddings:
        state.pop("lm_head.weight", None)
    for name, tensor in state.items():
        check_tensor(name, tuple(tensor.shape), expected, "the model to export")
    check_complete(set(state), expected, "the model to export")
    return {name: tensor.detach().to("cpu", DTYPES[dtype]).contiguous() for name, tensor in state.items()}


def tokenizer_files(tokenizer: HFTokenizer, chat_template: str | None, special: dict[str, str],
                    sequence_len: int) -> dict[str, Any]:
    """tokenizer_config.json and special_tokens_map.json of the tokenizer (special tokens as the tokenizer holds them)."""
    added = [token for token in tokenizer.get_added_tokens_decoder().values() if token.special]
    settings: dict[str, Any] = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "model_max_length": sequence_len,
        "clean_up_tokenization_spaces": False,
        **{f"{key}_token": text for key, text in special.items()},
    }
    if chat_template is not None:
        settings["chat_template"] = chat_template
    named = set(special.values())
    token_map: dict[str, Any] = {f"{key}_token": text for key, text in special.items()}
    others = [t.content for t in added if t.content not in named]
    if others:
        token_map["additional_special_tokens"] = others
        settings["additional_special_tokens"] = others
    return {TOKENIZER_CONFIG: settings, SPECIAL_TOKENS_MAP: token_map}


def check_target(out_dir: Path) -> None:
    """Refuse a link at `out_dir`, a file there, or a folder with anything in it (an export replaces nothing)."""
    check_not_link(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise HFExportError(f"{out_dir} is a file; export into a new or empty folder")
    if out_dir.is_dir() and any(out_dir.iterdir()):
        raise HFExportError(f"{out_dir} is not empty; an export never overwrites a folder: pick a new folder "
                            f"or remove this one (rm -r {out_dir})")


def export_hf_folder(config: LlamaConfig, state_dict: dict[str, torch.Tensor], tokenizer: HFTokenizer,
                     chat_template: str | None, special_tokens: dict[str, str], out_dir: str | Path,
                     dtype: str = "float32") -> Path:
    """Write the model as a Hugging Face folder at `out_dir` (new or empty); returns it.

    `state_dict` has Hugging Face names (lanbot's Llama's own), float32 or not; `dtype` is what the file holds
    (float32 by default, so transformers' logits equal lanbot's; bfloat16 halves the file, as SmolLM2 ships)."""
    if dtype not in DTYPES:
        raise HFExportError(f"dtype={dtype!r}: an export writes {', '.join(DTYPES)}")
    out_dir = Path(out_dir).expanduser()
    special = {key: text for key, text in special_tokens.items() if text}
    ids = special_token_ids(tokenizer, special)
    weights = weights_to_save(config, state_dict, dtype)  # every check before anything is written
    hf = hf_config(config, ids, dtype)
    check_target(out_dir)
    make_dirs(out_dir.parent)
    with FolderLock(out_dir, "export folder"):
        remove_stale_temps(out_dir.parent, (f".{out_dir.name}.tmp-*",))  # a killed export's; we hold the lock
        check_target(out_dir)  # again, under the lock: another export may have finished meanwhile
        tmp = out_dir.parent / f".{out_dir.name}.tmp-{os.getpid()}"
        try:
            tmp.mkdir()
            _write_folder(tmp, hf, weights, tokenizer, chat_template, special, ids, config.sequence_len)
            if out_dir.is_dir():
                out_dir.rmdir()  # empty, checked under the lock
            tmp.rename(out_dir)
        except OSError as exc:
            raise io_error("exporting", out_dir, exc) from None
        finally:
            with contextlib.suppress(OSError):
                shutil.rmtree(tmp)  # gone already after the rename
    return out_dir


def _write_folder(folder: Path, hf: dict[str, Any], weights: dict[str, torch.Tensor], tokenizer: HFTokenizer,
                  chat_template: str | None, special: dict[str, str], ids: dict[str, int], sequence_len: int) -> None:
    write_json_atomic(folder / CONFIG, hf)
    try:
        save_file(weights, str(folder / WEIGHTS), metadata={"format": "pt"})
    except Exception as exc:  # noqa: BLE001 (safetensors raises its own error for a full disk: named by errno)
        from lanbot.training.checkpoint import _disk_error

        disk = _disk_error(exc)
        if disk is None:
            raise
        raise io_error("writing", folder / WEIGHTS, disk) from None
    write_text_atomic(folder / TOKENIZER, tokenizer.to_str())
    for name, data in tokenizer_files(tokenizer, chat_template, special, sequence_len).items():
        write_json_atomic(folder / name, data)
    generation = {"bos_token_id": ids.get("bos"), "eos_token_id": ids.get("eos"), "pad_token_id": ids.get("pad")}
    write_json_atomic(folder / GENERATION_CONFIG, {k: v for k, v in generation.items() if v is not None})



def export_checkpoint(folder: Path, out_dir: str | Path, dtype: str = "float32") -> Path:
    """A lanbot checkpoint of a Llama-family model (trained from a pretrained chat model) as a Hugging Face folder:
    its weights, its tokenizer with the tool tokens training added, and the model's own chat template."""
    from lanbot.core.layout import CheckpointError
    from lanbot.training.checkpoint import load_checkpoint
    from lanbot.training.llama import Llama

    try:
        model, tok, _ = load_checkpoint(folder)
    except CheckpointError as exc:
        raise HFExportError(str(exc)) from None
    if not isinstance(model, Llama):
        raise HFExportError(f"{folder} holds lanbot's own GPT ({model.config.architecture}), which transformers has "
                            "no class for: export it with `python -m lanbot.export.nanochat export.checkpoint=...`, "
                            "or train from a pretrained chat model (model=smollm2-135m) for a Hugging Face folder")
    fmt = tok.chat
    special = {"bos": fmt.bos or fmt.specials[0], "eos": fmt.stop, "pad": fmt.stop}
    return export_hf_folder(model.config, model.state_dict(), tok._hf, tok.template, special, out_dir, dtype)


def export_app(cfg: Any, run_dir: Path | None = None) -> Path:
    """`python -m lanbot.export.hf`: the identity's sft (or mid, or a folder) checkpoint as a Hugging Face folder."""
    from lanbot.core.layout import CheckpointError, find_checkpoint

    export, name = cfg.export, str(cfg.export.get("checkpoint") or "sft")
    try:
        folder = find_checkpoint(cfg, name) if name in ("mid", "sft") else Path(name).expanduser()
    except CheckpointError as exc:
        raise HFExportError(f"export.checkpoint={name}: {exc}") from None
    out = Path(export.get("hf_dir") or Path(cfg.paths.root) / "exports" / f"{folder.parent.parent.parent.name}-"
               f"{folder.parent.parent.name}-{folder.parent.name}-{folder.name}-hf")
    written = export_checkpoint(folder, out, str(export.get("dtype") or "float32"))
    print(f"wrote {written} (config.json, model.safetensors, tokenizer.json, tokenizer_config.json with the chat "
          f"template)\ntransformers loads it with AutoModelForCausalLM.from_pretrained({str(written)!r}); for "
          f"llama.cpp or Ollama: python convert_hf_to_gguf.py {written} --outfile model.gguf (llama.cpp's converter)")
    return written
