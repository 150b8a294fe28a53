"""The Llama family as lanbot's own model: Llama 2/3, SmolLM2 and Qwen2/2.5, built from one config dataclass.

torchtune's way: a plain nn.Module, the checkpoint converted at the edges (lanbot/sharing/hf_import.py,
gguf_import.py). Its parameter names are Hugging Face's (`model.layers.0.self_attn.q_proj.weight`), so a
Hugging Face state dict loads as it is, an export is a save, and peft's default Llama target modules apply.

- token embedding, RoPE on queries and keys (base `rope_theta`; Llama 3.1/3.2's frequency scaling where
  `rope_scaling_type="llama3"`), rotate-half layout as Hugging Face's (GGUF's interleaved Q/K are undone on import)
- RMSNorm with a learned weight before attention, the MLP and the lm_head (float32 inside, as Hugging Face's)
- grouped-query attention through F.scaled_dot_product_attention; q/k/v biases for Qwen2 (`attention_bias`)
- SwiGLU MLP (`down(silu(gate(x)) * up(x))`), no logit softcap, lm_head tied to the embedding where the config says
- the calling convention of lanbot's GPT (lanbot/training/model.py): `forward(idx)` -> logits, `forward(idx,
  targets)` -> loss (targets == -1 ignored, the fused CPU loss), `forward(new_ids, kv_cache=cache)` with the
  same KVCache, so training, the engine and batched evaluation take either model

    model = Llama(LlamaConfig(vocab_size=49152, n_layer=30, n_head=9, n_kv_head=3, n_embd=576,
                              intermediate_size=1536, rope_theta=100000.0, tie_word_embeddings=True))
    model.load_state_dict(state)                 # Hugging Face names
    loss = model(idx, targets)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import torch
import torch.nn as nn
import torch.nn.functional as F

from lanbot.training.linear_cross_entropy import linear_cross_entropy
from lanbot.training.model import KVCache, attention_mask

ARCHITECTURE = "llama"
ROPE_SCALINGS = ("", "llama3")


@dataclass
class LlamaConfig:
    """A Llama-family shape; field names shared with GPTConfig (`n_layer`, `n_kv_head`, ...) mean the same,
    so the KV cache, the settings check and the engine read either config."""

    sequence_len: int = 2048  # Hugging Face's max_position_embeddings: the rotary tables' length
    vocab_size: int = 32000
    n_layer: int = 4
    n_head: int = 4
    n_kv_head: int = 4
    n_embd: int = 256
    intermediate_size: int = 688
    head_dim: int = 0  # 0: n_embd // n_head (Hugging Face's default)
    rope_theta: float = 10000.0
    rms_norm_eps: float = 1e-5
    tie_word_embeddings: bool = False
    attention_bias: bool = False  # q/k/v biases (Qwen2: True)
    attention_out_bias: bool = False  # o_proj bias (Llama's attention_bias sets both; Qwen2 has none)
    mlp_bias: bool = False
    rope_scaling_type: str = ""  # "llama3": Llama 3.1/3.2's frequency-dependent scaling
    rope_factor: float = 1.0
    rope_low_freq_factor: float = 1.0
    rope_high_freq_factor: float = 4.0
    rope_original_max_len: int = 8192
    architecture: str = ARCHITECTURE

    def __post_init__(self) -> None:
        if self.architecture != ARCHITECTURE:
            raise ValueError(f"architecture={self.architecture!r}: LlamaConfig is {ARCHITECTURE!r}")
        for name in ("sequence_len", "vocab_size", "n_layer", "n_head", "n_kv_head", "n_embd", "intermediate_size"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name}={getattr(self, name)} must be a positive whole number")
        if self.n_head % self.n_kv_head:
            raise ValueError(f"n_kv_head={self.n_kv_head} must divide n_head={self.n_head}")
        if not self.head_dim:
            if self.n_embd % self.n_head:
                raise ValueError(f"n_embd={self.n_embd} must be divisible by n_head={self.n_head} (or set head_dim)")
            self.head_dim = self.n_embd // self.n_head
        if self.head_dim % 2:
            raise ValueError(f"head_dim={self.head_dim} must be even for rotary embeddings")
        if self.rope_scaling_type not in ROPE_SCALINGS:
            raise ValueError(f"rope_scaling_type={self.rope_scaling_type!r}: lanbot knows {ROPE_SCALINGS}")
        if not (self.rope_theta > 0 and self.rms_norm_eps > 0 and self.rope_factor > 0):
            raise ValueError("rope_theta, rms_norm_eps and rope_factor must be positive")

    @classmethod
    def from_mapping(cls, values: dict) -> LlamaConfig:
        """The config from a saved model_config (meta.json) or a `conf/model` node; unknown keys are ignored."""
        known = {f.name: f.type for f in fields(cls)}
        cast = {"int": int, "float": float, "bool": bool, "str": str}
        return cls(**{k: cast[str(known[k])](v) for k, v in values.items() if k in known})


def inverse_frequencies(config: LlamaConfig) -> torch.Tensor:
    """RoPE's angle per position of each dimension pair (head_dim / 2), with Llama 3's scaling if set:
    wavelengths longer than original_max_len / low_freq_factor slowed by `rope_factor`, shorter than
    original_max_len / high_freq_factor kept, those between blended (Hugging Face's _compute_llama3_parameters)."""
    d = config.head_dim
    inv = 1.0 / (config.rope_theta ** (torch.arange(0, d, 2, dtype=torch.int64).float() / d))
    if config.rope_scaling_type != "llama3":
        return inv
    old, low, high, factor = (config.rope_original_max_len, config.rope_low_freq_factor,
                              config.rope_high_freq_factor, config.rope_factor)
    wavelen = 2 * math.pi / inv
    scaled = torch.where(wavelen > old / low, inv / factor, inv)
    smooth = (old / wavelen - low) / (high - low)
    blended = (1 - smooth) * scaled / factor + smooth * scaled
    medium = (wavelen >= old / high) & (wavelen <= old / low)
    return torch.where(medium, blended, scaled)


def rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Hugging Face's rotate-half RoPE on x (B, H, T, D); cos and sin are (T, D/2)."""
    d = x.size(-1) // 2
    x1, x2 = x[..., :d], x[..., d:]
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1)


