"""lm_head matmul + cross-entropy in one, for CPU training of models without a logit softcap (Llama, Qwen2).

The same idea as lanbot.training.model.SoftcapCrossEntropy: the (tokens x vocab) logits are made a slice of
rows at a time, and while a slice is still in cache its loss and its gradient with respect to the logits are
computed, so autograd never keeps logits, log-softmax and their gradients (SmolLM2's 49,152-token vocabulary:
800 MB of float32 per 4,096 tokens for the logits alone). Without the softcap the logits are unbounded, so each
row's softmax subtracts its maximum. Backward is SoftcapCrossEntropy's: two matmuls with the kept gradient.

    total = linear_cross_entropy(x, lm_head.weight, targets, need_grad=True)   # sum over targets != -1
"""

from __future__ import annotations

import torch

from lanbot.training.model import SoftcapCrossEntropy


class LinearCrossEntropy(torch.autograd.Function):
    """Sum of cross-entropy over targets != -1 of logits = x @ weight.T; `low`: bf16 matmuls and kept gradient."""

    slice_elements = SoftcapCrossEntropy.slice_elements  # 16 MB of float32 per slice, as measured there

    @staticmethod
    def forward(
        ctx, x: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, need_grad: bool, low: bool = False
    ) -> torch.Tensor:
        n, vocab = x.size(0), weight.size(0)
        rows = max(16, LinearCrossEntropy.slice_elements // vocab)
        ctx.dtypes = (x.dtype, weight.dtype)
        x, weight = (x.to(torch.bfloat16), weight.to(torch.bfloat16)) if low else (x.to(weight.dtype), weight)
        kept = torch.empty(n if need_grad else min(rows, n), vocab, dtype=x.dtype, device=x.device)
        work = torch.empty(min(rows, n), vocab, dtype=torch.float32, device=x.device) if low else None
        scratch = torch.empty(min(rows, n), vocab, dtype=torch.float32, device=x.device)
        total = torch.zeros((), dtype=torch.float32, device=x.device)
        weight_t = weight.t()
        for i in range(0, n, rows):
            ys = targets[i : i + rows]
            valid = ys != -1
            safe = ys.clamp(min=0).unsqueeze(1)
            xs = x[i : i + rows]
            out = kept[i : i + rows] if need_grad else kept[: xs.size(0)]
            torch.mm(xs, weight_t, out=out)
            t = work[: xs.size(0)].copy_(out) if low else out  # float32 logits of the slice
            top = t.amax(dim=1, keepdim=True)
            e = torch.sub(t, top, out=scratch[: t.size(0)]).exp_()
            total_exp = e.sum(dim=1, keepdim=True)
            total += ((total_exp.log() + top - t.gather(1, safe)).squeeze(1) * valid).sum()
            if need_grad:
                p = e.div_(total_exp)  # softmax; d loss / d logit = p - onehot
                p.scatter_add_(1, safe, -valid.to(p.dtype).unsqueeze(1))
                if not bool(valid.all()):
                    p[~valid] = 0.0
                out.copy_(p)
        ctx.save_for_backward(x, weight, kept if need_grad else None)
        return total

    # the kept d loss / d logits makes backward the same two matmuls as the softcapped loss: one owner
    backward = staticmethod(SoftcapCrossEntropy.backward)


@torch.compiler.disable
def linear_cross_entropy(x: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, need_grad: bool) -> torch.Tensor:
    """LinearCrossEntropy outside any torch.compile graph; under CPU bf16 autocast it takes the bf16 path."""
    low = torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16
    with torch.autocast("cpu", enabled=False):
        return LinearCrossEntropy.apply(x, weight, targets, need_grad, low)
