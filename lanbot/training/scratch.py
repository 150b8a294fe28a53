"""A model started from nothing: its tokenizer trained on the stage's texts and shared by every rank, and the
shape of `conf/model/<name>.yaml` initialised from `seed`. The base (`stage=base`) and a scratch mid
(`train.init_from=scratch`) both start here.

    tok = shared_tokenizer(texts, vocab_size=4096, rt=rt)     # rank 0 trains, the others receive it
    model = scratch_model(cfg, tok, TrainError)               # nanochat's init, seeded by cfg.seed
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.distributed as dist
from omegaconf import DictConfig

from lanbot.core.device import Runtime
from lanbot.core.errors import LanbotError
from lanbot.training.model import GPT, SHAPE_FIELDS, GPTConfig
from lanbot.training.tokenizer import Tokenizer


def shared_tokenizer(texts: Iterable[str], vocab_size: int, rt: Runtime) -> Tokenizer:
    """Rank 0 trains the BPE on `texts` (only rank 0 reads them); under DDP the others receive it as JSON."""
    from tokenizers import Tokenizer as HFTokenizer

    blob: list[str | None] = [None]
    tok = None
    if rt.master:
        tok = Tokenizer.train(texts, vocab_size)
        blob = [tok._hf.to_str()]
    if rt.ddp:
        dist.broadcast_object_list(blob, src=0)
    return tok if tok is not None else Tokenizer(HFTokenizer.from_str(blob[0]))


def scratch_config(cfg: DictConfig, tok: Tokenizer, error: type[LanbotError]) -> GPTConfig:
    """The shape of a model trained from scratch: `conf/model/<name>.yaml`, its vocabulary at least the
    tokenizer's. A shape that does not fit raises `error` naming the file to fix."""
    fields = {k: cfg.model[k] for k in SHAPE_FIELDS if k != "vocab_size"}
    try:
        return GPTConfig(vocab_size=max(int(cfg.model.vocab_size), tok.vocab_size), **fields)
    except ValueError as exc:
        raise error(f"model={cfg.model.name}: {exc} (fix conf/model/{cfg.model.name}.yaml or the "
                    "model.* overrides)") from None


def scratch_model(cfg: DictConfig, tok: Tokenizer, error: type[LanbotError]) -> GPT:
    """lanbot's GPT of the configured shape with nanochat's init; `cfg.seed` decides every weight (the seed is
    set before the modules are built, so their default init draws are part of what it decides)."""
    config = scratch_config(cfg, tok, error)
    torch.manual_seed(int(cfg.seed))
    model = GPT(config)
    model.init_weights()
    return model
