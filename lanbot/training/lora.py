"""LoRA (Hu et al. 2021) on lanbot's own models: chosen linear layers get a trainable low-rank update
y = W x + b + (alpha / rank) * B A dropout(x), everything else frozen; merged into plain weights at save.

lanbot's own rather than peft: peft 0.21 requires transformers and accelerate at run time (transformers alone is
130 MB and about 2,950 Python files installed here), which lanbot keeps a test-only dependency; the method itself is
a few dozen lines. It works on any nn.Module whose layers are nn.Linear (lanbot's Llama and GPT alike), keeps
the parameter names (`...q_proj.weight` stays; the adapter adds `...q_proj.lora_A` and `.lora_B`), and is merged
away at save (`merged_state_dict`, `merge_lora`), so checkpoints, exports and the engine only ever see plain
weights. peft's conventions are kept: A kaiming-uniform (a=sqrt(5), nn.Linear's own init), B zeros (the model
starts exactly as the base), scale alpha / rank, dropout on the adapter's input only.

    apply_lora(model, rank=16, alpha=32, dropout=0.05)                  # Llama: q/k/v/o and the MLP's three
    apply_lora(gpt, rank=8, alpha=16, dropout=0.0, targets=GPT_TARGETS)
    optimizer = torch.optim.AdamW(lora_parameters(model), lr=2e-4)
    save_file(merged_state_dict(model), "model.safetensors")             # plain names and shapes, W + scale*B@A
    adapter = lora_state_dict(model)                                     # for an exact resume beside it

Resume from a merged checkpoint: build the model from its (merged) weights, `apply_lora` with the same settings,
then `load_lora_state_dict(model, adapter, merged_base=True)`: the base becomes W' - scale*B@A again, so the
optimizer's saved state for A and B continues as if nothing was saved.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable

import torch
import torch.nn as nn
import torch.nn.functional as F

from lanbot.core.errors import LanbotError

LLAMA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
GPT_TARGETS = ("c_q", "c_k", "c_v", "c_proj", "c_fc")  # c_proj: attention's and the MLP's output projections
# Read as a weight, not called as a module, by the fused CPU losses of both models: an adapter there would be
# trained by nothing and silently ignored.
NEVER_TARGETS = ("lm_head",)


class LoRAError(LanbotError, ValueError):
    """LoRA settings that cannot apply to the model; the message names the setting and the fix."""


class LoRALinear(nn.Linear):
    """An nn.Linear holding the frozen base weight and bias (the original Parameters, under their own names)
    and the adapter: lora_A (rank, in), lora_B (out, rank), float32 whatever the base's dtype."""

    def __init__(self, base: nn.Linear, rank: int, alpha: float, dropout: float) -> None:
        nn.Module.__init__(self)  # nn.Linear's __init__ would allocate a new weight: the base's is kept instead
        self.in_features, self.out_features = base.in_features, base.out_features
        self.weight = base.weight
        self.bias = base.bias
        self.rank, self.alpha, self.scale = rank, alpha, alpha / rank
        device = base.weight.device
        self.lora_A = nn.Parameter(torch.empty(rank, self.in_features, device=device, dtype=torch.float32))
        self.lora_B = nn.Parameter(torch.zeros(self.out_features, rank, device=device, dtype=torch.float32))
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))
        self.lora_dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.linear(x, self.weight, self.bias)
        update = F.linear(F.linear(self.lora_dropout(x).to(self.lora_A.dtype), self.lora_A), self.lora_B)
        return out + (update * self.scale).to(out.dtype)

    @torch.no_grad()
    def delta(self) -> torch.Tensor:
        """scale * B @ A in float32: what merging adds to the base weight."""
        return (self.lora_B.float() @ self.lora_A.float()) * self.scale

    @torch.no_grad()
    def merged(self) -> nn.Linear:
        """A plain nn.Linear with weight W + scale * B @ A (in W's dtype) and the same bias."""
        weight = (self.weight.float() + self.delta()).to(self.weight.dtype)
        plain = nn.Linear(self.in_features, self.out_features, bias=self.bias is not None, device="meta")
        plain.weight = nn.Parameter(weight)
        if self.bias is not None:
            plain.bias = nn.Parameter(self.bias.detach().clone())
        return plain

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, rank={self.rank}, alpha={self.alpha}"


def default_targets(model: nn.Module) -> tuple[str, ...]:
    """LLAMA_TARGETS for a model with Llama's layer names, else GPT_TARGETS (lanbot's GPT)."""
    names = {name.rsplit(".", 1)[-1] for name, module in model.named_modules() if isinstance(module, nn.Linear)}
    return LLAMA_TARGETS if names & set(LLAMA_TARGETS) else GPT_TARGETS


def _matches(name: str, target: str) -> bool:
    """`target` names a module by its last part (`q_proj`) or a dotted tail (`mlp.c_proj`)."""
    return name == target or name.endswith("." + target)


def check_settings(rank: int, alpha: float, dropout: float) -> None:
    if not isinstance(rank, int) or isinstance(rank, bool) or rank < 1:
        raise LoRAError(f"lora rank={rank!r}: must be a whole number of at least 1 (8 to 64 is usual)")
    if not alpha > 0:
        raise LoRAError(f"lora alpha={alpha!r}: must be positive (twice the rank is usual)")
    if not 0.0 <= dropout < 1.0:
        raise LoRAError(f"lora dropout={dropout!r}: must be in [0, 1)")


