"""A diverged run stops before it saves: a NaN or Inf loss, gradient norm or weight ends training with one line.

The optimizer step is skipped and no checkpoint is written once a value is not finite, so the last good
checkpoint on disk stays as it was (a later save would replace it with weights that cannot answer).

    norm = clip_gradients(model, grad_clip)        # grad_clip 0: no clipping, the norm is still measured
    check_step(step + 1, loss_sum, norm, rt)       # before optimizer.step()
    check_weights(model, step)                     # before every save
"""

from __future__ import annotations

import math

import torch
import torch.distributed as dist

from lanbot.core.errors import LanbotError

HINT = ("the last good checkpoint is kept as it was; lower the learning rates (train.matrix_lr, train.embedding_lr, "
        "train.unembedding_lr) or keep train.grad_clip on, and run again")


class DivergedError(LanbotError, FloatingPointError):
    """The loss, the gradients or the weights stopped being finite numbers."""


def clip_gradients(model: torch.nn.Module, grad_clip: float) -> float:
    """Clip the gradient norm to `grad_clip` (0: off) and return the norm before clipping."""
    limit = float(grad_clip) if grad_clip > 0 else math.inf
    return float(torch.nn.utils.clip_grad_norm_(model.parameters(), limit))


def check_step(step: int, loss: float, grad_norm: float, ddp: bool = False, device: torch.device | None = None) -> None:
    """Raise DivergedError if this step's loss or gradient norm is NaN or Inf on any rank."""
    bad = not (math.isfinite(loss) and math.isfinite(grad_norm))
    if ddp:  # every rank stops together, or the others would wait forever at the next all-reduce
        flag = torch.tensor(float(bad), device=device)
        dist.all_reduce(flag)
        bad = bool(flag.item() > 0)
    if bad:
        what = f"loss {loss}" if not math.isfinite(loss) else f"gradient norm {grad_norm} (loss {loss:.4f})"
        raise DivergedError(f"training diverged at step {step}: {what} is not a finite number; {HINT}")


def check_weights(model: torch.nn.Module, step: int) -> None:
    """Raise DivergedError rather than save weights that hold NaN or Inf."""
    if not all(bool(torch.isfinite(p).all()) for p in model.parameters()):
        raise DivergedError(f"training diverged at step {step}: the weights hold NaN or Inf values and are not "
                            f"saved; {HINT}")
