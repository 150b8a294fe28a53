"""Checkpoints: save atomically (temp folder + rename) and load, the tokenizer checked against the model.

Where a checkpoint lives and what its files are called is lanbot.core.layout's (with meta.json, as
CheckpointMeta). A failed or killed save leaves the last good checkpoint as it was.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from lanbot.core.errors import LanbotError
from lanbot.core.layout import (
    CONFIG_FILE,
    DAMAGED_FIX,
    META_FILE,
    MODEL_FILE,
    OPTIMIZER_FILE,
    TOKENIZER_FILE,
    CheckpointError,
    CheckpointMeta,
    checkpoint_name,
)
from lanbot.training.model import GPT, GPTConfig
from lanbot.training.settings_check import MODEL_INTS
from lanbot.training.tokenizer import Tokenizer


class CheckpointMismatch(LanbotError, ValueError):
    """A checkpoint that belongs to another identity, or whose tokenizer is not the one its model learned."""


def tokenizer_sha256(directory: str | Path) -> str:
    """The sha256 of `<directory>/tokenizer.json`."""
    return hashlib.sha256((Path(directory) / TOKENIZER_FILE).read_bytes()).hexdigest()


def save_checkpoint(directory: str | Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer | None,
                    tokenizer: Tokenizer, cfg: DictConfig, meta: CheckpointMeta | dict[str, Any],
                    extra: dict[str, Any] | None = None) -> Path:
    """Write the checkpoint to a temp folder beside `directory`, then swap it in by rename (`extra`: more
    objects saved with torch.save, by file name, such as a base's unigram counts).

    meta.json gets the model's shape and the tokenizer's sha256; a scratch run's checkpoint names itself
    as `tokenizer_from`, which later stages inherit.
    """
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = directory.parent / f".{directory.name}.tmp-{os.getpid()}"
    old = directory.parent / f".{directory.name}.old-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    model = getattr(model, "module", model)
    model = getattr(model, "_orig_mod", model)
    torch.save(model.state_dict(), tmp / MODEL_FILE)
    if optimizer is not None:
        torch.save(optimizer.state_dict(), tmp / OPTIMIZER_FILE)
    for name, value in (extra or {}).items():
        torch.save(value, tmp / name)
    tokenizer.save(tmp)
    (tmp / CONFIG_FILE).write_text(OmegaConf.to_yaml(cfg, resolve=True), encoding="utf-8")
    meta = CheckpointMeta.from_dict(dict(meta)) if isinstance(meta, dict) else dataclasses.replace(meta)
    meta.model_config, meta.tokenizer_sha256 = dict(vars(model.config)), tokenizer_sha256(tmp)
    meta.tokenizer_from = meta.tokenizer_from or checkpoint_name(directory)
    meta.write(tmp)
    if directory.exists():
        directory.rename(old)
    tmp.rename(directory)
    shutil.rmtree(old, ignore_errors=True)
    return directory


def load_checkpoint(directory: str | Path, device: str | torch.device = "cpu") -> tuple[GPT, Tokenizer, CheckpointMeta]:
    """(model, tokenizer, meta) of a checkpoint folder, the model on `device` in eval mode."""
    directory = Path(directory)
    meta = CheckpointMeta.read(directory)
    if meta is None or not (directory / MODEL_FILE).is_file():
        raise CheckpointError(
            f"no checkpoint at {directory}: train one with `python -m lanbot.train stage=mid` "
            "(then stage=sft) for this identity, mix and model"
        )
    try:
        lacking = [k for k in MODEL_INTS if k not in meta.model_config]
        if lacking:
            raise ValueError(f"it lacks {', '.join(lacking)}")
        model = GPT(GPTConfig(**meta.model_config))
    except (TypeError, ValueError, ZeroDivisionError) as exc:
        raise CheckpointError(f"{directory / META_FILE}: no usable model config (model_config: {exc}); "
                              f"{DAMAGED_FIX}") from None
    state = load_file(directory / MODEL_FILE, device)
    try:
        model.load_state_dict(state)
    except (RuntimeError, TypeError, ValueError, AttributeError) as exc:  # shapes, keys, not a dict at all
        raise CheckpointError(f"{directory / MODEL_FILE} does not fit the model shape {directory / META_FILE} "
                              f"records ({_first_line(exc)}); {DAMAGED_FIX}") from None
    if not all(bool(torch.isfinite(p).all()) for p in model.parameters()):
        raise CheckpointError(f"{directory / MODEL_FILE} holds NaN or Inf weights (saved by a run that diverged): "
                              "train it again with lower learning rates, or point at another checkpoint")
    model.to(device).eval()
    try:
        tokenizer = Tokenizer.load(directory)
    except Exception as exc:  # noqa: BLE001 (tokenizers raises a bare Exception for a file it cannot parse)
        raise CheckpointError(f"{directory / TOKENIZER_FILE}: not a readable lanbot tokenizer "
                              f"({_first_line(exc)}); {DAMAGED_FIX}") from None
    check_tokenizer(directory, tokenizer, model, meta)
    return model, tokenizer, meta


def load_file(path: Path, device: str | torch.device = "cpu") -> Any:
    """A tensor file of a checkpoint (weights, optimizer state, counts); a damaged one raises CheckpointError."""
    if not path.is_file():
        raise CheckpointError(f"{path} is missing; {DAMAGED_FIX}")
    try:
        return torch.load(path, map_location=device, weights_only=True)
    except Exception as exc:  # noqa: BLE001 (truncated or random bytes: torch, zip and pickle errors alike)
        raise CheckpointError(f"{path} cannot be read ({_first_line(exc)}): the file is damaged; "
                              f"{DAMAGED_FIX}") from None


def _first_line(exc: BaseException) -> str:
    """The first sentence of what the library said (torch's run on for several)."""
    text = str(exc).strip().splitlines()
    return text[0].split(". ")[0][:160] if text else type(exc).__name__


def check_tokenizer(directory: Path, tokenizer: Tokenizer, model: GPT, meta: CheckpointMeta) -> None:
    """Refuse a tokenizer.json that is not the one the model was trained with, naming both."""
    file = directory / TOKENIZER_FILE
    vocab = model.config.vocab_size
    if tokenizer.vocab_size > vocab:
        raise CheckpointMismatch(
            f"{file} has {tokenizer.vocab_size} tokens but the model in {directory / MODEL_FILE} has only {vocab}: "
            "the tokenizer belongs to another checkpoint; restore this checkpoint's own tokenizer.json")
    recorded, actual = meta.tokenizer_sha256, tokenizer_sha256(directory)
    if recorded and recorded != actual:
        origin = meta.tokenizer_from or checkpoint_name(directory)
        raise CheckpointMismatch(
            f"{file} is tokenizer sha256:{actual[:12]}, not the tokenizer the model was trained with: meta.json "
            f"records sha256:{recorded[:12]} (trained by the {origin} run). Restore that tokenizer.json, or train "
            "a model with this tokenizer")

