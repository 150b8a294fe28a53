"""GGUF files in (llama.cpp's format; the bundled SmolLM2-135M-Instruct is one): weights dequantized to float32
with the `gguf` package, the tokenizer rebuilt from `tokenizer.ggml.*`, the chat template from
`tokenizer.chat_template`.

What llama.cpp's converter (convert_hf_to_gguf.py) did is undone: tensor names back to Hugging Face's; for the
`llama` architecture the rows of Q and K (weights and biases) are back in rotate-half order (the converter
interleaves each head's two halves for its GPT-J-style RoPE; `qwen2` keeps Hugging Face's order); a missing
`output.weight` is a tied embedding; Llama 3's `rope_freqs.weight` is read back as its rope-scaling parameters.
The metadata is first written as the Hugging Face config it came from, so both imports share one config rule
and one set of bounds (pretrained.py); the header's counts and every tensor's shape are checked before reading.

The tokenizer: `gpt2`-type (byte-level BPE) vocabularies, with the pre-tokenizer llama.cpp names in
`tokenizer.ggml.pre`: SmolLM's (`smollm`: each digit alone, then GPT-2's split, as its tokenizer.json does),
GPT-2's, Llama 3's (`llama-bpe`) and Qwen2's; control tokens become special added tokens.

    pretrained = import_gguf("SmolLM2-135M-Instruct.Q4_1.gguf")
"""

from __future__ import annotations

import math
import struct
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tokenizers import AddedToken, Regex, decoders, models, normalizers, pre_tokenizers, processors
from tokenizers import Tokenizer as HFTokenizer

from lanbot.sharing.pretrained import (
    MAX_VOCAB,
    Pretrained,
    PretrainedImportError,
    check_complete,
    check_tensor,
    config_from_hf,
    expected_shapes,
)

MAGIC = b"GGUF"
MAX_TENSORS = 1 << 14  # a 256-layer model with biases has under 3,000
MAX_KEYS = 1 << 12  # SmolLM2's file has 33
MAX_TEMPLATE_CHARS = 1 << 20
TOKEN_CONTROL, TOKEN_USER_DEFINED = 3, 4  # llama.cpp's token types (tokenizer.ggml.token_type)

# llama.cpp's tensor names -> Hugging Face's (blk.<i>. -> model.layers.<i>.)
GLOBAL_NAMES = {"token_embd.weight": "model.embed_tokens.weight", "output_norm.weight": "model.norm.weight",
                "output.weight": "lm_head.weight"}
LAYER_NAMES = {"attn_norm": "input_layernorm", "ffn_norm": "post_attention_layernorm",
               "attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj", "attn_v": "self_attn.v_proj",
               "attn_output": "self_attn.o_proj", "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj",
               "ffn_down": "mlp.down_proj"}
ROPE_FREQS = "rope_freqs.weight"

GPT2_SPLIT = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"
LLAMA3_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                r"|\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN2_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
               r"|\s*[\r\n]+|\s+(?!\S)|\s+")
DIGIT_FIRST = ("smollm", "starcoder", "refact", "codeshell")  # llama.cpp splits \p{N} alone, then GPT-2's regex


