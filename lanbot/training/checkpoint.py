"""Checkpoints: save atomically (temp folder + rename), load, and find them by identity, mix, model, stage.

A checkpoint folder `<paths.checkpoints>/<identity slug>/<mix>/<model>/<stage>/` holds model.pt,
optimizer.pt, tokenizer.json, config.yaml (the resolved config) and meta.json. meta.json records the
tokenizer's sha256 and the checkpoint whose run trained it (`tokenizer_from`), so that a model is never
loaded with another checkpoint's tokenizer. A failed or killed save leaves the last good checkpoint as it was.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from lanbot.core.errors import LanbotError
from lanbot.core.identity import slug
from lanbot.training.model import GPT, GPTConfig
from lanbot.training.tokenizer import FILE_NAME as TOKENIZER_FILE
from lanbot.training.tokenizer import Tokenizer

META_FILE = "meta.json"


class CheckpointError(LanbotError, FileNotFoundError):
    """A checkpoint that is missing or unreadable: the message names the command that makes it."""


class CheckpointMismatch(LanbotError, ValueError):
    """A checkpoint that belongs to another identity, or whose tokenizer is not the one its model learned."""


def base_dir(cfg: DictConfig) -> Path:
    """`<paths.checkpoints>/base/<corpus.name>/<model.name>`: one base per corpus and model, shared by every identity."""
    return Path(cfg.paths.checkpoints) / "base" / str(cfg.corpus.name) / str(cfg.model.name)


def base_command(cfg: DictConfig) -> str:
    return f"python -m lanbot.train stage=base corpus={cfg.corpus.name} model={cfg.model.name}"


def checkpoint_dir(cfg: DictConfig, stage: str | None = None) -> Path:
    """`<paths.checkpoints>/<identity slug>/<mix.name>/<model.name>/<stage>` (stage=base: `base_dir`)."""
    if (stage or str(cfg.stage)) == "base":
        return base_dir(cfg)
    return (Path(cfg.paths.checkpoints) / slug(cfg.identity.name) / str(cfg.mix.name) / str(cfg.model.name)
            / (stage or str(cfg.stage)))


def train_command(cfg: DictConfig, stage: str) -> str:
    if stage == "base":
        return base_command(cfg)
    return (f"python -m lanbot.train stage={stage} identity={slug(cfg.identity.name)} "
            f"mix={cfg.mix.name} model={cfg.model.name}")


def checkpoint_name(directory: str | Path, base: bool = False) -> str:
    """`<identity>/<mix>/<model>/<stage>`: the last four parts of a checkpoint folder, as people name it
    (a base: `base/<corpus>/<model>`)."""
    return "/".join(Path(directory).parts[-3 if base else -4:])


def tokenizer_sha256(directory: str | Path) -> str:
    """The sha256 of `<directory>/tokenizer.json`."""
    return hashlib.sha256((Path(directory) / TOKENIZER_FILE).read_bytes()).hexdigest()


def save_checkpoint(directory: str | Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer | None,
                    tokenizer: Tokenizer, cfg: DictConfig, meta: dict[str, Any],
                    extra: dict[str, Any] | None = None) -> Path:
    """Write the checkpoint to a temp folder beside `directory`, then swap it in by rename (`extra`: more
    tensors saved with torch.save, by file name)."""
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = directory.parent / f".{directory.name}.tmp-{os.getpid()}"
    old = directory.parent / f".{directory.name}.old-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    model = getattr(model, "module", model)
    model = getattr(model, "_orig_mod", model)
    torch.save(model.state_dict(), tmp / "model.pt")
    if optimizer is not None:
        torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
    for name, value in (extra or {}).items():
        torch.save(value, tmp / name)
    tokenizer.save(tmp)
    (tmp / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True), encoding="utf-8")
    full_meta = {**meta, "model_config": dict(vars(model.config)), "tokenizer_sha256": tokenizer_sha256(tmp)}
    if not full_meta.get("tokenizer_from"):  # a scratch run trained it; later stages inherit the name
        full_meta["tokenizer_from"] = checkpoint_name(directory)
    (tmp / META_FILE).write_text(json.dumps(full_meta, indent=2, default=str), encoding="utf-8")
    if directory.exists():
        directory.rename(old)
    tmp.rename(directory)
    shutil.rmtree(old, ignore_errors=True)
    return directory


def _recover(directory: Path) -> None:
    """A kill between the two renames leaves only `.<name>.old-*`: put it back."""
    if not directory.exists():
        olds = sorted(directory.parent.glob(f".{directory.name}.old-*"), key=lambda p: p.stat().st_mtime)
        if olds:
            olds[-1].rename(directory)


def read_meta(directory: str | Path) -> dict[str, Any] | None:
    directory = Path(directory)
    if directory.parent.exists():
        _recover(directory)
    path = directory / META_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def load_checkpoint(directory: str | Path, device: str | torch.device = "cpu") -> tuple[GPT, Tokenizer, dict]:
    """(model, tokenizer, meta) of a checkpoint folder, the model on `device` in eval mode."""
    directory = Path(directory)
    meta = read_meta(directory)
    if meta is None or not (directory / "model.pt").is_file():
        raise CheckpointError(
            f"no checkpoint at {directory}: train one with `python -m lanbot.train stage=mid` "
            "(then stage=sft) for this identity, mix and model"
        )
    model = GPT(GPTConfig(**meta["model_config"]))
    model.load_state_dict(torch.load(directory / "model.pt", map_location=device, weights_only=True))
    model.to(device).eval()
    tokenizer = Tokenizer.load(directory)
    check_tokenizer(directory, tokenizer, model, meta)
    return model, tokenizer, meta


def check_tokenizer(directory: Path, tokenizer: Tokenizer, model: GPT, meta: dict) -> None:
    """Refuse a tokenizer.json that is not the one the model was trained with, naming both."""
    file = directory / TOKENIZER_FILE
    vocab = model.config.vocab_size
    if tokenizer.vocab_size > vocab:
        raise CheckpointMismatch(
            f"{file} has {tokenizer.vocab_size} tokens but the model in {directory / 'model.pt'} has only {vocab}: "
            "the tokenizer belongs to another checkpoint; restore this checkpoint's own tokenizer.json")
    recorded, actual = meta.get("tokenizer_sha256"), tokenizer_sha256(directory)
    if recorded and recorded != actual:
        origin = meta.get("tokenizer_from") or checkpoint_name(directory)
        raise CheckpointMismatch(
            f"{file} is tokenizer sha256:{actual[:12]}, not the tokenizer the model was trained with: meta.json "
            f"records sha256:{recorded[:12]} (trained by the {origin} run). Restore that tokenizer.json, or train "
            "a model with this tokenizer")


def find_checkpoint(cfg: DictConfig, stage: str = "sft") -> Path:
    """The configured identity/mix/model checkpoint if it exists, else the newest of the identity."""
    configured = checkpoint_dir(cfg, stage)
    if read_meta(configured) is not None:
        return configured
    root = Path(cfg.paths.checkpoints) / slug(cfg.identity.name)
    found = [p.parent for p in root.glob(f"*/*/{stage}/{META_FILE}")] if root.exists() else []
    if not found:
        raise CheckpointError(f"no {stage} checkpoint for identity {slug(cfg.identity.name)!r} under {root}: "
                              f"train one with `{train_command(cfg, stage)}`")
    return max(found, key=lambda p: (p / META_FILE).stat().st_mtime)
