"""Training-speed benchmark: tokens/s and model FLOPs utilisation of lanbot's GPT on this machine.

One training step = forward + backward + AdamW step, in float32 or under bf16 autocast (`--precision`, as
`train.precision`). Utilisation is measured against the peak of a large matmul (2048x2048 @ 2048x2048) in the
same dtype, timed in the same run and interleaved with the model (peak, model, peak, model, ...), so a busy
machine slows both and the ratio stays meaningful.

    .venv/bin/python scripts/bench_train.py                       # tiny and d4, batch 8, seq 512
    .venv/bin/python scripts/bench_train.py --models d4 --compile # the same through torch.compile
    .venv/bin/python scripts/bench_train.py --models d4 --compile both --rounds 5
    .venv/bin/python scripts/bench_train.py --models d4 --plain-loss          # the un-fused baseline
    .venv/bin/python scripts/bench_train.py --precision both --compile both   # bf16 autocast against float32
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import time
from pathlib import Path

import torch
from omegaconf import OmegaConf

from lanbot.core.device import autocast, cpu_has_bf16
from lanbot.training.model import GPT, GPTConfig

CONF_MODEL = Path(__file__).resolve().parent.parent / "conf" / "model"


def matmul_peak(n: int = 2048, seconds: float = 1.5, dtype: torch.dtype = torch.float32) -> float:
    """GFLOP/s of repeated n x n @ n x n matmuls in `dtype` for about `seconds`."""
    a, b, out = (torch.randn(n, n, dtype=dtype) for _ in range(3))
    torch.mm(a, b, out=out)  # warm-up
    reps, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        torch.mm(a, b, out=out)
        reps += 1
    return 2 * n**3 * reps / (time.perf_counter() - t0) / 1e9


def make_step(model: GPT, optimizer: torch.optim.Optimizer, compile_model: bool, precision: str):
    """One training step as a function of (x, y), optionally through torch.compile, under `precision`."""
    forward = torch.compile(model) if compile_model else model

    def step(x: torch.Tensor, y: torch.Tensor) -> float:
        with autocast(torch.device("cpu"), precision):
            loss = forward(x, y)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return loss.item()

    return step


def bench_model(
    name: str,
    batch: int,
    seq: int,
    compile_model: bool,
    rounds: int,
    steps: int,
    vocab: int | None = None,
    fused_loss: bool = True,
    precision: str = "fp32",
) -> dict:
    fields = OmegaConf.to_container(OmegaConf.load(CONF_MODEL / f"{name}.yaml"))
    config = GPTConfig.from_mapping(
        {**fields, "sequence_len": seq, "vocab_size": vocab or fields["vocab_size"]}
    )
    torch.manual_seed(0)
    model = GPT(config)
    model.init_weights()
    model.fused_loss = fused_loss
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=1e-3, betas=(0.8, 0.95), weight_decay=0.0, fused=True
    )
    step = make_step(model, optimizer, compile_model, precision)
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    x = torch.randint(0, config.vocab_size, (batch, seq))
    y = torch.randint(0, config.vocab_size, (batch, seq))
    t0 = time.perf_counter()
    for _ in range(2):  # warm-up (and compilation)
        step(x, y)
    warm = time.perf_counter() - t0
    flops = model.flops_per_token()
    rows = []
    for _ in range(rounds):
        peak_before = matmul_peak(dtype=dtype)
        t0 = time.perf_counter()
        for _ in range(steps):
            step(x, y)
        dt = (time.perf_counter() - t0) / steps
        peak = (peak_before + matmul_peak(dtype=dtype)) / 2
        tok_s = batch * seq / dt
        rows.append((tok_s, peak, tok_s * flops / 1e9 / peak))
    best = max(rows, key=lambda r: r[2])
    return {
        "model": name,
        "compile": compile_model,
        "precision": precision,
        "vocab": config.vocab_size,
        "params_M": model.num_params() / 1e6,
        "mflops_per_token": flops / 1e6,
        "warmup_s": warm,
        "tok_s": statistics.median(r[0] for r in rows),
        "peak_gflops": statistics.median(r[1] for r in rows),
        "mfu": statistics.median(r[2] for r in rows),
        "best_mfu": best[2],
        "best_tok_s": best[0],
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models", nargs="+", default=["tiny", "d4"])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seq", type=int, default=512)
    parser.add_argument("--compile", choices=["off", "on", "both"], default="off", nargs="?", const="on")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved (peak, model) rounds")
    parser.add_argument("--steps", type=int, default=3, help="timed training steps per round")
    parser.add_argument("--vocab", type=int, default=None, help="override the model's vocab_size")
    parser.add_argument(
        "--plain-loss",
        action="store_true",
        help="lm_head + softcap + cross-entropy through plain autograd (the un-fused baseline)",
    )
    parser.add_argument("--precision", choices=["fp32", "bf16", "both"], default="fp32",
                        help="float32, bf16 autocast (train.precision), or both side by side")
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    modes = {"off": [False], "on": [True], "both": [False, True]}[args.compile]
    precisions = ["fp32", "bf16"] if args.precision == "both" else [args.precision]
    print(
        f"torch {torch.__version__}, {args.threads} threads, batch {args.batch}, seq {args.seq}, "
        f"CPU bf16 {'native' if cpu_has_bf16() else 'emulated'}, "
        f"loss {'plain autograd' if args.plain_loss else 'fused (SoftcapCrossEntropy)'}"
    )
    header = (
        f"{'model':6} {'compile':7} {'dtype':5} {'vocab':>6} {'params':>8} {'MFLOP/tok':>9} {'tok/s':>8} "
        f"{'peak GF/s':>9} {'MFU':>6} {'best MFU':>8} {'best tok/s':>10}"
    )
    print(header)
    for name in args.models:
        for compile_model, precision in itertools.product(modes, precisions):
            r = bench_model(
                name,
                args.batch,
                args.seq,
                compile_model,
                args.rounds,
                args.steps,
                args.vocab,
                not args.plain_loss,
                precision,
            )
            print(
                f"{r['model']:6} {('yes' if r['compile'] else 'no'):7} {r['precision']:5} {r['vocab']:6} {r['params_M']:7.2f}M "
                f"{r['mflops_per_token']:9.1f} {r['tok_s']:8.0f} {r['peak_gflops']:9.1f} "
                f"{100 * r['mfu']:5.1f}% {100 * r['best_mfu']:7.1f}% {r['best_tok_s']:10.0f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
