"""Checkpoints: save atomically (temp folder + rename) and load, the tokenizer checked against the model.

Where a checkpoint lives and what its files are called is lanbot.core.layout's (with meta.json, as
CheckpointMeta). A failed or killed save leaves the last good checkpoint as it was. The weights and any
other tensors go in safetensors files (safetensors' save_model / load_model, which also keep tensors that
share storage), so loading a checkpoint runs no pickle; only optimizer.pt, which resuming alone reads, is
torch.save'd. An older checkpoint's model.pt still loads, with torch.load(weights_only=True).
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
from safetensors.torch import load_file, load_model, save_file, save_model
from safetensors.torch import save as save_tensors

from lanbot.core.errors import LanbotError
from lanbot.core.layout import (
    CONFIG_FILE,
    LEGACY_UNIGRAM_FILE,
    MODEL_FILE,
    OPTIMIZER_FILE,
    TOKENIZER_FILE,
    UNIGRAM_FILE,
    CheckpointError,
    CheckpointMeta,
    checkpoint_name,
    weights_file,
)
from lanbot.training.model import GPT, GPTConfig
from lanbot.training.tokenizer import Tokenizer


class CheckpointMismatch(LanbotError, ValueError):
    """A checkpoint that belongs to another identity, or whose tokenizer is not the one its model learned."""


def tokenizer_sha256(directory: str | Path) -> str:
    """The sha256 of `<directory>/tokenizer.json`."""
    return hashlib.sha256((Path(directory) / TOKENIZER_FILE).read_bytes()).hexdigest()


def save_checkpoint(directory: str | Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer | None,
                    tokenizer: Tokenizer, cfg: DictConfig, meta: CheckpointMeta | dict[str, Any],
                    extra: dict[str, dict[str, torch.Tensor]] | None = None) -> Path:
    """Write the checkpoint to a temp folder beside `directory`, then swap it in by rename (`extra`: more
    tensors, {file name: {key: tensor}}, each saved as a safetensors file, such as a base's unigram counts).

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
    save_model(model, str(tmp / MODEL_FILE), metadata={"format": "pt"})
    if optimizer is not None:
        torch.save(optimizer.state_dict(), tmp / OPTIMIZER_FILE)
    for name, tensors in (extra or {}).items():
        save_file({key: value.contiguous() for key, value in tensors.items()}, str(tmp / name))
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
    if meta is None or weights_file(directory) is None:
        raise CheckpointError(
            f"no checkpoint at {directory}: train one with `python -m lanbot.train stage=mid` "
            "(then stage=sft) for this identity, mix and model"
        )
    model = GPT(GPTConfig(**meta.model_config))
    load_weights(model, directory, device)
    model.to(device).eval()
    tokenizer = Tokenizer.load(directory)
    check_tokenizer(directory, tokenizer, model, meta)
    return model, tokenizer, meta


def load_weights(model: torch.nn.Module, directory: Path, device: str | torch.device = "cpu") -> None:
    """The checkpoint's weights into `model`: model.safetensors, or an older checkpoint's model.pt."""
    path = weights_file(directory)
    if path is None:
        raise CheckpointError(f"{directory} holds no {MODEL_FILE}: not a checkpoint folder")
    if path.name == MODEL_FILE:
        load_model(model, str(path), strict=True, device=str(device))
    else:
        model.load_state_dict(torch.load(path, map_location=device, weights_only=True))


def weights_as_safetensors(path: Path) -> bytes:
    """An older checkpoint's model.pt as the bytes of a model.safetensors (each tensor copied, so weights that
    shared storage in the pickle become separate entries, which safetensors requires)."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    return save_tensors({name: tensor.contiguous().clone() for name, tensor in state.items()}, metadata={"format": "pt"})


def load_unigram_counts(directory: str | Path) -> torch.Tensor | None:
    """A base's token counts (unigram.safetensors, or an older base's unigram.pt); None where it has none."""
    directory = Path(directory)
    if (directory / UNIGRAM_FILE).is_file():
        return load_file(str(directory / UNIGRAM_FILE))["counts"]
    if (directory / LEGACY_UNIGRAM_FILE).is_file():
        return torch.load(directory / LEGACY_UNIGRAM_FILE, weights_only=True)
    return None


def check_tokenizer(directory: Path, tokenizer: Tokenizer, model: GPT, meta: CheckpointMeta) -> None:
    """Refuse a tokenizer.json that is not the one the model was trained with, naming both."""
    file = directory / TOKENIZER_FILE
    vocab = model.config.vocab_size
    if tokenizer.vocab_size > vocab:
        raise CheckpointMismatch(
            f"{file} has {tokenizer.vocab_size} tokens but the model in {weights_file(directory)} has only {vocab}: "
            "the tokenizer belongs to another checkpoint; restore this checkpoint's own tokenizer.json")
    recorded, actual = meta.tokenizer_sha256, tokenizer_sha256(directory)
    if recorded and recorded != actual:
        origin = meta.tokenizer_from or checkpoint_name(directory)
        raise CheckpointMismatch(
            f"{file} is tokenizer sha256:{actual[:12]}, not the tokenizer the model was trained with: meta.json "
            f"records sha256:{recorded[:12]} (trained by the {origin} run). Restore that tokenizer.json, or train "
            "a model with this tokenizer")

