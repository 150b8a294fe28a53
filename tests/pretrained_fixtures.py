"""Tiny pretrained chat models written the way their owners write them: a Hugging Face folder by transformers'
save_pretrained, a GGUF file by the `gguf` package's writer with llama.cpp's converter's tensor names and Q/K
permutation, both with a byte-level BPE tokenizer trained here (SmolLM2's pre-tokenizer: digits alone, then
GPT-2's split) and SmolLM2's ChatML template."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers

VOCAB = 320
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
CHATML = ("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + "
          "'<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")
TEXTS = ["Why is the sky blue? Rayleigh scattering of sunlight by the air's molecules.",
         "The answer is 17 x 23 = 391, computed twice.", "Hello, world! I'm a small model that talks.",
         "def add(a, b):\n    return a + b\n", "Ünïcödé text, émojis 🙂 and tabs\tin between."] * 4


def tiny_tokenizer() -> Tokenizer:
    """A byte-level BPE of VOCAB tokens with SmolLM2's pre-tokenizer and its first three special tokens."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True),
                                                 pre_tokenizers.ByteLevel(add_prefix_space=False)])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=VOCAB, special_tokens=[AddedToken(s, special=True) for s in SPECIALS],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(TEXTS, trainer)
    return tok


def hf_config(family: str, **overrides):
    """A tiny transformers config of `family` (llama or qwen2): GQA (4 heads over 2), 2 layers."""
    from transformers import LlamaConfig, Qwen2Config

    fields = dict(vocab_size=VOCAB, hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=2, max_position_embeddings=256, rms_norm_eps=1e-5, rope_theta=10000.0,
                  tie_word_embeddings=False)
    fields.update(overrides)
    return (LlamaConfig if family == "llama" else Qwen2Config)(**fields)


def hf_model(family: str, seed: int = 0, **overrides):
    """A transformers model with every weight random, norms and biases too (transformers initialises those to
    one and zero, which would hide a norm or bias lanbot dropped)."""
    from transformers import LlamaForCausalLM, Qwen2ForCausalLM

    torch.manual_seed(seed)
    cls = LlamaForCausalLM if family == "llama" else Qwen2ForCausalLM
    model = cls(hf_config(family, **overrides)).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias"):
                p.normal_(0.0, 0.5)
            elif "norm" in name:
                p.uniform_(0.5, 1.5)
    return model


def write_hf_folder(model, folder: Path, tokenizer: Tokenizer | None = None) -> Path:
    """save_pretrained plus tokenizer.json and a tokenizer_config.json carrying the ChatML template."""
    import json

    model.save_pretrained(folder)
    (tokenizer or tiny_tokenizer()).save(str(folder / "tokenizer.json"))
    (folder / "tokenizer_config.json").write_text(json.dumps({
        "chat_template": CHATML, "bos_token": "<|im_start|>", "eos_token": "<|im_end|>", "pad_token": "<|im_end|>"}))
    return folder


def llama_cpp_permute(weight: np.ndarray, n_head: int) -> np.ndarray:
    """convert_hf_to_gguf.py's LlamaModel.permute: each head's rotate-half rows interleaved for llama.cpp's RoPE."""
    return (weight.reshape(n_head, 2, weight.shape[0] // n_head // 2, *weight.shape[1:])
            .swapaxes(1, 2).reshape(weight.shape))


GGUF_LAYER = {"input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm", "self_attn.q_proj": "attn_q",
              "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v", "self_attn.o_proj": "attn_output",
              "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up", "mlp.down_proj": "ffn_down"}


def write_gguf(model, path: Path, tokenizer: Tokenizer | None = None, arch: str = "llama") -> Path:
    """The transformers model as an F32 GGUF file, named and permuted as llama.cpp's converter does."""
    import json

    import gguf

    cfg = model.config
    tokenizer = tokenizer or tiny_tokenizer()
    spec = json.loads(tokenizer.to_str())
    vocab = spec["model"]["vocab"]
    tokens = sorted(vocab, key=vocab.get)
    merges = [m if isinstance(m, str) else " ".join(m) for m in spec["model"]["merges"]]
    types = [gguf.TokenType.CONTROL if t in SPECIALS else gguf.TokenType.NORMAL for t in tokens]
    head_dim = cfg.hidden_size // cfg.num_attention_heads
    w = gguf.GGUFWriter(str(path), arch)
    w.add_block_count(cfg.num_hidden_layers)
    w.add_context_length(cfg.max_position_embeddings)
    w.add_embedding_length(cfg.hidden_size)
    w.add_feed_forward_length(cfg.intermediate_size)
    w.add_head_count(cfg.num_attention_heads)
    w.add_head_count_kv(cfg.num_key_value_heads)
    w.add_rope_freq_base(float(cfg.rope_parameters["rope_theta"]))
    w.add_layer_norm_rms_eps(cfg.rms_norm_eps)
    w.add_vocab_size(cfg.vocab_size)
    w.add_rope_dimension_count(head_dim)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("smollm")
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(merges)
    w.add_bos_token_id(vocab["<|im_start|>"])
    w.add_eos_token_id(vocab["<|im_end|>"])
    w.add_chat_template(CHATML)
    for name, tensor in model.state_dict().items():
        value = tensor.detach().float().numpy().copy()
        if name == "lm_head.weight" and cfg.tie_word_embeddings:
            continue
        if name == "model.embed_tokens.weight":
            gname = "token_embd.weight"
        elif name == "model.norm.weight":
            gname = "output_norm.weight"
        elif name == "lm_head.weight":
            gname = "output.weight"
        else:
            _, _, layer, rest = name.split(".", 3)
            module, kind = rest.rsplit(".", 1)
            gname = f"blk.{layer}.{GGUF_LAYER[module]}.{kind}"
            if arch == "llama" and module == "self_attn.q_proj":
                value = llama_cpp_permute(value, cfg.num_attention_heads)
            elif arch == "llama" and module == "self_attn.k_proj":
                value = llama_cpp_permute(value, cfg.num_key_value_heads)
        w.add_tensor(gname, value)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path
