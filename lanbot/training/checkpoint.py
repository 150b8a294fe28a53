"""Checkpoints: save atomically (temp folder + rename) and load, the tokenizer checked against the model.

Where a checkpoint lives and what its files are called is lanbot.core.layout's (with meta.json, as
CheckpointMeta). A failed or killed save leaves the last good checkpoint as it was. The weights and any
other tensors go in safetensors files (safetensors' save_model / load_model, which also keep tensors that
share storage), so loading a checkpoint runs no pickle; only optimizer.pt, which resuming alone reads, is
torch.save'd. An older checkpoint's model.pt still loads, with torch.load(weights_only=True).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from safetensors import SafetensorError
from safetensors.torch import load_file, load_model, save_file, save_model
from safetensors.torch import save as save_tensors

from lanbot.core.errors import LanbotError
from lanbot.core.files import io_error, remove_stale_temps
from lanbot.core.layout import (
    CONFIG_FILE,
    DAMAGED_FIX,
    LEGACY_UNIGRAM_FILE,
    META_FILE,
    MODEL_FILE,
    OPTIMIZER_FILE,
    TOKENIZER_FILE,
    UNIGRAM_FILE,
    CheckpointError,
    CheckpointMeta,
    checkpoint_name,
    recover,
    weights_file,
)
from lanbot.core.secrets import check_no_secret
from lanbot.training.model import SHAPE_FIELDS as MODEL_INTS
from lanbot.training.models import build_model
from lanbot.training.tokenizer import Tokenizer


class CheckpointMismatch(LanbotError, ValueError):
    """A checkpoint that belongs to another identity, or whose tokenizer is not the one its model learned."""


def tokenizer_sha256(directory: str | Path) -> str:
    """The sha256 of `<directory>/tokenizer.json`."""
    return hashlib.sha256((Path(directory) / TOKENIZER_FILE).read_bytes()).hexdigest()


def stale_saves(directory: str | Path) -> tuple[str, ...]:
    """The globs (beside `directory`) of what a killed save leaves: its temp folder and the previous folder."""
    name = Path(directory).name
    return f".{name}.tmp-*", f".{name}.old-*"


def remove_stale_saves(directory: str | Path) -> list[Path]:
    """Put back a checkpoint a kill left renamed aside, then remove the temp and old folders of killed saves.
    Only for the holder of the folder's lock (lanbot.core.lock), so that no running save loses its temp."""
    directory = Path(directory)
    if directory.parent.exists():
        recover(directory)
    return remove_stale_temps(directory.parent, stale_saves(directory))


def check_identity(directory: Path, meta: CheckpointMeta | None, identity: str) -> None:
    """Refuse a checkpoint trained for another identity than `identity`, naming both."""
    if meta is not None and meta.identity is not None and meta.identity != identity:
        raise CheckpointMismatch(
            f"checkpoint {directory} belongs to identity {meta.identity!r}, not to {identity!r}: each identity "
            f"trains into a folder of its own; point paths.checkpoints elsewhere for {identity!r}, or delete "
            f"{directory} if {meta.identity!r}'s checkpoint is no longer wanted")


