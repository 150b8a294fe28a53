"""GPT: shapes, masked loss, the fused CPU loss, KV-cache decoding, GQA, parameter counts, overfitting."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf

from lanbot.core.config import CONF_DIR
from lanbot.training.model import GPT, GPTConfig, KVCache, SoftcapCrossEntropy


def make_model(seed: int = 0, **overrides) -> GPT:
    """A small GPT whose output projections are non-zero, so every block really changes the output."""
    fields = {"sequence_len": 32, "vocab_size": 97, "n_layer": 2, "n_head": 4, "n_kv_head": 4, "n_embd": 32}
    torch.manual_seed(seed)
    model = GPT(GPTConfig(**{**fields, **overrides}))
    model.init_weights()
    with torch.no_grad():
        for block in model.transformer.h:
            block.attn.c_proj.weight.normal_(std=0.1)
            block.mlp.c_proj.weight.normal_(std=0.1)
        model.lm_head.weight.normal_(std=0.3)
    return model


def test_shapes_and_init() -> None:
    model = make_model()
    idx = torch.randint(0, 97, (3, 16))
    assert model(idx).shape == (3, 16, 97)
    assert model(idx, idx).shape == ()
    fresh = GPT(model.config)
    fresh.init_weights()
    assert all(not b.attn.c_proj.weight.any() and not b.mlp.c_proj.weight.any() for b in fresh.transformer.h)
    # lm_head starts tiny, so the first loss is about ln(vocab)
    assert fresh(idx, idx).item() == pytest.approx(math.log(97), abs=0.05)
    logits = model(idx)
    assert logits.abs().max() <= 15.0  # soft-capped


@pytest.mark.parametrize("fused", [True, False])
def test_loss_ignores_minus_one(fused: bool) -> None:
    model = make_model()
    model.fused_loss = fused
    idx = torch.randint(0, 97, (2, 20))
    targets = torch.randint(0, 97, (2, 20))
    targets[0, :7] = -1
    targets[1, 15:] = -1
    logits = model(idx)
    valid = targets != -1
    expected = F.cross_entropy(logits[valid], targets[valid])
    assert model(idx, targets).item() == pytest.approx(expected.item(), rel=1e-5)
    assert model(idx, targets, reduction="sum").item() == pytest.approx(
        expected.item() * valid.sum().item(), rel=1e-5
    )
    per_token = model(idx, targets, reduction="none")
    assert per_token.shape == (2, 20) and not per_token[~valid].any()
    assert per_token[valid].mean().item() == pytest.approx(expected.item(), rel=1e-5)
    # changing an ignored target changes nothing
    other = targets.clone()
    other[0, :7] = 5
    assert model(idx, other).item() != pytest.approx(expected.item(), rel=1e-5)


def test_fused_loss_gradients_match_autograd() -> None:
    idx = torch.randint(0, 97, (3, 24))
    targets = torch.randint(0, 97, (3, 24))
    targets[:, :5] = -1
    results = []
    for fused in (True, False):
        model = make_model()
        model.fused_loss = fused
        loss = model(idx, targets)
        (2.5 * loss).backward()  # a non-unit upstream gradient
        results.append((loss.item(), {n: p.grad for n, p in model.named_parameters()}))
    (loss_f, grads_f), (loss_p, grads_p) = results
    assert loss_f == pytest.approx(loss_p, rel=1e-6)
    for name, grad in grads_p.items():
        torch.testing.assert_close(grads_f[name], grad, rtol=1e-4, atol=1e-6, msg=name)


@pytest.mark.filterwarnings("error")
def test_fused_loss_under_cpu_bf16_autocast_tracks_float32_autograd(monkeypatch) -> None:
    # bf16 matmuls with float32 softcap and softmax, ragged 16-row slices: within bf16's rounding of float32
    monkeypatch.setattr(SoftcapCrossEntropy, "slice_elements", 16 * 97)
    idx = torch.randint(0, 97, (3, 23))
    targets = torch.randint(0, 97, (3, 23))
    targets[1, :6] = -1
    plain = make_model()
    plain.fused_loss = False
    expected = plain(idx, targets)
    (2.5 * expected).backward()
    model = make_model()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = model(idx, targets)
    (2.5 * loss).backward()
    assert loss.dtype == torch.float32 and loss.item() == pytest.approx(expected.item(), rel=2e-3)
    for name, param in plain.named_parameters():
        grad = dict(model.named_parameters())[name].grad
        assert grad.dtype == torch.float32, name
        assert ((grad - param.grad).norm() / param.grad.norm()).item() < 0.02, name


@pytest.mark.filterwarnings("error")  # e.g. an output resized for a slice of the wrong size
def test_fused_loss_in_ragged_slices_with_and_without_grad(monkeypatch) -> None:
    # 16-row slices over 3 x 23 = 69 tokens: the last slice is partial
    monkeypatch.setattr(SoftcapCrossEntropy, "slice_elements", 16 * 97)
    idx = torch.randint(0, 97, (3, 23))
    targets = torch.randint(0, 97, (3, 23))
    targets[2, 10:] = -1
    plain = make_model()
    plain.fused_loss = False
    expected = plain(idx, targets)
    expected.backward()
    model = make_model()
    with torch.no_grad():
        assert model(idx, targets).item() == pytest.approx(expected.item(), rel=1e-5)
    loss = model(idx, targets)
    loss.backward()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    torch.testing.assert_close(model.lm_head.weight.grad, plain.lm_head.weight.grad, rtol=1e-4, atol=1e-6)


def _check_cache_matches_full(model: GPT, batch: int, chunks: list[int]) -> None:
    model.eval()
    total = sum(chunks)
    idx = torch.randint(0, model.config.vocab_size, (batch, total))
    with torch.no_grad():
        full = model(idx)
        cache = KVCache(batch, total + 4, model.config, "cpu", torch.float32)
        pieces, start = [], 0
        for n in chunks:
            pieces.append(model(idx[:, start : start + n], kv_cache=cache))
            start += n
            assert cache.pos == start
    torch.testing.assert_close(torch.cat(pieces, dim=1), full, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("batch", [1, 2])
def test_kv_cache_prefill_then_single_steps(batch: int) -> None:
    _check_cache_matches_full(make_model(), batch, [7, 1, 1, 1, 1, 1])


def test_kv_cache_chunked_prefill_masks_causally() -> None:
    # T > 1 with tokens already cached: each new query sees the cache and only the new tokens before it
    _check_cache_matches_full(make_model(), 2, [5, 4, 1, 3])


def test_kv_cache_with_grouped_query_attention() -> None:
    _check_cache_matches_full(make_model(n_kv_head=2), 2, [6, 1, 1, 3])
    _check_cache_matches_full(make_model(n_kv_head=1), 1, [6, 1, 1])


@pytest.mark.parametrize("architecture", ["nanochat-2025", "nanochat-2026"])
def test_left_padded_rows_decode_as_each_prompt_alone(architecture: str) -> None:
    # prompts of 3, 7 and 5 tokens in one batch: padding masked, each row's logits (prefill and every
    # decode step) are those of its prompt decoded alone, though its positions are shifted by its padding
    model = make_model(n_kv_head=2, architecture=architecture).eval()
    if architecture == "nanochat-2026":  # smear on, so the token before a prompt's first one (padding) matters
        with torch.no_grad():
            model.smear_lambda.fill_(0.5)
    prompts = [torch.randint(0, 97, (n,)) for n in (3, 7, 5)]
    steps = torch.randint(0, 97, (3, 4))
    longest = max(len(p) for p in prompts)
    with torch.no_grad():
        cache = KVCache(3, longest + 4, model.config)
        cache.pad_left([len(p) for p in prompts], longest)
        padded = torch.stack([torch.cat([torch.zeros(longest - len(p), dtype=torch.long), p]) for p in prompts])
        batched = [model(padded, kv_cache=cache)[:, -1]]
        batched += [model(steps[:, i : i + 1], kv_cache=cache)[:, -1] for i in range(4)]
        for r, p in enumerate(prompts):
            alone = KVCache(1, len(p) + 4, model.config)
            expected = [model(p.unsqueeze(0), kv_cache=alone)[:, -1]]
            expected += [model(steps[r : r + 1, i : i + 1], kv_cache=alone)[:, -1] for i in range(4)]
            for got, want in zip(batched, expected, strict=True):
                torch.testing.assert_close(got[r : r + 1], want, rtol=1e-4, atol=1e-4)
    assert not torch.isnan(torch.stack(batched)).any()


def test_kv_cache_reset_and_overflow() -> None:
    model = make_model()
    cache = KVCache(1, 8, model.config)
    idx = torch.randint(0, 97, (1, 6))
    with torch.no_grad():
        first = model(idx, kv_cache=cache)
        cache.reset()
        assert cache.pos == 0
        torch.testing.assert_close(model(idx, kv_cache=cache), first)
        with pytest.raises(ValueError, match="KV cache full"):
            model(idx[:, :3], kv_cache=cache)


def test_gqa_differs_from_full_heads_in_shape_and_runs() -> None:
    full, grouped = make_model(), make_model(n_kv_head=2)
    assert grouped.transformer.h[0].attn.c_k.weight.shape == (16, 32)
    assert full.num_params() - grouped.num_params() == 2 * 2 * (32 * 32 - 32 * 16)
    idx = torch.randint(0, 97, (2, 10))
    loss = grouped(idx, idx)
    loss.backward()
    assert grouped.transformer.h[0].attn.c_k.weight.grad.abs().sum() > 0


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="divisible by n_head"):
        GPTConfig(n_embd=30, n_head=4)
    with pytest.raises(ValueError, match="must divide n_head"):
        GPTConfig(n_head=4, n_kv_head=3)
    with pytest.raises(ValueError, match="lacks"):
        GPTConfig.from_mapping({"name": "x", "n_layer": 2})


def expected_params(c: GPTConfig) -> int:
    kv = c.n_kv_head * c.head_dim
    per_layer = c.n_embd * c.n_embd * 2 + 2 * c.n_embd * kv + 8 * c.n_embd * c.n_embd
    return 2 * c.vocab_size * c.n_embd + c.n_layer * per_layer


@pytest.mark.parametrize("name", ["tiny", "d4", "d20"])
def test_model_configs_param_count_and_flops(name: str) -> None:
    node = OmegaConf.load(CONF_DIR / "model" / f"{name}.yaml")
    assert node.name == name
    config = GPTConfig.from_mapping(node)
    with torch.device("meta"):
        model = GPT(config)
    n = model.num_params()
    assert n == expected_params(config)
    matmul = n - config.vocab_size * config.n_embd
    attention = 12 * config.n_layer * config.n_embd * config.sequence_len
    assert model.flops_per_token() == 6 * matmul + attention
    if name == "tiny":
        assert 1e6 < n < 10e6
    if name == "d20":
        assert round(n / 1e6) == 561  # nanochat's speedrun model


def test_tiny_model_overfits_a_batch() -> None:
    torch.manual_seed(0)
    model = GPT(GPTConfig(sequence_len=32, vocab_size=64, n_layer=2, n_head=2, n_kv_head=2, n_embd=64))
    model.init_weights()
    idx = torch.randint(0, 64, (4, 33))
    x, y = idx[:, :-1], idx[:, 1:]
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, betas=(0.9, 0.95), weight_decay=0.0)
    first = model(x, y).item()
    for _ in range(50):
        loss = model(x, y)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    assert first == pytest.approx(math.log(64), abs=0.1)
    assert loss.item() < 0.25 * first


def test_kv_cache_repeat_continues_one_prompt_in_several_rows() -> None:
    model = make_model().eval()
    prompt = torch.randint(0, 97, (1, 6))
    nxt = torch.randint(0, 97, (3, 1))
    with torch.no_grad():
        cache = KVCache(1, 12, model.config)
        model(prompt, kv_cache=cache)
        batch = cache.repeat(3)
        assert batch.pos == 6 and batch.k.shape[1] == 3
        logits = model(nxt, kv_cache=batch)
        full = model(torch.cat([prompt.expand(3, 6), nxt], dim=1))
        assert cache.pos == 6  # the original is untouched
    torch.testing.assert_close(logits[:, 0], full[:, -1], rtol=1e-4, atol=1e-4)