def apply_lora(model: nn.Module, rank: int, alpha: float, dropout: float = 0.0,
               targets: Iterable[str] | None = None) -> nn.Module:
    """Replace each nn.Linear whose name ends in one of `targets` (default: `default_targets(model)`) by a
    LoRALinear and freeze every other parameter; returns `model`, changed in place. A target matching no linear
    layer, `lm_head`, or a model that already has adapters is refused before anything changes."""
    check_settings(rank, alpha, dropout)
    targets = tuple(targets) if targets is not None else default_targets(model)
    if any(isinstance(m, LoRALinear) for m in model.modules()):
        raise LoRAError("the model already has LoRA adapters; merge_lora first, or apply them once")
    linears = {name: m for name, m in model.named_modules() if isinstance(m, nn.Linear)}
    chosen = {name for name in linears if any(_matches(name, t) for t in targets)}
    for target in targets:
        if any(_matches(name, never) for never in NEVER_TARGETS for name in linears if _matches(name, target)):
            raise LoRAError(f"lora target {target!r}: the lm_head is read as a weight by the fused loss, an adapter "
                            "there would never train; pick the attention and MLP projections")
        if not any(_matches(name, target) for name in linears):
            known = sorted({name.rsplit(".", 1)[-1] for name in linears})
            raise LoRAError(f"lora target {target!r} matches no linear layer of the model; its linear layers end in "
                            f"{', '.join(known)}")
    for param in model.parameters():
        param.requires_grad_(False)
    for name in sorted(chosen):
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, LoRALinear(linears[name], rank, alpha, dropout))
    return model


def lora_modules(model: nn.Module) -> dict[str, LoRALinear]:
    return {name: m for name, m in model.named_modules() if isinstance(m, LoRALinear)}


def lora_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The adapters' parameters (every lora_A and lora_B), the only ones apply_lora leaves trainable."""
    return [p for m in lora_modules(model).values() for p in (m.lora_A, m.lora_B)]


def lora_settings(model: nn.Module) -> dict[str, object] | None:
    """{rank, alpha, modules} of the model's adapters (for meta.json and a resume), None if it has none."""
    modules = lora_modules(model)
    if not modules:
        return None
    first = next(iter(modules.values()))
    return {"rank": first.rank, "alpha": first.alpha, "modules": sorted(modules)}


def merged_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The state dict the model would have after merge_lora, without changing it: the original names and
    shapes, each adapted weight W + scale * B @ A, no lora_A / lora_B; other tensors are the model's own."""
    model = getattr(model, "module", model)  # DDP
    model = getattr(model, "_orig_mod", model)  # torch.compile
    state = model.state_dict()
    for name, module in lora_modules(model).items():
        del state[f"{name}.lora_A"], state[f"{name}.lora_B"]
        state[f"{name}.weight"] = (module.weight.detach().float() + module.delta()).to(module.weight.dtype)
    return state


def merge_lora(model: nn.Module) -> nn.Module:
    """Replace every LoRALinear by its merged plain nn.Linear and make every parameter trainable again (as it
    was before apply_lora); returns `model`, changed in place. A model without adapters is returned as it is."""
    modules = lora_modules(model)
    for name, module in modules.items():
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, module.merged())
    if modules:
        for param in model.parameters():
            param.requires_grad_(True)
    return model


def merged_copy(model: nn.Module) -> nn.Module:
    """A merged copy (for saving or exporting mid-training); the model itself keeps training with its adapters."""
    return merge_lora(copy.deepcopy(model))


def lora_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """Only the adapters' tensors, by their names in the model (`...q_proj.lora_A`): a few MB beside a checkpoint."""
    return {f"{name}.{part}": getattr(m, part).detach() for name, m in lora_modules(model).items()
            for part in ("lora_A", "lora_B")}


@torch.no_grad()
def load_lora_state_dict(model: nn.Module, state: dict[str, torch.Tensor], merged_base: bool = False) -> None:
    """Load adapters saved by lora_state_dict into a model apply_lora gave the same settings. `merged_base`: the
    model's weights are a merged checkpoint's (W + scale*B@A), so the loaded update is taken off them again."""
    modules = lora_modules(model)
    expected = {f"{name}.{part}": tuple(getattr(m, part).shape) for name, m in modules.items()
                for part in ("lora_A", "lora_B")}
    if set(state) != set(expected):
        extra, missing = sorted(set(state) - set(expected)), sorted(set(expected) - set(state))
        raise LoRAError(f"the saved adapters do not fit the model's (missing {missing[:2]}, unexpected {extra[:2]}); "
                        "resume with the same lora rank and targets as the run that saved them")
    for key, value in state.items():
        if tuple(value.shape) != expected[key]:
            raise LoRAError(f"saved adapter {key} is {list(value.shape)}, the model's is {list(expected[key])}; "
                            "resume with the same lora rank as the run that saved it")
    for name, m in modules.items():
        m.lora_A.copy_(state[f"{name}.lora_A"])
        m.lora_B.copy_(state[f"{name}.lora_B"])
        if merged_base:
            m.weight.copy_((m.weight.float() - m.delta()).to(m.weight.dtype))