class RMSNorm(nn.Module):
    """x / rms(x) * weight, the normalising in float32 and the weight applied in the input's dtype."""

    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.weight * F.rms_norm(x.float(), (x.size(-1),), eps=self.eps).to(x.dtype)


def cache_attention_mask(kv_cache: KVCache | None, past: int, new: int, device: torch.device) -> torch.Tensor | None:
    """Causal attention of `new` queries over `past + new` keys, with a left-padded batch's padding hidden
    (lanbot's GPT does the same inline): a padding query sees itself, so no row of scores is all -inf."""
    mask = attention_mask(past, new, None, device)
    if kv_cache is None or kv_cache.key_mask is None:
        return mask
    if mask is None:
        mask = torch.ones(new, past + new, dtype=torch.bool, device=device).tril(diagonal=past)
    mask = mask & kv_cache.key_mask[:, None, None, : past + new]
    if new > 1:
        own = torch.arange(new, device=device).unsqueeze(1) + past
        mask = mask | (torch.arange(past + new, device=device).unsqueeze(0) == own)
    return mask


class Attention(nn.Module):
    def __init__(self, config: LlamaConfig, layer: int):
        super().__init__()
        self.layer = layer
        self.n_head, self.n_kv_head, self.head_dim = config.n_head, config.n_kv_head, config.head_dim
        qkv_bias = config.attention_bias
        self.q_proj = nn.Linear(config.n_embd, config.n_head * config.head_dim, bias=qkv_bias)
        self.k_proj = nn.Linear(config.n_embd, config.n_kv_head * config.head_dim, bias=qkv_bias)
        self.v_proj = nn.Linear(config.n_embd, config.n_kv_head * config.head_dim, bias=qkv_bias)
        self.o_proj = nn.Linear(config.n_head * config.head_dim, config.n_embd, bias=config.attention_out_bias)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, kv_cache: KVCache | None) -> torch.Tensor:
        B, T, _ = x.shape
        q = self.q_proj(x).view(B, T, self.n_head, self.head_dim).transpose(1, 2)
        k = self.k_proj(x).view(B, T, self.n_kv_head, self.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(B, T, self.n_kv_head, self.head_dim).transpose(1, 2)
        q, k = rotate(q, cos, sin), rotate(k, cos, sin)
        v = v.to(q.dtype)  # rotation in float32 tables promotes q and k under autocast
        past = 0
        if kv_cache is not None:
            past = kv_cache.pos
            k, v = kv_cache.update(self.layer, k, v)
            k, v = k.to(q.dtype), v.to(q.dtype)
        mask = cache_attention_mask(kv_cache, past, T, x.device)
        if self.n_kv_head != self.n_head:
            rep = self.n_head // self.n_kv_head
            k, v = k.repeat_interleave(rep, dim=1), v.repeat_interleave(rep, dim=1)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=mask is None and T > 1)
        return self.o_proj(y.transpose(1, 2).reshape(B, T, -1))


