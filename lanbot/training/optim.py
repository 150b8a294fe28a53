"""Optimizers for lanbot's GPT (`train.optimizer`): AdamW for everything, or Muon for the block matrices.

Both keep nanochat's three learning rates: the block matrices (`matrix_lr`), the embedding
(`embedding_lr`) and the lm_head (`unembedding_lr`). Muon (torch.optim.Muon, torch>=2.9: momentum
orthogonalised by Newton-Schulz) only suits 2-D weight matrices, so with `muon` the embedding and the
lm_head stay on AdamW, as nanochat does; its learning rate is on AdamW's scale
(`adjust_lr_fn="match_rms_adamw"`), so the same `matrix_lr` carries over.

    optimizer = build_optimizer(model, "muon", matrix_lr=3e-3, embedding_lr=1e-2, unembedding_lr=3e-3)
    loss.backward(); optimizer.step(); optimizer.zero_grad()

Every param group carries `initial_lr`, so a schedule sets `lr = initial_lr * factor`.
"""

from __future__ import annotations

from typing import Any

import torch

from lanbot.core.errors import LanbotError
from lanbot.training.model import GPT

NAMES = ("adamw", "muon")


class OptimizerError(LanbotError, ValueError):
    """An unknown optimizer, one this torch lacks, or a saved state of another optimizer."""


class Optimizers:
    """Several torch optimizers stepped, scheduled and saved as one."""

    def __init__(self, name: str, optimizers: list[torch.optim.Optimizer]) -> None:
        self.name = name
        self.optimizers = optimizers

    @property
    def param_groups(self) -> list[dict[str, Any]]:
        return [g for opt in self.optimizers for g in opt.param_groups]

    def step(self) -> None:
        for opt in self.optimizers:
            opt.step()

    def zero_grad(self, set_to_none: bool = True) -> None:
        for opt in self.optimizers:
            opt.zero_grad(set_to_none=set_to_none)

    def state_dict(self) -> dict[str, Any]:
        return {"optimizer": self.name, "states": [opt.state_dict() for opt in self.optimizers]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if not isinstance(state, dict) or not isinstance(state.get("states", []), list):
            raise OptimizerError(f"the saved optimizer file holds a {type(state).__name__}, not an optimizer state")
        if "states" not in state:  # a lone AdamW's state, as checkpoints before train.optimizer held
            state = {"optimizer": "adamw", "states": [state]}
        if state.get("optimizer") != self.name or len(state["states"]) != len(self.optimizers):
            raise OptimizerError(f"the saved optimizer state is {state.get('optimizer')}'s, not {self.name}'s")
        configured = [(g["lr"], g["initial_lr"]) for g in self.param_groups]
        for opt, saved in zip(self.optimizers, state["states"], strict=True):
            try:
                opt.load_state_dict(saved)
            except (KeyError, TypeError, ValueError, AttributeError) as exc:  # torch's own checks of the groups
                raise OptimizerError(f"the saved optimizer state does not fit this model ({exc})") from None
        # torch restores the saved rates; this run's configured ones win, so that a resume after a divergence
        # really runs with the lowered learning rate it was given
        for group, (lr, initial) in zip(self.param_groups, configured, strict=True):
            group["lr"], group["initial_lr"] = lr, initial


def check_name(name: str) -> None:
    """Raise OptimizerError unless `name` is an optimizer this torch has."""
    if name not in NAMES:
        raise OptimizerError(f"unknown optimizer {name!r}: train.optimizer is one of {', '.join(NAMES)}")
    if name == "muon" and not hasattr(torch.optim, "Muon"):
        raise OptimizerError(f"train.optimizer=muon needs torch>=2.9 (torch.optim.Muon); this is torch "
                             f"{torch.__version__}: upgrade torch or use train.optimizer=adamw")


def build_optimizer(
    model: GPT,
    name: str = "adamw",
    matrix_lr: float = 3e-3,
    embedding_lr: float = 1e-2,
    unembedding_lr: float = 3e-3,
    betas: tuple[float, float] = (0.9, 0.95),
    weight_decay: float = 0.0,
) -> Optimizers:
    """The optimizer(s) that together cover every parameter of `model` exactly once."""
    check_name(name)
    groups = model.param_groups()
    rest = [{"params": groups["embedding"], "lr": embedding_lr}, {"params": groups["lm_head"], "lr": unembedding_lr}]
    if groups.get("scalar"):  # nanochat-2026's per-layer scalars and smear gate: AdamW, as nanochat
        rest.append({"params": groups["scalar"], "lr": embedding_lr})
    matrices = {"params": groups["matrix"], "lr": matrix_lr}
    if name == "adamw":
        optimizers = [torch.optim.AdamW([matrices, *rest], betas=betas, weight_decay=weight_decay)]
    else:
        optimizers = [
            torch.optim.AdamW(rest, betas=betas, weight_decay=weight_decay),
            torch.optim.Muon([matrices], momentum=0.95, weight_decay=weight_decay, adjust_lr_fn="match_rms_adamw"),
        ]
    for opt in optimizers:
        for group in opt.param_groups:
            group["initial_lr"] = group["lr"]
    return Optimizers(name, optimizers)


def build_from_config(model: GPT, train: Any) -> Optimizers:
    """`train.optimizer` (adamw | muon) with nanochat's three learning rates: matrices, embedding, lm_head."""
    return build_optimizer(model, str(train.optimizer), float(train.matrix_lr), float(train.embedding_lr),
                           float(train.unembedding_lr), tuple(train.betas), float(train.weight_decay))


def lr_factor(step: int, total: int, warmup: float, warmdown: float, final: float) -> float:
    """Linear warmup, constant, linear warmdown to `final` (fractions of the run): every stage's schedule."""
    w, d = round(warmup * total), round(warmdown * total)
    if step < w:
        return (step + 1) / w
    if step >= total - d and d > 0:
        progress = (total - step) / d
        return final + (1 - final) * progress
    return 1.0
