"""What an imported pretrained chat model is, and the rules every import follows (hf_import.py, gguf_import.py).

One owner for: the Hugging Face config -> LlamaConfig translation (a GGUF's metadata is first written as the
Hugging Face config it came from), the bounds a hostile file is checked against before anything is allocated,
and the check of each tensor's name and shape against the model the config describes.

Families: `llama` (Llama 2/3/3.1/3.2, SmolLM/SmolLM2; Llama 3's rope scaling) and `qwen2` (Qwen2/2.5: q/k/v
biases, tied embeddings in the small ones). Refused with a reason: other rope scalings (linear, dynamic, yarn),
Qwen2's sliding window, activations other than SiLU.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tokenizers import Tokenizer as HFTokenizer

from lanbot.core.errors import LanbotError
from lanbot.training.llama import Llama, LlamaConfig

FAMILIES = ("llama", "qwen2")
# Bounds before any allocation. The largest families lanbot aims at: Llama 3.2 3B (28 layers, 3072 wide,
# 128k positions, 128,256 tokens), Qwen2.5 (151,936 tokens); the bounds leave room above them.
MAX_LAYERS = 256
MAX_WIDTH = 1 << 16  # n_embd, intermediate_size and head_dim * heads
MAX_HEADS = 1024
MAX_VOCAB = 1 << 19  # 524,288 tokens
MAX_POSITIONS = 1 << 18  # rotary tables of 262,144 positions x 64 pairs x 2 x 4 bytes = 128 MB
MAX_PARAMS = 8_000_000_000  # 32 GB of float32 weights: past that, a CPU-first tool has no business loading it
MAX_JSON_BYTES = 64 << 20  # tokenizer.json of Llama 3 is 9 MB, Qwen2.5's 7 MB


class PretrainedImportError(LanbotError, ValueError):
    """A pretrained model that cannot be imported; the message names the file or field and the fix."""


@dataclass
class Pretrained:
    """An imported model: lanbot's config, its state dict (Hugging Face names, float32), the tokenizer, the chat
    template (Jinja, None where the source has none) and the special tokens it names (bos, eos, pad)."""

    config: LlamaConfig
    state_dict: dict[str, torch.Tensor]
    tokenizer: HFTokenizer
    chat_template: str | None
    special_tokens: dict[str, str] = field(default_factory=dict)
    source: str = ""

    def model(self) -> Llama:
        """lanbot's model holding these weights (the tensors themselves, not copies), in eval mode."""
        return Llama.from_weights(self.config, self.state_dict).eval()


def read_json(path: Path, limit: int | None = None) -> Any:
    """A JSON file of at most `limit` bytes (MAX_JSON_BYTES), or PretrainedImportError naming it."""
    limit = limit or MAX_JSON_BYTES
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise PretrainedImportError(f"{path}: cannot be read ({exc.strerror})") from None
    if size > limit:
        raise PretrainedImportError(f"{path}: {size:,} bytes, more than the {limit:,} lanbot reads from such a file; "
                                    "is it the right file?")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PretrainedImportError(f"{path}: not valid JSON ({exc}); download the file again") from None


def _rope(hf: dict[str, Any], where: str) -> dict[str, Any]:
    """The rope fields of a Hugging Face config (transformers 4's rope_theta + rope_scaling, or 5's rope_parameters)."""
    params = hf.get("rope_parameters") or {}
    scaling = hf.get("rope_scaling") or params
    theta = hf.get("rope_theta", params.get("rope_theta", 10000.0))
    kind = scaling.get("rope_type", scaling.get("type")) if isinstance(scaling, dict) else None
    fields: dict[str, Any] = {"rope_theta": float(theta)}
    if kind in (None, "default"):
        return fields
    if kind != "llama3":
        raise PretrainedImportError(f"{where}: rope scaling {kind!r} is not one lanbot implements (it has Llama 3's "
                                    "'llama3' and none); pick a model without it")
    return {**fields, "rope_scaling_type": "llama3", "rope_factor": float(scaling["factor"]),
            "rope_low_freq_factor": float(scaling["low_freq_factor"]),
            "rope_high_freq_factor": float(scaling["high_freq_factor"]),
            "rope_original_max_len": int(scaling["original_max_position_embeddings"])}


