"""The model seam: every model is built from its config by `build_model`, keyed by `architecture`.

A family registers a builder once (`register_architecture`); checkpoints, training stages, the imports and the
engine call `build_model(model_config)` and never name a model class. A config without `architecture` is
lanbot's own GPT (`nanochat-2025`), as every checkpoint saved before the seam.

    model = build_model({"architecture": "llama", "vocab_size": 49152, ...})   # lanbot.training.llama.Llama
    model = build_model(meta.model_config)                                       # a checkpoint's own family
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import torch.nn as nn

from lanbot.core.errors import LanbotError
from lanbot.training.llama import ARCHITECTURE as LLAMA
from lanbot.training.llama import Llama, LlamaConfig
from lanbot.training.model import ARCHITECTURES as GPT_ARCHITECTURES
from lanbot.training.model import GPT, GPTConfig

DEFAULT_ARCHITECTURE = GPT_ARCHITECTURES[0]  # checkpoints from before `architecture` was recorded

Builder = Callable[[Mapping[str, Any]], nn.Module]
_BUILDERS: dict[str, Builder] = {}


class UnknownArchitecture(LanbotError, ValueError):
    """A model config naming an architecture no family registered."""


def register_architecture(name: str, builder: Builder) -> None:
    """Make `build_model` build `name` with `builder(model_config)`; a name is registered once."""
    if name in _BUILDERS:
        raise ValueError(f"architecture {name!r} is already registered")
    _BUILDERS[name] = builder


def architectures() -> tuple[str, ...]:
    """The registered architecture names."""
    return tuple(_BUILDERS)


def build_model(model_config: Mapping[str, Any]) -> nn.Module:
    """The untrained (randomly initialised by torch's defaults) model of `model_config`; load weights or call
    its `init_weights()` next. Raises UnknownArchitecture, or the family's ValueError for a bad shape."""
    name = str(model_config.get("architecture") or DEFAULT_ARCHITECTURE)
    if name not in _BUILDERS:
        raise UnknownArchitecture(f"model architecture {name!r} is not one lanbot builds: "
                                  f"choose one of {', '.join(_BUILDERS)}")
    return _BUILDERS[name](model_config)


def _gpt(model_config: Mapping[str, Any]) -> GPT:
    # the values as saved, uncast: GPTConfig's own check names a field that holds "4; rm -rf /", 3.5 or true
    known = {f.name for f in dataclasses.fields(GPTConfig)}
    return GPT(GPTConfig(**{k: v for k, v in model_config.items() if k in known}))


def _llama(model_config: Mapping[str, Any]) -> Llama:
    return Llama(LlamaConfig.from_mapping(dict(model_config)))


for _name in GPT_ARCHITECTURES:
    register_architecture(_name, _gpt)
register_architecture(LLAMA, _llama)
