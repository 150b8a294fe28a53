"""The training loop of every stage (base, mid, sft): `fit(cfg, run_dir, group, stage)`.

What is the same for every stage lives here: the device and DDP, the decision to resume or refuse, gradient
accumulation to `train.total_batch_tokens`, the schedule and the optimizer (lanbot/training/optim.py), the
divergence checks, evaluation every `train.eval_every` steps, atomic checkpoints every `train.checkpoint_every`
and exact resume, wandb and the console. What differs is a Stage (lanbot/training/pretrain.py: corpus rows and a
tokenizer trained on them; lanbot/training/run.py: packed conversation rows from a checkpoint):

    stage.start(rt, resume)        -> (model, tokenizer): from scratch, a checkpoint, or `out_dir` to resume
    stage.sequence_len(model)      the row length when `train.sequence_len` is null
    stage.prepare(model, tok, row_len, rt)  the loader and the held-out rows, once the model's context is known
    stage.batch(n, device)         -> (inputs, targets) of n rows for this rank
    stage.evaluate(model)          -> {"val/loss": ..., "val/bpb": ..., ...}
    stage.weights(model)           the module saved (LoRA: the adapters merged in)
    stage.checkpoint_meta(...)     -> (meta.json's fields, extra tensor files); called on every rank
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Any, Protocol

import torch
import torch.distributed as dist
from omegaconf import DictConfig

from lanbot.core import layout
from lanbot.core.device import Runtime, autocast, init_distributed, synchronize, train_precision
from lanbot.core.errors import LanbotError
from lanbot.training import checkpoint as ckpt
from lanbot.training import optim
from lanbot.training.divergence import check_step, check_weights, clip_gradients
from lanbot.training.tokenizer import Tokenizer


class Stage(Protocol):
    """The parts of a training run that depend on its stage (see the module docstring)."""

    name: str  # base | mid | sft: the wandb job type and meta.json's stage
    tag: str  # the console prefix: [base] or [train]
    error: type[LanbotError]  # raised, one line, for a run that cannot start
    out_dir: Path  # the checkpoint folder this run writes
    progress: bool  # a rich progress bar on a terminal

    def owns(self, meta: layout.CheckpointMeta) -> bool: ...
    def finished_error(self, meta: layout.CheckpointMeta) -> str: ...
    def optimizer_fix(self, meta: layout.CheckpointMeta) -> str: ...
    def start(self, rt: Runtime, resume: bool) -> tuple[torch.nn.Module, Tokenizer]: ...
    def sequence_len(self, model: torch.nn.Module) -> int: ...
    def prepare(self, model: torch.nn.Module, tok: Tokenizer, row_len: int, rt: Runtime) -> None: ...
    def resume(self, meta: layout.CheckpointMeta, step: int, accum: int) -> None: ...
    def header(self, model: torch.nn.Module, rt: Runtime, precision: str, accum: int, step: int) -> str: ...
    def tags(self) -> list[str]: ...
    def use_inputs(self, tracker: Any, resume: bool) -> None: ...
    def batch(self, n: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]: ...
    def row(self, step: int) -> dict[str, Any]: ...
    def logged(self) -> dict[str, Any]: ...
    def step_line(self, step: int, max_steps: int, loss: float, row: dict, eta: float) -> str: ...
    def evaluate(self, model: torch.nn.Module) -> dict[str, float]: ...
    def weights(self, model: torch.nn.Module) -> torch.nn.Module: ...
    def checkpoint_meta(self, step: int, finished: bool, metrics: dict, optimizer: str,
                        precision: str) -> tuple[dict | layout.CheckpointMeta, dict | None]: ...
    def summary(self, metrics: dict, step: int, run_seconds: float, train_seconds: float) -> dict: ...
    def publish(self, tracker: Any, summary: dict, metrics: dict, step: int) -> None: ...
    def done_line(self, summary: dict) -> str | None: ...


def fit(cfg: DictConfig, run_dir: Path, group: str | None, stage: Stage) -> dict:
    """One training run of `stage`; returns its summary. A finished checkpoint is refused unless
    `train.overwrite`; an unfinished one of this stage is resumed (`train.resume`) at its step, its rows and its
    optimizer state, so that the run ends where an uninterrupted one would have."""
    t = cfg.train
    try:
        optim.check_name(str(t.optimizer))
        rt = init_distributed(str(t.device))  # RuntimeError / ValueError: an unavailable or unknown train.device
    except (optim.OptimizerError, RuntimeError, ValueError) as exc:
        raise stage.error(str(exc)) from None
    start = time.time()
    out_dir = stage.out_dir
    meta = layout.CheckpointMeta.read(out_dir)
    resume = False
    if meta is not None and stage.owns(meta):
        if meta.finished and not t.overwrite:
            raise stage.error(stage.finished_error(meta))
        resume = not meta.finished and bool(t.resume)
    model, tok = stage.start(rt, resume)
    seq = int(t.sequence_len or stage.sequence_len(model))
    if seq > model.config.sequence_len:
        raise stage.error(f"train.sequence_len={seq} exceeds the model's sequence_len {model.config.sequence_len}")
    B, total = int(t.device_batch_size), int(t.total_batch_tokens)
    if total % (B * seq * rt.world_size):
        raise stage.error(f"train.total_batch_tokens={total} is not a multiple of device_batch_size x sequence_len "
                          f"x processes = {B * seq * rt.world_size}")
    accum = total // (B * seq * rt.world_size)
    model.to(rt.device).train()
    optimizer = optim.build_from_config(model, t)
    stage.prepare(model, tok, seq + 1, rt)
    step = 0
    if resume:
        saved = ckpt.load_torch_file(out_dir / layout.OPTIMIZER_FILE, rt.device)
        try:
            optimizer.load_state_dict(saved)
        except optim.OptimizerError as exc:
            raise stage.error(f"{out_dir}: {exc}; {stage.optimizer_fix(meta)}") from None
        step = int(meta.step)
        stage.resume(meta, step, accum)
    raw = model
    precision = train_precision(rt.device, str(t.precision))
    if t.compile:
        model = torch.compile(model)
    if rt.ddp:
        model = torch.nn.parallel.DistributedDataParallel(model, broadcast_buffers=False)
    max_steps = int(t.max_steps)
    tracker, progress = None, None
    if rt.master:
        from lanbot.core.tracking import Tracker

        print(stage.header(raw, rt, precision, accum, step))
        tracker = Tracker(cfg, run_dir, job_type=stage.name, group=group, tags=stage.tags())
        stage.use_inputs(tracker, resume)
        if stage.progress:
            from lanbot.core.progress import progress_bar

            progress = progress_bar(stage.name, max_steps, step)
    flops_token = raw.flops_per_token()

    def save(finished: bool, metrics: dict) -> None:
        check_weights(raw, step)
        meta, extra = stage.checkpoint_meta(step, finished, metrics, optimizer.name, precision)  # every rank
        if rt.master:
            ckpt.save_checkpoint(out_dir, stage.weights(raw), optimizer, tok, cfg, meta, extra=extra)
        if rt.ddp:
            dist.barrier()

    metrics: dict = {}
    t_run = time.time()
    steps_this_run = 0
    while step < max_steps:
        t0 = time.time()
        factor = optim.lr_factor(step, max_steps, float(t.warmup_ratio), float(t.warmdown_ratio), float(t.final_lr_frac))
        for g in optimizer.param_groups:
            g["lr"] = g["initial_lr"] * factor
        loss_sum, tokens = 0.0, 0
        for micro in range(accum):
            x, y = stage.batch(B, rt.device)
            # gradients are all-reduced once per step, on the last micro-batch
            sync = contextlib.nullcontext() if not rt.ddp or micro == accum - 1 else model.no_sync()
            with sync:
                with autocast(rt.device, precision):
                    loss = model(x, y) / accum
                loss.backward()
            loss_sum += loss.item()
            tokens += x.numel() * rt.world_size
        check_step(step + 1, loss_sum, clip_gradients(model, float(t.grad_clip)), rt.ddp, rt.device)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        synchronize(rt.device)
        step += 1
        steps_this_run += 1
        dt = time.time() - t0
        tok_s = tokens / dt
        row = {"train/loss": loss_sum, "lr": optimizer.param_groups[0]["lr"], "tok_per_sec": tok_s, "step_time": dt,
               **stage.row(step)}
        if rt.device.type == "cuda":  # model FLOPs utilisation against the GPU's bf16 peak
            row["mfu"] = flops_token * tok_s / (peak_flops(rt.device) * rt.world_size)
        if step % int(t.eval_every) == 0 or step == max_steps:
            row.update(stage.evaluate(raw))
            metrics = row
        if tracker is not None:
            eta = (time.time() - t_run) / steps_this_run * (max_steps - step)
            if step % int(t.log_every) == 0 or "val/loss" in row:
                row.update(stage.logged())
                tracker.log(row, step=step)
                print(stage.step_line(step, max_steps, loss_sum, row, eta), flush=True)
            if progress is not None:
                progress.update(progress.task_ids[0], completed=step,
                                description=f"{stage.name} loss {loss_sum:.3f} {tok_s:,.0f} tok/s")
        if step % int(t.checkpoint_every) == 0 and step < max_steps:
            save(False, metrics)
    if progress is not None:
        progress.stop()
    if not metrics:  # resumed at the end (train.max_steps lowered): score it
        metrics = stage.evaluate(raw)
    save(True, metrics)
    summary = stage.summary(metrics, step, round(time.time() - start, 1), round(time.time() - t_run, 1))
    if tracker is not None:
        tracker.summary(summary)
        stage.publish(tracker, summary, metrics, step)
        tracker.finish()
        line = stage.done_line(summary)
        if line:
            print(line)
    return summary


def clock(seconds: float) -> str:
    """m:ss, or h:mm:ss from an hour."""
    m, s = divmod(int(seconds), 60)
    return f"{m // 60}:{m % 60:02d}:{s:02d}" if m >= 60 else f"{m}:{s:02d}"


def peak_flops(device: torch.device) -> float:
    """bf16 dense peak of the GPU, for MFU (H100/H200 SXM 989 TFLOP/s, A100 312)."""
    name = torch.cuda.get_device_name(device)
    for key, peak in (("H200", 989e12), ("H100", 989e12), ("A100", 312e12), ("L40", 181e12), ("4090", 165e12)):
        if key in name:
            return peak
    return 989e12