def config_from_hf(hf: dict[str, Any], where: str) -> LlamaConfig:
    """lanbot's LlamaConfig of a Hugging Face config.json (as a dict), bounded; `where` names it in errors."""
    family = hf.get("model_type")
    if family not in FAMILIES:
        raise PretrainedImportError(f"{where}: model_type {family!r} is not a family lanbot imports "
                                    f"({', '.join(FAMILIES)}); pick a Llama, SmolLM2 or Qwen2 model")
    if hf.get("hidden_act", "silu") != "silu":
        raise PretrainedImportError(f"{where}: hidden_act {hf['hidden_act']!r}: lanbot's Llama has SiLU only")
    if family == "qwen2" and hf.get("use_sliding_window"):
        raise PretrainedImportError(f"{where}: use_sliding_window=true: lanbot's Qwen2 attends over the whole context; "
                                    "set it false (Qwen2.5's own configs do)")
    try:
        n_head = int(hf["num_attention_heads"])
        fields: dict[str, Any] = {
            "sequence_len": int(hf.get("max_position_embeddings", 2048)),
            "vocab_size": int(hf["vocab_size"]),
            "n_layer": int(hf["num_hidden_layers"]),
            "n_head": n_head,
            "n_kv_head": int(hf.get("num_key_value_heads") or n_head),
            "n_embd": int(hf["hidden_size"]),
            "intermediate_size": int(hf["intermediate_size"]),
            "head_dim": int(hf.get("head_dim") or 0),
            "rms_norm_eps": float(hf.get("rms_norm_eps", 1e-6)),
            "tie_word_embeddings": bool(hf.get("tie_word_embeddings", False)),
            **_rope(hf, where),
        }
    except KeyError as exc:
        raise PretrainedImportError(f"{where}: lacks {exc.args[0]!r}; download config.json again") from None
    except (TypeError, ValueError) as exc:
        raise PretrainedImportError(f"{where}: a field is not a number ({exc})") from None
    if family == "qwen2":
        fields.update(attention_bias=True, attention_out_bias=False)
    else:
        bias = bool(hf.get("attention_bias", False))
        fields.update(attention_bias=bias, attention_out_bias=bias, mlp_bias=bool(hf.get("mlp_bias", False)))
    check_bounds(fields, where)
    try:
        return LlamaConfig(**fields)
    except ValueError as exc:
        raise PretrainedImportError(f"{where}: {exc}") from None


def check_bounds(fields: dict[str, Any], where: str) -> None:
    """Refuse a shape past lanbot's bounds (module constants) before a tensor is made."""
    head_dim = fields["head_dim"] or fields["n_embd"] // max(fields["n_head"], 1)
    limits = {"n_layer": MAX_LAYERS, "n_embd": MAX_WIDTH, "intermediate_size": MAX_WIDTH, "n_head": MAX_HEADS,
              "n_kv_head": MAX_HEADS, "vocab_size": MAX_VOCAB, "sequence_len": MAX_POSITIONS}
    for name, limit in limits.items():
        if not 0 < fields[name] <= limit:
            raise PretrainedImportError(f"{where}: {name}={fields[name]} is outside 1..{limit:,}, the shapes lanbot loads")
    if not 0 < head_dim * fields["n_head"] <= MAX_WIDTH:
        raise PretrainedImportError(f"{where}: head_dim x heads = {head_dim * fields['n_head']} past {MAX_WIDTH:,}")
    params = parameter_count(fields, head_dim)
    if params > MAX_PARAMS:
        raise PretrainedImportError(f"{where}: {params / 1e9:.1f}B parameters, more than the {MAX_PARAMS / 1e9:.0f}B "
                                    "lanbot loads (32 GB of float32); pick a smaller model")


def parameter_count(fields: dict[str, Any], head_dim: int) -> int:
    """Weights of the shape (biases and norms left out: they are a rounding error)."""
    d, kv, q = fields["n_embd"], fields["n_kv_head"] * head_dim, fields["n_head"] * head_dim
    per_layer = 2 * d * q + 2 * d * kv + 3 * d * fields["intermediate_size"]
    embeddings = fields["vocab_size"] * d * (1 if fields["tie_word_embeddings"] else 2)
    return fields["n_layer"] * per_layer + embeddings


def expected_shapes(config: LlamaConfig) -> dict[str, tuple[int, ...]]:
    """Every tensor name the model loads and its shape (a model on the meta device: nothing allocated)."""
    with torch.device("meta"):
        model = Llama(config)
    shapes = {name: tuple(t.shape) for name, t in model.state_dict().items()}
    if config.tie_word_embeddings:
        shapes.pop("lm_head.weight", None)  # the embedding's own tensor
    return shapes


def check_tensor(name: str, shape: tuple[int, ...], expected: dict[str, tuple[int, ...]], where: str) -> None:
    """Refuse a tensor the model has no place for, or of another shape, before it is read."""
    if name not in expected:
        raise PretrainedImportError(f"{where}: tensor {name!r} has no place in the model its config describes; "
                                    "is the config the one of these weights?")
    if tuple(shape) != expected[name]:
        raise PretrainedImportError(f"{where}: tensor {name!r} is {list(shape)}, the config says {list(expected[name])}; "
                                    "the weights and the config disagree")


def check_complete(found: set[str], expected: dict[str, tuple[int, ...]], where: str) -> None:
    missing = sorted(set(expected) - found)
    if missing:
        more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        raise PretrainedImportError(f"{where}: lacks the tensors {', '.join(missing[:3])}{more}; "
                                    "the download is incomplete")
