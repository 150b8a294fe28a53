"""lanbot's GPT: nanochat's architecture, rewritten small and readable.

Two variants (`GPTConfig.architecture`): `nanochat-2025`, lanbot's own and nanochat's late-2025 GPT, as
below; and `nanochat-2026`, nanochat's 2026 GPT, for checkpoints imported from it
(lanbot/sharing/nanochat_checkpoint.py): value embeddings mixed into the values of alternating layers
(the last always) through a per-head gate, per-layer scalars on the residual and on the first embedding
(x0), smear (a gated share of the previous token's embedding), backout (a share of the middle layer's
residual taken off before the last norm), queries and keys scaled by 1.2 after QK-norm, per-layer
sliding windows (`window_pattern`, as attention masks here: nanochat's flash-attn windows), rotary base
100000.

- token embedding, no positional embedding: rotary embeddings on queries and keys (base 10000)
- QK-norm, and functional RMSNorm (no learnable parameters) before attention, MLP, lm_head and after
  the embedding
- ReLU² MLP of width 4x, untied lm_head, no biases, logits soft-capped at 15 (tanh)
- grouped-query attention (`n_kv_head` divides `n_head`) through F.scaled_dot_product_attention
- a KV cache for inference: `forward(new_ids, kv_cache=cache)` prefills or decodes one token at a time

    model = GPT(GPTConfig(**cfg_fields)); model.init_weights()
    loss = model(idx, targets)                  # targets == -1 are ignored
    cache = KVCache(1, 256, model.config, "cpu", torch.float32); logits = model(prompt, kv_cache=cache)
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

SOFTCAP = 15.0  # logits = 15 * tanh(logits / 15), as nanochat
ROPE_BASE = 10000.0
ARCHITECTURES = ("nanochat-2025", "nanochat-2026")
SHAPE_FIELDS = ("sequence_len", "vocab_size", "n_layer", "n_head", "n_kv_head", "n_embd")
# The largest shape lanbot builds, checked before anything is allocated (a meta.json from the Hub or a nanochat
# folder is input like any other): 64x past nanochat's d32 (n_embd 2048, 32 layers, 65k vocab, 2k context).
SHAPE_LIMITS = {"sequence_len": 1 << 20, "vocab_size": 1 << 22, "n_layer": 1024, "n_head": 1024,
                "n_kv_head": 1024, "n_embd": 1 << 16}
SMEAR_CHANNELS = 24  # nanochat-2026: the smear gate reads the first 24 channels of the embedding
VE_GATE_CHANNELS = 12  # nanochat-2026: the value-embedding gate reads the first 12 channels
QK_SCALE = 1.2  # nanochat-2026: queries and keys scaled after QK-norm (sharper attention)


def shape_problems(fields: Mapping[str, Any], prefix: str = "") -> list[str]:
    """One line per broken rule of a GPT shape (empty: it builds): whole numbers within SHAPE_LIMITS, heads that
    divide the width, an even head dim, query heads a multiple of the key/value heads. The one owner of these
    rules: GPTConfig raises the first, the training settings check (`prefix="model."`) lists them all."""
    problems = []
    ok: dict[str, int] = {}
    for key in SHAPE_FIELDS:
        value = fields.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            problems.append(f"{prefix}{key}={value}: must be a positive whole number")
        elif value > SHAPE_LIMITS[key]:
            problems.append(f"{prefix}{key}={value}: must be at most {SHAPE_LIMITS[key]:,}")
        else:
            ok[key] = value
    if {"n_embd", "n_head"} <= ok.keys():
        if ok["n_embd"] % ok["n_head"]:
            problems.append(f"{prefix}n_embd={ok['n_embd']}: must be divisible by {prefix}n_head={ok['n_head']}")
        elif (ok["n_embd"] // ok["n_head"]) % 2:
            problems.append(f"{prefix}n_embd={ok['n_embd']}: n_embd / n_head = {ok['n_embd'] // ok['n_head']} "
                            "must be even (rotary embeddings rotate pairs)")
    if {"n_head", "n_kv_head"} <= ok.keys() and ok["n_head"] % ok["n_kv_head"]:
        problems.append(f"{prefix}n_kv_head={ok['n_kv_head']}: must divide {prefix}n_head={ok['n_head']}")
    return problems


def available_memory() -> int | None:
    """Bytes of memory free for a new model (Linux's MemAvailable; elsewhere the free pages), None if unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, AttributeError):
        return None


@dataclass
class GPTConfig:
    """The shape of a GPT; `conf/model/<name>.yaml` holds these fields plus `name`."""

    sequence_len: int = 512
    vocab_size: int = 4096
    n_layer: int = 4
    n_head: int = 4
    n_kv_head: int = 4
    n_embd: int = 256
    architecture: str = "nanochat-2025"
    window_pattern: str = "L"  # nanochat-2026: S (a quarter of sequence_len) / L windows, tiled over layers
    rope_base: float = ROPE_BASE  # nanochat-2026: 100000
    rope_bf16: bool = False  # nanochat-2025 keeps its rotary tables in bfloat16 (on CPU too): imports match it

    def __post_init__(self) -> None:
        problems = shape_problems(vars(self))
        if problems:
            raise ValueError(problems[0])
        need, have = self.bytes_needed(), available_memory()
        if have is not None and need > have:
            raise ValueError(f"this shape needs about {need / 2**30:,.1f} GiB to build in float32 "
                             f"({self.estimated_params():,} parameters), and {have / 2**30:,.1f} GiB are free")
        if self.architecture not in ARCHITECTURES:
            raise ValueError(f"architecture={self.architecture!r}: choose {' or '.join(ARCHITECTURES)}")
        if not self.window_pattern or set(self.window_pattern.upper()) - set("SL"):
            raise ValueError(f"window_pattern={self.window_pattern!r}: use the letters S and L only")
        if self.modern and self.n_embd < SMEAR_CHANNELS:
            raise ValueError(f"n_embd={self.n_embd}: nanochat-2026 needs at least {SMEAR_CHANNELS} (its smear gate)")

    @property
    def head_dim(self) -> int:
        return self.n_embd // self.n_head

    def estimated_params(self) -> int:
        """An upper bound on the parameter count, from the shape alone: embedding, lm_head and nanochat-2026's
        value embeddings (one per layer at most), and 12 * n_embd^2 per block (attention 4, MLP 8)."""
        c, v = self.n_embd, self.vocab_size
        return 2 * v * c + self.n_layer * (12 * c * c + (v * c if self.architecture == "nanochat-2026" else 0))

    def bytes_needed(self) -> int:
        """Float32 bytes to build the model: its parameters and its rotary tables (10x the context, cos + sin)."""
        return 4 * (self.estimated_params() + 2 * 10 * self.sequence_len * self.n_embd // max(self.n_head, 1) // 2)

    @property
    def modern(self) -> bool:
        """True for nanochat's 2026 GPT."""
        return self.architecture == "nanochat-2026"

    def window_sizes(self) -> list[int | None]:
        """How many keys to its left each layer's query sees (None: all): nanochat-2026's L is sequence_len,
        S a quarter of it rounded up to 128 (flash-attn's tile), the last layer always L."""
        if not self.modern:
            return [None] * self.n_layer
        long, short = self.sequence_len, -(-self.sequence_len // 4 // 128) * 128
        pattern = self.window_pattern.upper()
        sizes = [short if pattern[i % len(pattern)] == "S" else long for i in range(self.n_layer)]
        return [*sizes[:-1], long]

    @classmethod
    def from_mapping(cls, fields: Mapping[str, Any]) -> GPTConfig:
        """The config from a `conf/model/<name>.yaml` node (its `name` and any extra keys are ignored)."""
        missing = [n for n in SHAPE_FIELDS if n not in fields]
        if missing:
            raise ValueError(f"model config lacks {missing}; conf/model/<name>.yaml must set {list(SHAPE_FIELDS)}")
        types = {f.name: f.type for f in dataclasses.fields(cls)}
        cast = {"int": int, "str": str, "float": float, "bool": bool}
        return cls(**{n: cast[str(types[n])](fields[n]) for n in types if n in fields})


def has_value_embedding(layer: int, n_layer: int) -> bool:
    """nanochat-2026: value embeddings on alternating layers, the last one always among them."""
    return layer % 2 == (n_layer - 1) % 2


def attention_mask(past: int, new: int, window: int | None, device: torch.device) -> torch.Tensor | None:
    """Which of the `past + new` keys each new query sees (True = attend): causal, and within `window`
    keys to its left. None where no mask is needed: causal attention from position 0, or one query
    that sees every key."""
    total = past + new
    if (past == 0 or new == 1) and (window is None or window >= total - 1):
        return None
    rows = torch.arange(past, total, device=device).unsqueeze(1)
    cols = torch.arange(total, device=device).unsqueeze(0)
    keep = cols <= rows
    if window is not None:
        keep &= rows - cols <= window
    return keep


def norm(x: torch.Tensor) -> torch.Tensor:
    """RMSNorm without learnable parameters."""
    return F.rms_norm(x, (x.size(-1),))


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate the two halves of the last dim of x (B, H, T, D) by the angles in cos/sin (T, D/2)."""
    d = x.size(-1) // 2
    x1, x2 = x[..., :d], x[..., d:]
    return torch.cat([x1 * cos + x2 * sin, x2 * cos - x1 * sin], dim=-1)


class SoftcapCrossEntropy(torch.autograd.Function):
    """lm_head matmul + softcap + cross-entropy in one, for CPU training.

    Autograd would keep several (tokens x vocab) tensors (logits, tanh, log-softmax, their gradients)
    and sweep each through memory; here the logits are made a slice of rows at a time, and while the
    slice is still in cache its loss and its gradient with respect to the logits are computed. Backward
    is then two large matmuls. The loss is the sum over targets != -1 (the caller divides for a mean);
    with `need_grad` False (evaluation) only the loss is made, one slice of memory at a time.

    `low` (bf16 autocast on a CPU with native bf16): the three matmuls run in bf16 and the kept gradient
    is bf16, half the memory; the softcap, softmax and loss of each slice stay float32.
    """

    slice_elements = 1 << 22  # logits per slice (16 MB of float32): measured best on d4 (1 << 20..24)

    @staticmethod
    def forward(
        ctx, x: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, need_grad: bool, low: bool = False
    ) -> torch.Tensor:
        n, vocab = x.size(0), weight.size(0)
        rows = max(16, SoftcapCrossEntropy.slice_elements // vocab)
        ctx.dtypes = (x.dtype, weight.dtype)
        x, weight = (x.to(torch.bfloat16), weight.to(torch.bfloat16)) if low else (x.to(weight.dtype), weight)
        # full precision: logits are written in place into the buffer that ends holding d loss / d logits;
        # low: each slice is worked in a float32 buffer and its gradient copied into the bf16 one
        kept = torch.empty(n if need_grad else min(rows, n), vocab, dtype=x.dtype, device=x.device)
        work = torch.empty(min(rows, n), vocab, dtype=torch.float32, device=x.device) if low else None
        scratch = torch.empty(min(rows, n), vocab, dtype=torch.float32, device=x.device)
        total = torch.zeros((), dtype=torch.float32, device=x.device)
        weight_t = weight.t()
        for i in range(0, n, rows):
            ys = targets[i : i + rows]
            valid = ys != -1
            safe = ys.clamp(min=0).unsqueeze(1)
            xs = x[i : i + rows]
            out = kept[i : i + rows] if need_grad else kept[: xs.size(0)]
            torch.mm(xs, weight_t, out=out)
            t = work[: xs.size(0)].copy_(out) if low else out
            t.div_(SOFTCAP).tanh_()  # logits = SOFTCAP * t
            e = torch.mul(t, SOFTCAP, out=scratch[: t.size(0)]).exp_()  # |logits| <= 15: no max needed
            total_exp = e.sum(dim=1, keepdim=True)
            t_target = t.gather(1, safe)
            total += ((total_exp.log() - SOFTCAP * t_target).squeeze(1) * valid).sum()
            if need_grad:
                p = e.div_(total_exp)  # softmax
                # d loss / d raw logit = (p - onehot) * (1 - t^2) = p - p*t^2 - onehot*(1 - t^2)
                torch.sub(p, t.mul_(t).mul_(p), out=t)
                t.scatter_add_(1, safe, t_target.square_().sub_(1))
                if not bool(valid.all()):
                    t[~valid] = 0.0
                if low:
                    out.copy_(t)
        ctx.save_for_backward(x, weight, kept if need_grad else None)
        return total

    @staticmethod
    def backward(ctx, grad_total: torch.Tensor):
        x, weight, dlogits = ctx.saved_tensors
        x_dtype, w_dtype = ctx.dtypes
        # grad_total is a scalar: scale the (small) matmul outputs rather than the (tokens x vocab) input
        grad_x = (dlogits @ weight).to(x_dtype).mul_(grad_total) if ctx.needs_input_grad[0] else None
        grad_w = (dlogits.t() @ x).to(w_dtype).mul_(grad_total) if ctx.needs_input_grad[1] else None
        return grad_x, grad_w, None, None, None


@torch.compiler.disable
def softcap_cross_entropy(x: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, need_grad: bool) -> torch.Tensor:
    """SoftcapCrossEntropy outside any torch.compile graph (a graph break): compiled blocks, eager loss. Under
    CPU bf16 autocast it takes the bf16 path; autocast itself is off inside, since its matmuls pick their dtypes."""
    low = torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16
    with torch.autocast("cpu", enabled=False):
        return SoftcapCrossEntropy.apply(x, weight, targets, need_grad, low)


class KVCache:
    """Keys and values of every layer for `batch_size` sequences of up to `max_len` tokens.

    `pos` is how many tokens are already cached (the rotary offset of the next token); the model
    advances it after each forward.
    """

    def __init__(
        self,
        batch_size: int,
        max_len: int,
        config: GPTConfig,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
    ):
        shape = (config.n_layer, batch_size, config.n_kv_head, max_len, config.head_dim)
        self.k = torch.zeros(shape, device=device, dtype=dtype)
        self.v = torch.zeros(shape, device=device, dtype=dtype)
        self.batch_size, self.max_len = batch_size, max_len
        self.pos = 0
        # (B, max_len) True where a cached position holds a real token; None = every position does.
        # Prompts of different lengths share one batch left-padded: rotary scores depend only on the
        # distance between query and key, so a row shifted right by its padding attends exactly as alone.
        self.key_mask: torch.Tensor | None = None
        self.rows = list(range(batch_size))  # the batch row each row started as (keep_rows drops some)
        self.prev: torch.Tensor | None = None  # nanochat-2026: the last token's embedding, for smear

    def pad_left(self, lengths: list[int], total: int) -> None:
        """Mark the first `total - length` positions of each row as padding (prompts left-padded to `total`)."""
        positions = torch.arange(self.max_len, device=self.k.device)
        pads = torch.tensor([total - n for n in lengths], device=self.k.device)
        self.key_mask = positions.unsqueeze(0) >= pads.unsqueeze(1)

    def reset(self) -> None:
        """Forget everything cached (the buffers are reused)."""
        self.pos, self.prev = 0, None

    def repeat(self, batch_size: int) -> KVCache:
        """A new cache of `batch_size` rows, each a copy of this cache's first row: prefill a prompt once,
        then sample several continuations of it."""
        layers, _, heads, max_len, head_dim = self.k.shape
        other = KVCache.__new__(KVCache)
        other.k = self.k[:, :1].expand(layers, batch_size, heads, max_len, head_dim).clone()
        other.v = self.v[:, :1].expand(layers, batch_size, heads, max_len, head_dim).clone()
        other.batch_size, other.max_len, other.pos = batch_size, max_len, self.pos
        other.key_mask = None if self.key_mask is None else self.key_mask[:1].expand(batch_size, -1).clone()
        other.rows = list(range(batch_size))
        other.prev = None if self.prev is None else self.prev[:1].expand(batch_size, -1, -1).clone()
        return other

    def repeat_rows(self, n: int) -> KVCache:
        """A new cache with each row repeated `n` times in place (rows a, a, b, b for n=2): prefill several
        prompts once, then sample `n` continuations of each."""
        other = KVCache.__new__(KVCache)
        other.k = self.k.repeat_interleave(n, dim=1)
        other.v = self.v.repeat_interleave(n, dim=1)
        other.batch_size, other.max_len, other.pos = self.batch_size * n, self.max_len, self.pos
        other.key_mask = None if self.key_mask is None else self.key_mask.repeat_interleave(n, dim=0)
        other.rows = list(range(other.batch_size))
        other.prev = None if self.prev is None else self.prev.repeat_interleave(n, dim=0)
        return other

    def keep_rows(self, rows: list[int]) -> None:
        """Drop every row not in `rows` (finished answers stop costing compute)."""
        index = torch.tensor(rows, device=self.k.device)
        self.k, self.v = self.k.index_select(1, index), self.v.index_select(1, index)
        if self.key_mask is not None:
            self.key_mask = self.key_mask.index_select(0, index)
        if self.prev is not None:
            self.prev = self.prev.index_select(0, index)
        self.batch_size, self.rows = len(rows), [self.rows[i] for i in rows]

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Store the new k/v (B, Hkv, T, D) of `layer` at `pos`; return all cached k/v up to them."""
        t = k.size(2)
        end = self.pos + t
        if end > self.max_len:
            raise ValueError(f"KV cache full: {self.pos} cached + {t} new > max_len {self.max_len}")
        self.k[layer, :, :, self.pos : end] = k
        self.v[layer, :, :, self.pos : end] = v
        return self.k[layer, :, :, :end], self.v[layer, :, :, :end]


class CausalSelfAttention(nn.Module):
    def __init__(self, config: GPTConfig, layer: int):
        super().__init__()
        self.layer = layer
        self.n_head, self.n_kv_head, self.head_dim = config.n_head, config.n_kv_head, config.head_dim
        self.modern, self.window = config.modern, config.window_sizes()[layer]
        self.c_q = nn.Linear(config.n_embd, config.n_head * self.head_dim, bias=False)
        self.c_k = nn.Linear(config.n_embd, config.n_kv_head * self.head_dim, bias=False)
        self.c_v = nn.Linear(config.n_embd, config.n_kv_head * self.head_dim, bias=False)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=False)
        if config.modern and has_value_embedding(layer, config.n_layer):
            self.ve_gate = nn.Linear(VE_GATE_CHANNELS, config.n_kv_head, bias=False)

    def forward(
        self,
        x: torch.Tensor,
        cos: torch.Tensor,
        sin: torch.Tensor,
        kv_cache: KVCache | None,
        ve: torch.Tensor | None = None,
    ) -> torch.Tensor:
        B, T, C = x.shape
        q = self.c_q(x).view(B, T, self.n_head, self.head_dim)
        k = self.c_k(x).view(B, T, self.n_kv_head, self.head_dim)
        v = self.c_v(x).view(B, T, self.n_kv_head, self.head_dim)
        if ve is not None:  # nanochat-2026: value embedding through a per-head gate in (0, 3)
            gate = 3 * torch.sigmoid(self.ve_gate(x[..., :VE_GATE_CHANNELS]))
            v = v + gate.unsqueeze(-1) * ve.view(B, T, self.n_kv_head, self.head_dim)
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
        q, k = norm(apply_rotary(q, cos, sin)), norm(apply_rotary(k, cos, sin))
        if self.modern:
            q, k = q * QK_SCALE, k * QK_SCALE
        past = 0
        if kv_cache is not None:
            past = kv_cache.pos
            k, v = kv_cache.update(self.layer, k, v)
            k, v = k.to(q.dtype), v.to(q.dtype)  # a float32 cache under bf16 autocast, or the reverse
        mask = attention_mask(past, T, self.window, x.device)
        if kv_cache is not None and kv_cache.key_mask is not None:
            # padding is never seen; a padding query sees itself, so no row of scores is all -inf (NaN)
            if mask is None:  # query i (absolute position past+i) sees keys 0..past+i
                mask = torch.ones(T, past + T, dtype=torch.bool, device=x.device).tril(diagonal=past)
            mask = mask & kv_cache.key_mask[:, None, None, : past + T]
            if T > 1:
                own = torch.arange(T, device=x.device).unsqueeze(1) + past
                mask = mask | (torch.arange(past + T, device=x.device).unsqueeze(0) == own)
        causal = mask is None and T > 1
        if self.n_kv_head != self.n_head:
            rep = self.n_head // self.n_kv_head
            k, v = k.repeat_interleave(rep, dim=1), v.repeat_interleave(rep, dim=1)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal)
        return self.c_proj(y.transpose(1, 2).reshape(B, T, C))


class MLP(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=False)
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.c_proj(F.relu(self.c_fc(x)).square())


class Block(nn.Module):
    def __init__(self, config: GPTConfig, layer: int):
        super().__init__()
        self.attn = CausalSelfAttention(config, layer)
        self.mlp = MLP(config)

    def forward(
        self,
        x: torch.Tensor,
        cos: torch.Tensor,
        sin: torch.Tensor,
        kv_cache: KVCache | None,
        ve: torch.Tensor | None = None,
    ) -> torch.Tensor:
        x = x + self.attn(norm(x), cos, sin, kv_cache, ve)
        return x + self.mlp(norm(x))


class GPT(nn.Module):
    """nanochat's GPT. `forward(idx)` -> logits (B, T, vocab); `forward(idx, targets)` -> loss."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.config = config
        self.transformer = nn.ModuleDict(
            {
                "wte": nn.Embedding(config.vocab_size, config.n_embd),
                "h": nn.ModuleList([Block(config, i) for i in range(config.n_layer)]),
            }
        )
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        if config.modern:  # parameter names as nanochat's, so its state dict loads as it is
            kv_dim = config.n_kv_head * config.head_dim
            self.resid_lambdas = nn.Parameter(torch.ones(config.n_layer))
            self.x0_lambdas = nn.Parameter(torch.zeros(config.n_layer))
            self.smear_gate = nn.Linear(SMEAR_CHANNELS, 1, bias=False)
            self.smear_lambda = nn.Parameter(torch.zeros(1))
            self.backout_lambda = nn.Parameter(torch.full((1,), 0.2))
            self.value_embeds = nn.ModuleDict({str(i): nn.Embedding(config.vocab_size, kv_dim)
                                               for i in range(config.n_layer) if has_value_embedding(i, config.n_layer)})
        self.fused_loss = True  # SoftcapCrossEntropy on CPU; plain autograd elsewhere or if False
        # rotary tables for 10x the training context, so long generations still have angles
        self.rotary_len = config.sequence_len * 10
        cos, sin = self._rotary_tables(self.rotary_len)
        self.register_buffer("cos", cos, persistent=False)
        self.register_buffer("sin", sin, persistent=False)

    def _rotary_tables(self, length: int) -> tuple[torch.Tensor, torch.Tensor]:
        d = self.config.head_dim
        inv_freq = 1.0 / (self.config.rope_base ** (torch.arange(0, d, 2, dtype=torch.float32) / d))
        angles = torch.outer(torch.arange(length, dtype=torch.float32), inv_freq)
        cos, sin = angles.cos(), angles.sin()
        if self.config.rope_bf16:
            cos, sin = cos.bfloat16().float(), sin.bfloat16().float()
        return cos, sin

    @torch.no_grad()
    def init_weights(self) -> None:
        """nanochat's init: embedding N(0, 1), lm_head N(0, 0.001), input projections uniform with
        std 1/sqrt(n_embd), output projections (attention and MLP) zero, so each block starts as identity.
        nanochat-2026's differs: embedding std 0.8, c_fc at 0.4x, residual scalars from 1.15 down to 1.05 and
        x0 scalars from 0.20 down to 0.05 over the layers, gates uniform in [0, 0.02], smear off, backout 0.2."""
        modern = self.config.modern
        nn.init.normal_(self.transformer.wte.weight, std=0.8 if modern else 1.0)
        nn.init.normal_(self.lm_head.weight, std=0.001)
        bound = math.sqrt(3.0 / self.config.n_embd)
        for block in self.transformer.h:
            for lin in (block.attn.c_q, block.attn.c_k, block.attn.c_v):
                nn.init.uniform_(lin.weight, -bound, bound)
            fc = bound * (0.4 if modern else 1.0)
            nn.init.uniform_(block.mlp.c_fc.weight, -fc, fc)
            nn.init.zeros_(block.attn.c_proj.weight)
            nn.init.zeros_(block.mlp.c_proj.weight)
            if hasattr(block.attn, "ve_gate"):
                nn.init.uniform_(block.attn.ve_gate.weight, 0.0, 0.02)
        if modern:
            depth = torch.arange(self.config.n_layer, dtype=torch.float32) / max(self.config.n_layer - 1, 1)
            self.resid_lambdas.copy_(1.15 - 0.10 * depth)
            self.x0_lambdas.copy_(0.20 - 0.15 * depth)
            nn.init.zeros_(self.smear_lambda)
            nn.init.constant_(self.backout_lambda, 0.2)
            nn.init.uniform_(self.smear_gate.weight, 0.0, 0.02)
            for ve in self.value_embeds.values():
                nn.init.uniform_(ve.weight, -bound, bound)
        cos, sin = self._rotary_tables(self.rotary_len)
        self.cos.copy_(cos.to(self.cos.device))
        self.sin.copy_(sin.to(self.sin.device))

    def forward(
        self,
        idx: torch.Tensor,
        targets: torch.Tensor | None = None,
        kv_cache: KVCache | None = None,
        reduction: str = "mean",
    ) -> torch.Tensor:
        """Logits (B, T, vocab) if `targets` is None, else cross-entropy over targets != -1
        (`reduction="mean"` one number, `"sum"`, or `"none"` per position, 0 where ignored).

        With `kv_cache`, `idx` holds only the new tokens; they are appended to the cache."""
        if reduction not in ("mean", "sum", "none"):
            raise ValueError(f"reduction={reduction!r}: use 'mean', 'sum' or 'none'")
        B, T = idx.shape
        start = kv_cache.pos if kv_cache is not None else 0
        if start + T > self.rotary_len:
            raise ValueError(f"position {start + T} beyond the rotary tables ({self.rotary_len})")
        cos, sin = self.cos[start : start + T], self.sin[start : start + T]
        x = norm(self.transformer.wte(idx))
        if self.config.modern:
            x = self._trunk_2026(idx, self._smear(x, kv_cache), cos, sin, kv_cache)
        else:
            for block in self.transformer.h:
                x = block(x, cos, sin, kv_cache)
        if kv_cache is not None:
            kv_cache.pos += T
        x = norm(x)
        # on CPU the fused loss saves memory traffic, compiled or not (the (tokens x vocab) logits never exist)
        if targets is not None and reduction != "none" and self.fused_loss and x.device.type == "cpu":
            flat = targets.reshape(-1)
            # grad mode is off inside Function.forward: decide here whether the gradient is needed
            need_grad = torch.is_grad_enabled() and (x.requires_grad or self.lm_head.weight.requires_grad)
            total = softcap_cross_entropy(x.reshape(B * T, -1), self.lm_head.weight, flat, need_grad)
            return total if reduction == "sum" else total / (flat != -1).sum()
        logits = self.lm_head(x)
        logits = SOFTCAP * torch.tanh(logits / SOFTCAP)
        if targets is None:
            return logits
        loss = F.cross_entropy(
            logits.view(-1, logits.size(-1)).float(),
            targets.reshape(-1),
            ignore_index=-1,
            reduction=reduction,
        )
        return loss.view(B, T) if reduction == "none" else loss

    def _smear(self, x: torch.Tensor, kv_cache: KVCache | None) -> torch.Tensor:
        """nanochat-2026: add a gated share of the previous token's embedding to each token's (the first
        token of a sequence has none; with a cache, the last cached token's is the previous one)."""
        prev = x[:, :-1]
        if kv_cache is not None:
            if kv_cache.prev is not None:
                prev = torch.cat([kv_cache.prev.to(x.dtype), prev], dim=1)
            kv_cache.prev = x[:, -1:]
        start = x.size(1) - prev.size(1)
        if prev.size(1) == 0:
            return x
        gate = self.smear_lambda * torch.sigmoid(self.smear_gate(x[:, start:, :SMEAR_CHANNELS]))
        if kv_cache is not None and kv_cache.key_mask is not None:  # padding is no previous token
            first = kv_cache.pos + start - 1  # absolute position of prev's first token
            prev = prev * kv_cache.key_mask[:, first : first + prev.size(1)].unsqueeze(-1).to(prev.dtype)
        return torch.cat([x[:, :start], x[:, start:] + gate * prev], dim=1)

    def _trunk_2026(
        self, idx: torch.Tensor, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, kv_cache: KVCache | None
    ) -> torch.Tensor:
        """nanochat-2026's blocks: each input rescaled and mixed with the first (x0); value embeddings on
        their layers; the middle layer's output, scaled by backout_lambda, taken off the end."""
        x0, middle, backout = x, None, self.config.n_layer // 2
        for i, block in enumerate(self.transformer.h):
            x = self.resid_lambdas[i] * x + self.x0_lambdas[i] * x0
            ve = self.value_embeds[str(i)](idx) if str(i) in self.value_embeds else None
            x = block(x, cos, sin, kv_cache, ve)
            if i == backout:
                middle = x
        return x - self.backout_lambda * middle

    def num_params(self) -> int:
        """Number of parameters (embedding and lm_head included)."""
        return sum(p.numel() for p in self.parameters())

    def flops_per_token(self) -> int:
        """Training FLOPs per token (forward + backward), nanochat's estimate: 6 per matmul weight
        (every parameter but the embedding lookup, lm_head included) plus 12*layers*heads*head_dim*seq
        for the attention scores and their weighted sum."""
        c = self.config
        lookups = [self.transformer.wte.weight, *(p for n, p in self.named_parameters() if n.startswith("value_embeds."))]
        matmul_params = self.num_params() - sum(p.numel() for p in lookups)
        seen = sum(min(w or c.sequence_len, c.sequence_len) for w in c.window_sizes())  # keys per layer
        return 6 * matmul_params + 12 * c.n_head * c.head_dim * seen

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        """Parameters by role, for optimizers that treat them differently (nanochat: separate learning
        rates for the embedding, the lm_head and the matrices of the blocks; nanochat-2026 adds its value
        embeddings to the embeddings and its scalars and smear gate, kept on AdamW)."""
        modern = self.config.modern
        scalars = [self.resid_lambdas, self.x0_lambdas, self.smear_gate.weight, self.smear_lambda,
                   self.backout_lambda] if modern else []
        return {
            "embedding": [self.transformer.wte.weight, *(self.value_embeds.parameters() if modern else [])],
            "lm_head": [self.lm_head.weight],
            "matrix": [p for p in self.transformer.h.parameters()],
            "scalar": scalars,
        }