def import_gguf(path: str | Path) -> Pretrained:
    """The model, tokenizer and chat template of a GGUF file."""
    from gguf import GGUFReader  # imported here: only GGUF imports need the package

    path = Path(path).expanduser()
    check_header(path)
    try:
        reader = GGUFReader(path)
    except (ValueError, OSError, IndexError, struct.error) as exc:
        raise PretrainedImportError(f"{path}: not a readable GGUF file ({str(exc)[:160]})") from None
    meta = {name: _value(field) for name, field in reader.fields.items()}
    tensors = {t.name: t for t in reader.tensors}
    arch = meta.get("general.architecture")
    where = str(path)
    tokens = meta.get("tokenizer.ggml.tokens") or []
    hf = hf_config(meta, arch, len(tokens), "output.weight" not in tensors, where)
    if ROPE_FREQS in tensors:
        hf["rope_scaling"] = llama3_scaling(_array(tensors[ROPE_FREQS], (hf["head_dim"] // 2,), where), hf, where)
    config = config_from_hf(hf, f"{where} (metadata)")
    expected = expected_shapes(config)
    state: dict[str, torch.Tensor] = {}
    for name, tensor in tensors.items():
        if name == ROPE_FREQS:
            continue
        hf_name = hf_tensor_name(name, where)
        shape = tuple(reversed([int(n) for n in tensor.shape]))
        check_tensor(hf_name, shape, expected, f"{where} ({name})")
        value = torch.from_numpy(_array(tensor, shape, where).copy())
        if arch == "llama" and hf_name.endswith(("q_proj.weight", "q_proj.bias")):
            value = unpermute(value, config.n_head)
        elif arch == "llama" and hf_name.endswith(("k_proj.weight", "k_proj.bias")):
            value = unpermute(value, config.n_kv_head)
        state[hf_name] = value
    check_complete(set(state), expected, where)
    tokenizer, special = gguf_tokenizer(meta, where)
    template = meta.get("tokenizer.chat_template")
    if template is not None and (not isinstance(template, str) or len(template) > MAX_TEMPLATE_CHARS):
        raise PretrainedImportError(f"{where}: tokenizer.chat_template is not a template string")
    return Pretrained(config, state, tokenizer, template, special, source=where)


def check_header(path: Path) -> None:
    """Refuse a file that is no GGUF or whose counts are past the bounds, before the reader parses it."""
    try:
        with path.open("rb") as f:
            head = f.read(24)
    except OSError as exc:
        raise PretrainedImportError(f"{path}: cannot be read ({exc.strerror})") from None
    if len(head) < 24 or head[:4] != MAGIC:
        raise PretrainedImportError(f"{path}: not a GGUF file (it does not start with GGUF); point at a .gguf model")
    version, n_tensors, n_keys = struct.unpack("<IQQ", head[4:24])
    if version not in (2, 3):
        raise PretrainedImportError(f"{path}: GGUF version {version}; lanbot reads versions 2 and 3")
    if n_tensors > MAX_TENSORS or n_keys > MAX_KEYS:
        raise PretrainedImportError(f"{path}: claims {n_tensors:,} tensors and {n_keys:,} metadata keys, past the "
                                    f"{MAX_TENSORS:,} and {MAX_KEYS:,} lanbot reads: a damaged or hostile file")


def _value(field: Any) -> Any:
    try:
        return field.contents()
    except (ValueError, IndexError, UnicodeDecodeError):
        return None


def hf_config(meta: dict[str, Any], arch: Any, n_tokens: int, tied: bool, where: str) -> dict[str, Any]:
    """The Hugging Face config.json a GGUF's metadata was converted from."""
    if arch not in ("llama", "qwen2"):
        raise PretrainedImportError(f"{where}: general.architecture={arch!r}; lanbot imports llama (Llama, "
                                    "SmolLM2) and qwen2 GGUF files")

    def key(name: str, default: Any = None) -> Any:
        value = meta.get(f"{arch}.{name}", default)
        if value is None or isinstance(value, list):
            raise PretrainedImportError(f"{where}: metadata {arch}.{name} is missing or not one number")
        return value

    scaling = meta.get(f"{arch}.rope.scaling.type")
    if scaling not in (None, "none"):
        raise PretrainedImportError(f"{where}: rope scaling {scaling!r} is not one lanbot implements")
    n_head = int(key("attention.head_count"))
    width = int(key("embedding_length"))
    head_dim = int(meta.get(f"{arch}.attention.key_length") or width // max(n_head, 1))
    if int(meta.get(f"{arch}.rope.dimension_count") or head_dim) != head_dim:
        raise PretrainedImportError(f"{where}: rope.dimension_count differs from the head size: partial rotary "
                                    "embeddings are not one lanbot implements")
    return {"model_type": arch, "vocab_size": int(meta.get(f"{arch}.vocab_size") or n_tokens),
            "hidden_size": width, "intermediate_size": int(key("feed_forward_length")),
            "num_hidden_layers": int(key("block_count")), "num_attention_heads": n_head,
            "num_key_value_heads": int(key("attention.head_count_kv", n_head)), "head_dim": head_dim,
            "max_position_embeddings": int(key("context_length")),
            "rms_norm_eps": float(key("attention.layer_norm_rms_epsilon")),
            "rope_theta": float(key("rope.freq_base", 10000.0)), "tie_word_embeddings": tied}


def hf_tensor_name(name: str, where: str) -> str:
    if name in GLOBAL_NAMES:
        return GLOBAL_NAMES[name]
    parts = name.split(".")
    if len(parts) == 4 and parts[0] == "blk" and parts[1].isdigit() and parts[2] in LAYER_NAMES:
        return f"model.layers.{int(parts[1])}.{LAYER_NAMES[parts[2]]}.{parts[3]}"
    raise PretrainedImportError(f"{where}: tensor {name!r} is not one of a Llama or Qwen2 model")


def _array(tensor: Any, shape: tuple[int, ...], where: str) -> np.ndarray:
    """A tensor's float32 values in `shape` (Hugging Face's row-major order), dequantized."""
    from gguf.quants import dequantize

    try:
        values = dequantize(tensor.data, tensor.tensor_type)
    except (NotImplementedError, ValueError) as exc:
        raise PretrainedImportError(f"{where}: tensor {tensor.name} of type {tensor.tensor_type.name} cannot be "
                                    f"dequantized ({exc})") from None
    if values.size != math.prod(shape):
        raise PretrainedImportError(f"{where}: tensor {tensor.name} holds {values.size} values, not {list(shape)}")
    return values.astype(np.float32, copy=False).reshape(shape)


def unpermute(weight: torch.Tensor, n_head: int) -> torch.Tensor:
    """Undo convert_hf_to_gguf.py's permute of Q or K rows: per head, (pairs, 2) back to (2 halves, pairs)."""
    rows = weight.shape[0]
    return weight.reshape(n_head, rows // n_head // 2, 2, *weight.shape[1:]).swapaxes(1, 2).reshape(weight.shape)


def llama3_scaling(freqs: np.ndarray, hf: dict[str, Any], where: str) -> dict[str, Any]:
    """Llama 3's rope-scaling parameters from llama.cpp's `rope_freqs` (the divisor of each pair's frequency):
    the published ones (low 1, high 4, original 8192; factor = the largest divisor) where they reproduce it."""
    from lanbot.training.llama import LlamaConfig, inverse_frequencies

    scaling = {"rope_type": "llama3", "factor": float(freqs.max()), "low_freq_factor": 1.0, "high_freq_factor": 4.0,
               "original_max_position_embeddings": 8192}
    fields = {"rope_theta": hf["rope_theta"], "head_dim": hf["head_dim"], "n_embd": hf["hidden_size"],
              "n_head": hf["num_attention_heads"], "n_kv_head": hf["num_key_value_heads"]}
    plain = inverse_frequencies(LlamaConfig(**fields))
    scaled = inverse_frequencies(LlamaConfig(**fields, rope_scaling_type="llama3", rope_factor=scaling["factor"]))
    if not torch.allclose(plain / scaled, torch.from_numpy(freqs.astype(np.float32)), rtol=1e-3):
        raise PretrainedImportError(f"{where}: rope_freqs.weight is not Llama 3's published scaling; import the "
                                    "model's Hugging Face folder instead (its config.json says the parameters)")
    return scaling


def gguf_tokenizer(meta: dict[str, Any], where: str) -> tuple[HFTokenizer, dict[str, str]]:
    """The `tokenizers` Tokenizer llama.cpp's metadata describes, and the bos/eos/pad tokens it names."""
    kind, pre = meta.get("tokenizer.ggml.model"), meta.get("tokenizer.ggml.pre") or "default"
    if kind != "gpt2":
        raise PretrainedImportError(f"{where}: tokenizer.ggml.model={kind!r}; lanbot rebuilds byte-level BPE "
                                    "('gpt2') tokenizers only; import the model's Hugging Face folder instead")
    tokens = meta.get("tokenizer.ggml.tokens") or []
    merges = meta.get("tokenizer.ggml.merges") or []
    types = meta.get("tokenizer.ggml.token_type") or [1] * len(tokens)
    if not tokens or len(tokens) > MAX_VOCAB or len(merges) > MAX_VOCAB or len(types) != len(tokens):
        raise PretrainedImportError(f"{where}: {len(tokens):,} tokens, {len(merges):,} merges and {len(types):,} "
                                    f"token types; expected 1..{MAX_VOCAB:,} tokens with one type each")
    vocab = {token: i for i, token in enumerate(tokens)}
    if len(vocab) != len(tokens):
        raise PretrainedImportError(f"{where}: tokenizer.ggml.tokens repeats a token; the file is damaged")
    pairs = [tuple(m.split(" ", 1)) for m in merges]
    if any(len(p) != 2 for p in pairs):
        raise PretrainedImportError(f"{where}: a tokenizer.ggml.merges entry is not two tokens")
    tok = HFTokenizer(models.BPE(vocab, pairs, ignore_merges=pre == "llama-bpe"))
    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    if pre in DIGIT_FIRST:
        tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True),
                                                     pre_tokenizers.ByteLevel(add_prefix_space=False)])
    elif pre in ("default", "gpt2"):
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    elif pre in ("llama-bpe", "qwen2"):
        split = pre_tokenizers.Split(Regex(LLAMA3_SPLIT if pre == "llama-bpe" else QWEN2_SPLIT), "isolated")
        tok.pre_tokenizer = pre_tokenizers.Sequence([split, byte_level])
        if pre == "qwen2":
            tok.normalizer = normalizers.NFC()
    else:
        raise PretrainedImportError(f"{where}: tokenizer.ggml.pre={pre!r} is not a pre-tokenizer lanbot rebuilds "
                                    "(smollm, gpt2, llama-bpe, qwen2); import the model's Hugging Face folder instead")
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False)
                            for t, kind_ in zip(tokens, types, strict=True) if kind_ == TOKEN_CONTROL])
    tok.add_tokens([AddedToken(t, special=False, normalized=False)
                    for t, kind_ in zip(tokens, types, strict=True) if kind_ == TOKEN_USER_DEFINED])
    special = {}
    for name, key in (("bos", "bos_token_id"), ("eos", "eos_token_id"), ("pad", "padding_token_id")):
        index = meta.get(f"tokenizer.ggml.{key}")
        if isinstance(index, int) and 0 <= index < len(tokens):
            special[name] = tokens[index]
    if meta.get("tokenizer.ggml.add_bos_token") and "bos" in special:  # Llama 3 starts every text with it
        bos = special["bos"]
        tok.post_processor = processors.TemplateProcessing(single=f"{bos} $A", pair=f"{bos} $A {bos} $B",
                                                           special_tokens=[(bos, vocab[bos])])
    return tok, special
