"""Held-out loss and bits per byte: every stage's validation figure and the capability cost of an identity.

Bits per byte is the summed loss in nats over the targets scored, divided by ln 2 and by the UTF-8 bytes those
targets stand for (`tokenizer.token_bytes`), so models with different tokenizers compare. Which targets are
scored is the caller's rule: a base skips targets that carry no bytes (BOS), a chat stage scores every target
but padding (-1), the special tokens of its chat format included.

    sums = held_out_sums(model, batches, tbytes, rt, skip_byteless=True)   # [nats, targets, bytes], all ranks
    scores(sums)                                                          # {"val/loss": ..., "val/bpb": ...}
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
import torch.distributed as dist

from lanbot.core.device import Runtime, autocast


@torch.no_grad()
def held_out_sums(model: torch.nn.Module, batches: Iterable[tuple[torch.Tensor, torch.Tensor]], tbytes: torch.Tensor,
                  rt: Runtime, skip_byteless: bool) -> torch.Tensor:
    """[nats, targets scored, bytes] of `model` over this rank's `batches` of (inputs, targets), summed over the
    ranks; the model's train/eval mode is kept."""
    was_training = model.training
    model.eval()
    sums = torch.zeros(3, dtype=torch.float64, device=rt.device)
    tb = tbytes.to(rt.device)
    for x, y in batches:
        with autocast(rt.device):
            nats = model(x, y, reduction="none").double()  # 0 where y == -1
        target_bytes = tb[y.clamp(min=0)]
        counted = target_bytes > 0 if skip_byteless else y != -1
        sums[0] += nats[counted].sum()
        sums[1] += counted.sum()
        sums[2] += target_bytes[counted].sum()
    if rt.ddp:
        dist.all_reduce(sums)
    model.train(was_training)
    return sums


def bits_per_byte(nats: float, nbytes: float) -> float:
    """Nats over `nbytes` bytes of text, in bits per byte (a byte at least, so an empty set is not a division by 0)."""
    return nats / (math.log(2) * max(nbytes, 1.0))


def scores(sums: torch.Tensor) -> dict[str, float]:
    """val/loss (nats per scored target) and val/bpb of `held_out_sums`' figures; {} when nothing was scored."""
    nats, targets, nbytes = (float(v) for v in sums.tolist())
    if not targets:
        return {}
    return {"val/loss": nats / targets, "val/bpb": bits_per_byte(nats, nbytes)}