def _disk_error(exc: BaseException) -> OSError | None:
    """The OSError behind a failed write, wherever the library put it: the exception itself, its cause or
    context (torch.save into a file object), or the `(os error 28)` of a Rust library's message (safetensors,
    tokenizers, which raise a bare Exception on a full disk)."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError):
            return seen
        code = re.search(r"\(os error (\d+)\)", str(seen))
        if code:
            return OSError(int(code[1]), os.strerror(int(code[1])))
        seen = seen.__cause__ or seen.__context__
    return None


def _named_io_errors(save: Callable[..., Path]) -> Callable[..., Path]:
    """A save that fails (a full disk, Ctrl-C) leaves no temp folder, and the last good checkpoint as it was;
    a disk error is one line: `saving the checkpoint <dir>: No space left on device; free some space ...`."""
    @functools.wraps(save)
    def wrapper(directory: str | Path, *args: Any, **kwargs: Any) -> Path:
        try:
            return save(directory, *args, **kwargs)
        except BaseException as exc:
            shutil.rmtree(Path(directory).parent / f".{Path(directory).name}.tmp-{os.getpid()}", ignore_errors=True)
            if isinstance(exc, LanbotError):
                raise
            disk = _disk_error(exc) if isinstance(exc, Exception) else None
            if disk is None:
                raise
            raise io_error("saving the checkpoint", directory, disk) from None
    return wrapper


@_named_io_errors
def save_checkpoint(directory: str | Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer | None,
                    tokenizer: Tokenizer, cfg: DictConfig, meta: CheckpointMeta | dict[str, Any],
                    extra: dict[str, dict[str, torch.Tensor]] | None = None) -> Path:
    """Write the checkpoint to a temp folder beside `directory`, then swap it in by rename (`extra`: more
    tensors, {file name: {key: tensor}}, each saved as a safetensors file, such as a base's unigram counts).

    meta.json gets the model's shape and the tokenizer's sha256; a scratch run's checkpoint names itself
    as `tokenizer_from`, which later stages inherit.
    """
    directory = Path(directory)
    config_text = OmegaConf.to_yaml(cfg, resolve=True)
    check_no_secret(config_text, directory / CONFIG_FILE)  # before anything is written
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = directory.parent / f".{directory.name}.tmp-{os.getpid()}"
    old = directory.parent / f".{directory.name}.old-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    model = getattr(model, "module", model)
    model = getattr(model, "_orig_mod", model)
    save_model(model, str(tmp / MODEL_FILE), metadata={"format": "pt"})
    if optimizer is not None:  # into a file object: a full disk then surfaces as the OSError it is
        with open(tmp / OPTIMIZER_FILE, "wb") as f:
            torch.save(optimizer.state_dict(), f)
    for name, tensors in (extra or {}).items():
        save_file({key: value.contiguous() for key, value in tensors.items()}, str(tmp / name))
    tokenizer.save(tmp)
    (tmp / CONFIG_FILE).write_text(config_text, encoding="utf-8")
    meta = CheckpointMeta.from_dict(dict(meta)) if isinstance(meta, dict) else dataclasses.replace(meta)
    meta.model_config, meta.tokenizer_sha256 = dict(vars(model.config)), tokenizer_sha256(tmp)
    meta.tokenizer_from = meta.tokenizer_from or checkpoint_name(directory)
    meta.write(tmp)
    if directory.exists():
        directory.rename(old)
    tmp.rename(directory)
    shutil.rmtree(old, ignore_errors=True)
    return directory


def load_checkpoint(directory: str | Path, device: str | torch.device = "cpu") -> tuple[torch.nn.Module, Tokenizer,
                                                                                   CheckpointMeta]:
    """(model, tokenizer, meta) of a checkpoint folder, the model on `device` in eval mode."""
    directory = Path(directory)
    meta = CheckpointMeta.read(directory)
    if meta is None or weights_file(directory) is None:
        raise CheckpointError(
            f"no checkpoint at {directory}: train one with `python -m lanbot.train stage=mid` "
            "(then stage=sft) for this identity, mix and model"
        )
    try:
        lacking = [k for k in MODEL_INTS if k not in meta.model_config]
        if lacking:
            raise ValueError(f"it lacks {', '.join(lacking)}")
        model = build_model(meta.model_config)
    except (TypeError, ValueError, ZeroDivisionError) as exc:
        raise CheckpointError(f"{directory / META_FILE}: no usable model config (model_config: {exc}); "
                              f"{DAMAGED_FIX}") from None
    load_weights(model, directory, device)
    if not all(bool(torch.isfinite(p).all()) for p in model.parameters()):
        raise CheckpointError(f"{weights_file(directory)} holds NaN or Inf weights (saved by a run that diverged): "
                              "train it again with lower learning rates, or point at another checkpoint")
    model.to(device).eval()
    try:
        tokenizer = Tokenizer.load(directory)
    except Exception as exc:  # noqa: BLE001 (tokenizers raises a bare Exception for a file it cannot parse)
        raise CheckpointError(f"{directory / TOKENIZER_FILE}: not a readable lanbot tokenizer "
                              f"({_first_line(exc)}); {DAMAGED_FIX}") from None
    check_tokenizer(directory, tokenizer, model, meta)
    return model, tokenizer, meta


def load_torch_file(path: Path, device: str | torch.device = "cpu") -> Any:
    """A torch.save file of a checkpoint (optimizer state, an older lanbot's weights or counts), read with
    weights_only; a damaged one raises CheckpointError."""
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


def load_weights(model: torch.nn.Module, directory: Path, device: str | torch.device = "cpu") -> None:
    """The checkpoint's weights into `model`: model.safetensors, or an older checkpoint's model.pt. A damaged
    file, or weights of another shape than meta.json records, raise CheckpointError naming the file."""
    path = weights_file(directory)
    if path is None:
        raise CheckpointError(f"{directory} holds no {MODEL_FILE}: not a checkpoint folder")
    try:
        if path.name == MODEL_FILE:
            load_model(model, str(path), strict=True, device=str(device))
        else:
            model.load_state_dict(load_torch_file(path, device))  # a damaged file raises CheckpointError itself
    except SafetensorError as exc:  # a truncated, empty or random file: its header cannot be read
        raise CheckpointError(f"{path} cannot be read ({_first_line(exc)}): the file is damaged; "
                              f"{DAMAGED_FIX}") from None
    except (RuntimeError, TypeError, ValueError, AttributeError) as exc:  # shapes, keys, not a dict at all
        raise CheckpointError(f"{path} does not fit the model shape {directory / META_FILE} records "
                              f"({_first_line(exc)}); {DAMAGED_FIX}") from None


def weights_as_safetensors(path: Path) -> bytes:
    """An older checkpoint's model.pt as the bytes of a model.safetensors (each tensor copied, so weights that
    shared storage in the pickle become separate entries, which safetensors requires)."""
    state = load_torch_file(path)
    return save_tensors({name: tensor.contiguous().clone() for name, tensor in state.items()}, metadata={"format": "pt"})


def load_unigram_counts(directory: str | Path) -> torch.Tensor | None:
    """A base's token counts (unigram.safetensors, or an older base's unigram.pt); None where it has none."""
    directory = Path(directory)
    if (directory / UNIGRAM_FILE).is_file():
        try:
            return load_file(str(directory / UNIGRAM_FILE))["counts"]
        except Exception as exc:  # noqa: BLE001 (safetensors' own error type, a missing key)
            raise CheckpointError(f"{directory / UNIGRAM_FILE} cannot be read ({_first_line(exc)}): the file is "
                                  f"damaged; {DAMAGED_FIX}") from None
    if (directory / LEGACY_UNIGRAM_FILE).is_file():
        return load_torch_file(directory / LEGACY_UNIGRAM_FILE)
    return None


def check_tokenizer(directory: Path, tokenizer: Tokenizer, model: torch.nn.Module, meta: CheckpointMeta) -> None:
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