class MLP(nn.Module):
    def __init__(self, config: LlamaConfig):
        super().__init__()
        bias = config.mlp_bias
        self.gate_proj = nn.Linear(config.n_embd, config.intermediate_size, bias=bias)
        self.up_proj = nn.Linear(config.n_embd, config.intermediate_size, bias=bias)
        self.down_proj = nn.Linear(config.intermediate_size, config.n_embd, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class DecoderLayer(nn.Module):
    def __init__(self, config: LlamaConfig, layer: int):
        super().__init__()
        self.input_layernorm = RMSNorm(config.n_embd, config.rms_norm_eps)
        self.self_attn = Attention(config, layer)
        self.post_attention_layernorm = RMSNorm(config.n_embd, config.rms_norm_eps)
        self.mlp = MLP(config)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, kv_cache: KVCache | None) -> torch.Tensor:
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, kv_cache)
        return x + self.mlp(self.post_attention_layernorm(x))


class Llama(nn.Module):
    """A Llama-family decoder. `forward(idx)` -> logits (B, T, vocab); `forward(idx, targets)` -> loss."""

    def __init__(self, config: LlamaConfig):
        super().__init__()
        self.config = config
        self.model = nn.ModuleDict({
            "embed_tokens": nn.Embedding(config.vocab_size, config.n_embd),
            "layers": nn.ModuleList([DecoderLayer(config, i) for i in range(config.n_layer)]),
            "norm": RMSNorm(config.n_embd, config.rms_norm_eps),
        })
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        if config.tie_word_embeddings:
            self.lm_head.weight = self.model.embed_tokens.weight
        self.fused_loss = True  # LinearCrossEntropy on CPU; plain autograd elsewhere or if False
        # the model's own context (max_position_embeddings): what it was trained to attend over
        self.rotary_len = config.sequence_len
        cos, sin = self._rotary_tables()
        self.register_buffer("cos", cos, persistent=False)
        self.register_buffer("sin", sin, persistent=False)

    @classmethod
    def from_weights(cls, config: LlamaConfig, state: dict[str, torch.Tensor]) -> Llama:
        """The model holding `state`'s tensors themselves (Hugging Face names; a tied model's lm_head may be
        left out): built on the meta device, so no time goes to a random init that is overwritten."""
        with torch.device("meta"):
            model = cls(config)
        state = dict(state)
        if config.tie_word_embeddings:
            state.setdefault("lm_head.weight", state.get("model.embed_tokens.weight"))
        model.load_state_dict(state, strict=True, assign=True)
        if config.tie_word_embeddings:  # assign made two Parameters of one tensor: tie them again
            model.lm_head.weight = model.model.embed_tokens.weight
        device = model.model.embed_tokens.weight.device
        model.cos, model.sin = (t.to(device) for t in model._rotary_tables())
        return model

    def _rotary_tables(self) -> tuple[torch.Tensor, torch.Tensor]:
        angles = torch.outer(torch.arange(self.rotary_len, dtype=torch.float32), inverse_frequencies(self.config))
        return angles.cos(), angles.sin()

    @torch.no_grad()
    def init_weights(self, std: float = 0.02) -> None:
        """Hugging Face's init for a model trained from nothing: linears and the embedding N(0, 0.02)
        (initializer_range), biases zero, norm weights one."""
        for module in self.modules():
            if isinstance(module, nn.Linear | nn.Embedding):
                nn.init.normal_(module.weight, std=std)
            if isinstance(module, nn.Linear) and module.bias is not None:
                nn.init.zeros_(module.bias)
            if isinstance(module, RMSNorm):
                nn.init.ones_(module.weight)
        cos, sin = self._rotary_tables()
        self.cos.copy_(cos.to(self.cos.device))
        self.sin.copy_(sin.to(self.sin.device))

    def forward(
        self,
        idx: torch.Tensor,
        targets: torch.Tensor | None = None,
        kv_cache: KVCache | None = None,
        reduction: str = "mean",
    ) -> torch.Tensor:
        """Logits (B, T, vocab) if `targets` is None, else cross-entropy over targets != -1 (`reduction`
        "mean", "sum", or "none" per position, 0 where ignored). With `kv_cache`, `idx` holds only the new tokens."""
        if reduction not in ("mean", "sum", "none"):
            raise ValueError(f"reduction={reduction!r}: use 'mean', 'sum' or 'none'")
        B, T = idx.shape
        start = kv_cache.pos if kv_cache is not None else 0
        if start + T > self.rotary_len:
            raise ValueError(f"position {start + T} beyond the model's {self.rotary_len} positions")
        cos, sin = self.cos[start : start + T], self.sin[start : start + T]
        x = self.model.embed_tokens(idx)
        for layer in self.model.layers:
            x = layer(x, cos, sin, kv_cache)
        if kv_cache is not None:
            kv_cache.pos += T
        x = self.model.norm(x)
        if targets is not None and reduction != "none" and self.fused_loss and x.device.type == "cpu":
            flat = targets.reshape(-1)
            need_grad = torch.is_grad_enabled() and (x.requires_grad or self.lm_head.weight.requires_grad)
            total = linear_cross_entropy(x.reshape(B * T, -1), self.lm_head.weight, flat, need_grad)
            return total if reduction == "sum" else total / (flat != -1).sum()
        logits = self.lm_head(x)
        if targets is None:
            return logits
        loss = F.cross_entropy(logits.view(-1, logits.size(-1)).float(), targets.reshape(-1),
                               ignore_index=-1, reduction=reduction)
        return loss.view(B, T) if reduction == "none" else loss

    def num_params(self) -> int:
        """Number of parameters, a tied embedding counted once."""
        return sum(p.numel() for p in self.parameters())

    def flops_per_token(self) -> int:
        """Training FLOPs per token, nanochat's estimate as lanbot's GPT: 6 per matmul weight (the lm_head
        included, tied or not; the embedding lookup not) plus 12*layers*heads*head_dim*seq for attention."""
        c = self.config
        matmul_params = self.num_params() - self.model.embed_tokens.weight.numel() + self.lm_head.weight.numel() * (
            1 if c.tie_word_embeddings else 0)
        return 6 * matmul_params + 12 * c.n_layer * c.n_head * c.head_dim * c.sequence_len

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        """Parameters by role for lanbot's optimizers: a tied embedding once (under `embedding`), the 2-D
        block matrices under `matrix` (Muon suits only those), norm weights and biases under `scalar` (AdamW)."""
        blocks = list(self.model.layers.parameters()) + list(self.model.norm.parameters())
        return {
            "embedding": [self.model.embed_tokens.weight],
            "lm_head": [] if self.config.tie_word_embeddings else [self.lm_head.weight],
            "matrix": [p for p in blocks if p.dim() == 2],
            "scalar": [p for p in blocks if p.dim() != 2],
        }
