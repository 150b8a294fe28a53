"""Optimizers: AdamW and Muon cover every parameter once, train, and save/restore their state."""

from __future__ import annotations

import pytest
import torch

from lanbot.training.model import GPT, GPTConfig
from lanbot.training.optim import OptimizerError, build_optimizer


def small_model() -> GPT:
    torch.manual_seed(0)
    model = GPT(GPTConfig(sequence_len=32, vocab_size=64, n_layer=2, n_head=2, n_kv_head=2, n_embd=64))
    model.init_weights()
    return model


@pytest.mark.parametrize("name", ["adamw", "muon"])
def test_optimizers_cover_every_parameter_once_and_train(name: str) -> None:
    model = small_model()
    optimizer = build_optimizer(model, name, matrix_lr=3e-3, embedding_lr=1e-2, unembedding_lr=2e-3)
    covered = [id(p) for g in optimizer.param_groups for p in g["params"]]
    assert sorted(covered) == sorted(id(p) for p in model.parameters())
    assert sorted(g["initial_lr"] for g in optimizer.param_groups) == [2e-3, 3e-3, 1e-2]
    kinds = [type(opt).__name__ for opt in optimizer.optimizers]
    assert kinds == (["AdamW"] if name == "adamw" else ["AdamW", "Muon"])
    idx = torch.randint(0, 64, (4, 33))
    x, y = idx[:, :-1], idx[:, 1:]
    first = model(x, y).item()
    for _ in range(30):
        model(x, y).backward()
        optimizer.step()
        optimizer.zero_grad()
    assert model(x, y).item() < 0.5 * first
    state = optimizer.state_dict()
    fresh = build_optimizer(small_model(), name, matrix_lr=3e-3, embedding_lr=1e-2, unembedding_lr=2e-3)
    fresh.load_state_dict(state)
    assert [o.state_dict()["param_groups"] for o in fresh.optimizers] == [s["param_groups"] for s in state["states"]]
    lowered = build_optimizer(small_model(), name, matrix_lr=1e-4, embedding_lr=1e-4, unembedding_lr=1e-4)
    lowered.load_state_dict(state)  # a resume with lowered rates (after a divergence) runs with them
    assert {g["initial_lr"] for g in lowered.param_groups} == {1e-4}
    assert all(lowered.optimizers[0].state[p] for p in lowered.optimizers[0].param_groups[0]["params"])
    other = build_optimizer(small_model(), "muon" if name == "adamw" else "adamw")
    with pytest.raises(OptimizerError, match=f"the saved optimizer state is {name}'s"):
        other.load_state_dict(state)


def test_a_lone_adamw_state_from_before_train_optimizer_still_loads() -> None:
    optimizer = build_optimizer(small_model(), "adamw")
    old = optimizer.optimizers[0].state_dict()  # what optimizer.pt held before
    build_optimizer(small_model(), "adamw").load_state_dict(old)


def test_unknown_optimizer_is_named() -> None:
    with pytest.raises(OptimizerError, match="unknown optimizer 'sgd': train.optimizer is one of adamw, muon"):
        build_optimizer(small_model(), "sgd")
