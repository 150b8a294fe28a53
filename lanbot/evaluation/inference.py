"""Loading a trained checkpoint for chat and evaluation: find it, check it, build an Engine.

A checkpoint is refused when it was trained for another identity than the configured one, or when its
tokenizer does not fit its model; both messages name the two sides and the fix.

    directory = resolve_checkpoint(cfg, cfg.chat.checkpoint, cfg.chat.stage)
    engine, meta = load_engine(cfg, directory, device="auto")
"""

from __future__ import annotations

from pathlib import Path

import torch
from omegaconf import DictConfig

from lanbot.core import layout
from lanbot.core.device import detect_device
from lanbot.core.identity import slug
from lanbot.evaluation.engine import Engine
from lanbot.training import checkpoint as ckpt
from lanbot.training.checkpoint import CheckpointMismatch


def resolve_checkpoint(cfg: DictConfig, path: str | None, stage: str = "sft") -> Path:
    """`path` if given, else the newest `stage` checkpoint of the configured identity (find_checkpoint).

    A missing one raises CheckpointError naming the train command that makes it."""
    if path:
        directory = Path(path)
        if layout.CheckpointMeta.read(directory) is None:
            raise layout.CheckpointError(
                f"no checkpoint at {directory} (no meta.json): train one with "
                f"`{layout.train_command(cfg, stage)}` or point to a folder that holds model.safetensors and meta.json")
        return directory
    return layout.find_checkpoint(cfg, stage=stage)


def check_meta(cfg: DictConfig, directory: Path, meta: layout.CheckpointMeta) -> None:
    """Refuse a checkpoint of another identity: meta's identity name vs the configured one (older meta.json
    without the name: the slugs)."""
    want = slug(cfg.identity.name)
    have = meta.identity_slug or (slug(meta.identity) if meta.identity else None)
    other = meta.identity != cfg.identity.name if meta.identity is not None else have is not None and have != want
    if other:
        raise CheckpointMismatch(
            f"checkpoint {directory} was trained for identity {meta.identity or have!r} ({have}), but the "
            f"configured identity is {cfg.identity.name!r} ({want}): pass identity={have} to use it, or train "
            f"{want} with `{layout.train_command(cfg, meta.stage or 'sft')}`")


def load_engine(cfg: DictConfig, directory: str | Path, device: str = "auto") -> tuple[Engine, layout.CheckpointMeta]:
    """An Engine over the checked checkpoint at `directory`, on `device` (auto: cuda, mps, cpu)."""
    directory = Path(directory)
    meta = layout.CheckpointMeta.read(directory)
    if meta is None:
        raise layout.CheckpointError(f"no checkpoint at {directory}: train one with "
                                   f"`{layout.train_command(cfg, str(cfg.get('stage', 'sft')))}`")
    check_meta(cfg, directory, meta)
    dev = detect_device(device)
    model, tokenizer, meta = ckpt.load_checkpoint(directory, dev)  # refuses another checkpoint's tokenizer
    return Engine(model, tokenizer, torch.device(dev)), meta
