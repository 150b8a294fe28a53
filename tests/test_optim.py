"""Optimizers: AdamW and Muon cover every parameter once, train, and save/restore their state."""

from __future__ import annotations

import pytest
import torch

from lanbot.model import GPT, GPTConfig
from lanbot.optim import build_optimizers


def small_model() -> GPT:
    torch.manual_seed(0)
    model = GPT(GPTConfig(sequence_len=32, vocab_size=64, n_layer=2, n_head=2, n_kv_head=2, n_embd=64))
    model.init_weights()
    return model


@pytest.mark.parametrize("name", ["adamw", "muon"])
def test_optimizers_cover_every_parameter_once_and_train(name: str) -> None:
    model = small_model()
    optimizers = build_optimizers(model, name=name, lr=3e-3)
    covered = [id(p) for opt in optimizers for g in opt.param_groups for p in g["params"]]
    assert sorted(covered) == sorted(id(p) for p in model.parameters())
    assert all(g["initial_lr"] == 3e-3 for opt in optimizers for g in opt.param_groups)
    idx = torch.randint(0, 64, (4, 33))
    x, y = idx[:, :-1], idx[:, 1:]
    first = model(x, y).item()
    for _ in range(30):
        model(x, y).backward()
        for opt in optimizers:
            opt.step()
        model.zero_grad(set_to_none=True)
    assert model(x, y).item() < 0.5 * first
    states = [opt.state_dict() for opt in optimizers]
    fresh = build_optimizers(small_model(), name=name)
    for opt, state in zip(fresh, states, strict=True):
        opt.load_state_dict(state)
    assert [o.state_dict()["param_groups"] for o in fresh] == [s["param_groups"] for s in states]


def test_unknown_optimizer_is_named() -> None:
    with pytest.raises(ValueError, match="unknown optimizer 'sgd'"):
        build_optimizers(small_model(), name="sgd")
