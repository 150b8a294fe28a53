"""Loading a trained checkpoint for chat and evaluation: find it, check it, build an Engine.

A checkpoint is refused when it was trained for another identity than the configured one, or when its
tokenizer does not fit its model; both messages name the two sides and the fix.

    directory = resolve_checkpoint(cfg, cfg.chat.checkpoint, cfg.chat.stage)
    engine, meta = load_engine(cfg, directory, device="auto")
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch
from omegaconf import DictConfig

from lanbot import checkpoint as ckpt
from lanbot.device import detect_device
from lanbot.engine import Engine
from lanbot.identity import slug


class CheckpointMismatch(ValueError):
    """A checkpoint that belongs to another identity or whose tokenizer does not fit its model."""


def resolve_checkpoint(cfg: DictConfig, path: str | None, stage: str = "sft") -> Path:
    """`path` if given, else the newest `stage` checkpoint of the configured identity (find_checkpoint).

    A missing one raises CheckpointError naming the train command that makes it."""
    if path:
        directory = Path(path)
        if ckpt.read_meta(directory) is None:
            raise ckpt.CheckpointError(
                f"no checkpoint at {directory} (no meta.json): train one with "
                f"`{ckpt.train_command(cfg, stage)}` or point to a folder that holds model.pt and meta.json")
        return directory
    return ckpt.find_checkpoint(cfg, stage=stage)


def tokenizer_sha256(directory: str | Path) -> str:
    """Digest of the checkpoint's tokenizer.json (what `meta.json` may record as `tokenizer_sha256`)."""
    return hashlib.sha256((Path(directory) / "tokenizer.json").read_bytes()).hexdigest()


def check_meta(cfg: DictConfig, directory: Path, meta: dict) -> None:
    """Refuse a checkpoint of another identity (meta `identity_slug` vs the configured identity)."""
    want = slug(cfg.identity.name)
    have = meta.get("identity_slug") or (slug(meta["identity"]) if meta.get("identity") else None)
    if have is not None and have != want:
        raise CheckpointMismatch(
            f"checkpoint {directory} was trained for identity {meta.get('identity', have)!r} ({have}), but the "
            f"configured identity is {cfg.identity.name!r} ({want}): pass identity={have} to use it, or train "
            f"{want} with `{ckpt.train_command(cfg, str(meta.get('stage', 'sft')))}`")


def check_tokenizer(directory: Path, tokenizer, model, meta: dict) -> None:
    """Refuse a tokenizer that is not the one the model was trained with (as far as can be told)."""
    recorded = meta.get("tokenizer_sha256")
    if recorded and recorded != tokenizer_sha256(directory):
        raise CheckpointMismatch(
            f"{directory / 'tokenizer.json'} (sha256 {tokenizer_sha256(directory)[:12]}) is not the tokenizer the "
            f"model was trained with (meta.json records {recorded[:12]}): restore the checkpoint's own tokenizer.json")
    vocab = model.config.vocab_size
    if tokenizer.vocab_size > vocab:
        raise CheckpointMismatch(
            f"{directory / 'tokenizer.json'} has {tokenizer.vocab_size} tokens but the model in "
            f"{directory / 'model.pt'} has only {vocab}: the tokenizer belongs to another checkpoint; "
            "restore this checkpoint's own tokenizer.json")


def load_engine(cfg: DictConfig, directory: str | Path, device: str = "auto") -> tuple[Engine, dict]:
    """An Engine over the checked checkpoint at `directory`, on `device` (auto: cuda, mps, cpu)."""
    directory = Path(directory)
    meta = ckpt.read_meta(directory)
    if meta is None:
        raise ckpt.CheckpointError(f"no checkpoint at {directory}: train one with "
                                   f"`{ckpt.train_command(cfg, str(cfg.get('stage', 'sft')))}`")
    check_meta(cfg, directory, meta)
    dev = detect_device(device)
    model, tokenizer, meta = ckpt.load_checkpoint(directory, dev)
    check_tokenizer(directory, tokenizer, model, meta)
    return Engine(model, tokenizer, torch.device(dev)), meta
