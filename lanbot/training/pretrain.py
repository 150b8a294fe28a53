"""Pretraining of the base model: `python -m lanbot.train stage=base` (corpus=bundled | fineweb | local).

    python -m lanbot.train stage=base                          # tiny on the bundled corpus, about 19 min on 2 cores
    python -m lanbot.train stage=base model=d4 train.max_steps=1000     # about 33 min on 2 cores
    torchrun --nproc_per_node=8 -m lanbot.train stage=base corpus=fineweb model=d20

nanochat's recipe: the tokenizer is trained on the corpus first (saved with the base and reused by mid and sft
of every identity), documents are packed BOS-aligned (lanbot/training/docpack.py), the learning rate warms up
and down, Muon trains the block matrices, gradients accumulate to `train.total_batch_tokens`, checkpoints are
atomic and a killed run resumes from its last one, DDP under torchrun. The held-out documents give val bpb, and
a unigram model of the same tokens gives the floor it must beat (`unigram_bpb` in meta.json).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from omegaconf import DictConfig

from lanbot.core import layout
from lanbot.core.device import Runtime, autocast, init_distributed, synchronize, train_precision
from lanbot.core.errors import LanbotError
from lanbot.training import checkpoint as ckpt
from lanbot.training import corpus as corpora
from lanbot.training import optim
from lanbot.training.divergence import check_step, check_weights, clip_gradients
from lanbot.training.docpack import pack_documents
from lanbot.training.model import GPT, GPTConfig
from lanbot.training.tokenizer import Tokenizer, token_bytes


class PretrainError(LanbotError, RuntimeError):
    """A base run that cannot start: the message says why and what to do."""


def tokenizer_texts(corpus: DictConfig, max_chars: int) -> Iterator[str]:
    """Training documents up to `max_chars` characters (the held-out split never shapes the tokenizer)."""
    total = 0
    for text in corpora.documents(corpus, "train"):
        yield text
        total += len(text)
        if total >= max_chars:
            return


def train_tokenizer(cfg: DictConfig, rt: Runtime) -> Tokenizer:
    """Rank 0 trains the BPE on the corpus; the other ranks receive it."""
    from tokenizers import Tokenizer as HFTokenizer

    blob: list[str | None] = [None]
    if rt.master:
        t0 = time.time()
        tok = Tokenizer.train(tokenizer_texts(cfg.corpus, int(cfg.train.tokenizer_chars)), int(cfg.model.vocab_size))
        blob = [tok._hf.to_str()]
        print(f"[base] tokenizer: {tok.vocab_size} tokens trained on corpus={cfg.corpus.name} in {time.time() - t0:.0f} s")
    if rt.ddp:
        dist.broadcast_object_list(blob, src=0)
    return Tokenizer(HFTokenizer.from_str(blob[0]))


def encode_docs(tok: Tokenizer, docs: Iterator[str], batch: int = 256) -> Iterator[np.ndarray]:
    """Token ids of each document (encoded in batches, in parallel in Rust)."""
    chunk: list[str] = []
    for text in docs:
        chunk.append(text)
        if len(chunk) == batch:
            yield from (np.asarray(ids, dtype=np.int32) for ids in tok.encode_batch(chunk))
            chunk = []
    if chunk:
        yield from (np.asarray(ids, dtype=np.int32) for ids in tok.encode_batch(chunk))


class Rows:
    """Training rows, epoch after epoch: finite corpora (bundled, local) are tokenised once and reshuffled
    per epoch; fineweb streams (this rank's shard) and starts over when it runs out.

    Under DDP a finite corpus gives every rank the same rows and rank r takes r, r + world, ...; fineweb is
    sharded by `datasets` already. `state` (epoch, rows taken) is saved in meta.json to resume."""

    def __init__(self, cfg: DictConfig, tok: Tokenizer, row_len: int, rt: Runtime) -> None:
        self.cfg, self.tok, self.row_len, self.rt = cfg, tok, row_len, rt
        self.streaming = str(cfg.corpus.kind) == "fineweb"
        self.docs: list[np.ndarray] | None = None
        self.epoch, self.taken = 0, 0
        self._it: Iterator[np.ndarray] | None = None

    def _epoch_rows(self) -> Iterator[np.ndarray]:
        c, buffer = self.cfg.corpus, int(self.cfg.train.buffer_docs)
        if self.streaming:
            docs = encode_docs(self.tok, corpora.documents(c, "train", self.rt.rank, self.rt.world_size))
            yield from pack_documents(docs, self.row_len, self.tok.bos_id, buffer)
            return
        if self.docs is None:
            self.docs = list(encode_docs(self.tok, corpora.documents(c, "train")))
            if not self.docs:
                raise PretrainError(f"corpus={c.name} has no training documents")
        order = np.random.default_rng([int(self.cfg.seed), self.epoch]).permutation(len(self.docs))
        rows = pack_documents((self.docs[i] for i in order), self.row_len, self.tok.bos_id, buffer)
        for i, row in enumerate(rows):
            if i % self.rt.world_size == self.rt.rank:
                yield row

    def next(self) -> np.ndarray:
        for _ in range(2):
            if self._it is None:
                self._it = self._epoch_rows()
            row = next(self._it, None)
            if row is not None:
                self.taken += 1
                return row
            self._it, self.epoch, self.taken = None, self.epoch + 1, 0
        raise PretrainError(f"corpus={self.cfg.corpus.name} gives no row of {self.row_len} tokens: "
                            "lower the sequence_len or add text")

    def batch(self, n: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        rows = torch.from_numpy(np.stack([self.next() for _ in range(n)]).astype(np.int64))
        return rows[:, :-1].to(device), rows[:, 1:].to(device)

    def skip_to(self, epoch: int, taken: int) -> None:
        """Replay the loader to where a killed run stopped (same seed: the same rows)."""
        while self.epoch < epoch:
            for _ in self._epoch_rows():
                pass
            self.epoch += 1
        self._it = self._epoch_rows()
        for _ in range(taken):
            next(self._it)
        self.taken = taken


def val_rows(corpus: DictConfig, tok: Tokenizer, row_len: int, tokens: int) -> torch.Tensor:
    """The held-out rows scored at every evaluation: the first `tokens` tokens of the held-out documents,
    packed as training packs them (so a base and the mid and sft models grown from it score the same rows)."""
    want = max(1, int(tokens) // row_len)
    rows = []
    for row in pack_documents(encode_docs(tok, corpora.documents(corpus, "val")), row_len, tok.bos_id):
        rows.append(row)
        if len(rows) >= want:
            break
    if not rows:
        raise PretrainError(f"corpus={corpus.name}: the held-out split gives no row of {row_len} tokens; "
                            "raise corpus.val_fraction (or corpus.val_docs)")
    return torch.from_numpy(np.stack(rows).astype(np.int64))



@torch.no_grad()
def bpb(model: torch.nn.Module, rows: torch.Tensor, tbytes: torch.Tensor, rt: Runtime, batch: int) -> dict:
    """Held-out loss (nats/token) and bits per byte over `rows` (split across ranks); BOS targets are skipped,
    since they carry no bytes."""
    was_training = model.training
    model.eval()
    stats = torch.zeros(3, dtype=torch.float64, device=rt.device)
    mine = rows[rt.rank::rt.world_size]
    tb = tbytes.to(rt.device)
    for i in range(0, len(mine), batch):
        chunk = mine[i:i + batch].to(rt.device)
        x, y = chunk[:, :-1], chunk[:, 1:]
        with autocast(rt.device):
            nats = model(x, y, reduction="none").double()
        counted = tb[y] > 0
        stats[0] += nats[counted].sum()
        stats[1] += counted.sum()
        stats[2] += tb[y][counted].sum()
    if rt.ddp:
        dist.all_reduce(stats)
    model.train(was_training)
    return {"val/loss": (stats[0] / stats[1]).item(), "val/bpb": (stats[0] / (math.log(2) * stats[2])).item()}


def unigram_bpb(counts: torch.Tensor, rows: torch.Tensor, tbytes: torch.Tensor) -> float:
    """Bits per byte of a unigram model (add-one smoothed token frequencies of the training rows) on `rows`."""
    probs = (counts.double() + 1) / (counts.sum().double() + len(counts))
    y = rows[:, 1:].reshape(-1)
    counted = tbytes[y] > 0
    nats = -torch.log(probs[y[counted]]).sum()
    return (nats / (math.log(2) * tbytes[y[counted]].sum())).item()


def scratch_config(cfg: DictConfig, tok: Tokenizer, error: type[LanbotError] = PretrainError) -> GPTConfig:
    """The shape of a model trained from scratch: `conf/model/<name>.yaml`, its vocabulary at least the
    tokenizer's. A shape that does not fit raises `error` naming the file to fix (mid and sft from scratch
    raise their own TrainError)."""
    fields = {k: cfg.model[k] for k in ("sequence_len", "n_layer", "n_head", "n_kv_head", "n_embd")}
    try:
        return GPTConfig(vocab_size=max(int(cfg.model.vocab_size), tok.vocab_size), **fields)
    except ValueError as exc:
        raise error(f"model={cfg.model.name}: {exc} (fix conf/model/{cfg.model.name}.yaml or the "
                    "model.* overrides)") from None


def new_model(cfg: DictConfig, tok: Tokenizer) -> GPT:
    config = scratch_config(cfg, tok)
    torch.manual_seed(int(cfg.seed))
    model = GPT(config)
    model.init_weights()
    return model


def pretrain(cfg: DictConfig, run_dir: Path, group: str | None = None) -> dict:
    """One base run; returns the summary (val bpb, unigram bpb, tokens, time)."""

    t = cfg.train
    try:
        optim.check_name(str(t.optimizer))
        rt = init_distributed(str(t.device))
    except (optim.OptimizerError, RuntimeError, ValueError) as exc:
        raise PretrainError(str(exc)) from None
    start = time.time()
    out_dir = layout.base_dir(cfg)
    meta = layout.CheckpointMeta.read(out_dir)
    resume = meta is not None and not meta.get("finished") and bool(t.resume)
    if meta is not None and meta.get("finished") and not t.overwrite:
        raise PretrainError(f"{out_dir} already holds a finished base (step {meta.get('step')}, val bpb "
                            f"{meta.get('val_bpb'):.3f}): pass train.overwrite=true to train it again")
    if resume:
        model, tok, _ = ckpt.load_checkpoint(out_dir)
        model.train()
    elif t.init_from not in (None, "scratch"):
        model, tok, _ = ckpt.load_checkpoint(str(t.init_from))
        model.train()
    else:
        tok = train_tokenizer(cfg, rt)
        model = new_model(cfg, tok)
    seq = int(t.sequence_len or model.config.sequence_len)
    if seq > model.config.sequence_len:
        raise PretrainError(f"train.sequence_len={seq} exceeds the model's sequence_len {model.config.sequence_len}")
    B, total = int(t.device_batch_size), int(t.total_batch_tokens)
    if total % (B * seq * rt.world_size):
        raise PretrainError(f"train.total_batch_tokens={total} is not a multiple of device_batch_size x sequence_len "
                            f"x processes = {B * seq * rt.world_size}")
    accum = total // (B * seq * rt.world_size)
    model.to(rt.device).train()
    optimizer = optim.build_from_config(model, cfg.train)
    loader = Rows(cfg, tok, seq + 1, rt)
    step, counts = 0, torch.zeros(model.config.vocab_size, dtype=torch.float64)
    if resume:
        saved = ckpt.load_torch_file(out_dir / layout.OPTIMIZER_FILE, rt.device)
        try:
            optimizer.load_state_dict(saved)
        except optim.OptimizerError as exc:
            raise PretrainError(f"{out_dir}: {exc}; resume it with train.optimizer={meta.get('optimizer')} or "
                                "train afresh with train.resume=false train.overwrite=true") from None
        step = int(meta["step"])
        loader.skip_to(*meta["loader"][str(rt.rank)] if str(rt.rank) in meta.get("loader", {}) else (0, 0))
        saved_counts = ckpt.load_unigram_counts(out_dir)
        if saved_counts is not None:
            counts = saved_counts
    raw = model
    precision = train_precision(rt.device, str(t.precision))
    if t.compile:
        model = torch.compile(model)
    if rt.ddp:
        model = torch.nn.parallel.DistributedDataParallel(model, broadcast_buffers=False)
    held = val_rows(cfg.corpus, tok, seq + 1, int(t.val_tokens))
    tbytes = token_bytes(tok)
    max_steps = int(t.max_steps)
    tracker, progress = None, None
    if rt.master:
        from lanbot.core.tracking import Tracker

        print(f"[base] corpus={cfg.corpus.name} model={cfg.model.name}: {raw.num_params():,} parameters, "
              f"{raw.flops_per_token():,} FLOPs/token, device {rt.device} x{rt.world_size}, {total:,} tokens/step "
              f"(grad accumulation {accum}), {max_steps} steps, {precision}"
              f"{' compiled' if t.compile else ''}, checkpoint {out_dir}"
              + (f", resuming at step {step}" if step else ""))
        tracker = Tracker(cfg, run_dir, job_type="base", group=group,
                          tags=["base", str(cfg.corpus.name), str(cfg.model.name)])
        progress = _progress(max_steps, step)
    flops_token = raw.flops_per_token()

    def loader_states() -> dict:
        states = [[loader.epoch, loader.taken]]
        if rt.ddp:
            gathered: list = [None] * rt.world_size
            dist.all_gather_object(gathered, states[0])
            states = gathered
        return {str(r): s for r, s in enumerate(states)}

    def save(finished: bool, metrics: dict) -> None:
        check_weights(raw, step)
        states = loader_states()
        all_counts = counts.clone()
        if rt.ddp:
            dist.all_reduce(all_counts)
        if rt.master:
            uni = unigram_bpb(all_counts, held, tbytes) if all_counts.sum() > 0 else None
            ckpt.save_checkpoint(out_dir, raw, optimizer, tok, cfg, {
                "step": step, "stage": "base", "finished": finished, "identity": None, "identity_slug": None,
                "mix": None, "model": cfg.model.name, "corpus": corpora.describe(cfg.corpus),
                "optimizer": optimizer.name, "precision": precision,
                "tokenizer_from": layout.checkpoint_name(out_dir, base=True),
                "val_loss": metrics.get("val/loss"), "val_bpb": metrics.get("val/bpb"), "unigram_bpb": uni,
                "tokens_trained": step * total, "loader": states, "run_dir": str(run_dir)},
                extra={layout.UNIGRAM_FILE: {"counts": counts}})
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
        loss_sum = 0.0
        for micro in range(accum):
            x, y = loader.batch(B, rt.device)
            counts += torch.bincount(y.reshape(-1).cpu(), minlength=len(counts)).double()
            ctx = model.no_sync() if rt.ddp and micro < accum - 1 else _null()
            with ctx:
                with autocast(rt.device, precision):
                    loss = model(x, y) / accum
                loss.backward()
            loss_sum += loss.item()
        check_step(step + 1, loss_sum, clip_gradients(model, float(t.grad_clip)), rt.ddp, rt.device)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        synchronize(rt.device)
        step += 1
        steps_this_run += 1
        dt = time.time() - t0
        tok_s = total / dt
        row = {"train/loss": loss_sum, "lr": optimizer.param_groups[0]["lr"], "tok_per_sec": tok_s, "step_time": dt,
               "tokens": step * total}
        if rt.device.type == "cuda":
            row["mfu"] = flops_token * tok_s / (peak_flops(rt.device) * rt.world_size)
        if step % int(t.eval_every) == 0 or step == max_steps:
            row.update(bpb(raw, held, tbytes, rt, B))
            metrics = row
        if tracker is not None:
            eta = (time.time() - t_run) / steps_this_run * (max_steps - step)
            if step % int(t.log_every) == 0 or "val/loss" in row:
                tracker.log(row, step=step)
                print(f"[base] step {step}/{max_steps} loss {loss_sum:.3f} {tok_s:,.0f} tok/s ETA {_clock(eta)}"
                      + (f" | val loss {row['val/loss']:.3f} bpb {row['val/bpb']:.3f}" if "val/loss" in row else ""),
                      flush=True)
            if progress is not None:
                progress.update(progress.task_ids[0], completed=step,
                                description=f"base loss {loss_sum:.3f} {tok_s:,.0f} tok/s")
        if step % int(t.checkpoint_every) == 0 and step < max_steps:
            save(False, metrics)
    if progress is not None:
        progress.stop()
    if not metrics:  # resumed at the end: score it
        metrics = bpb(raw, held, tbytes, rt, B)
    save(True, metrics)
    final = layout.CheckpointMeta.read(out_dir) or {}
    summary = {"val/loss": metrics.get("val/loss"), "val/bpb": metrics.get("val/bpb"),
               "unigram_bpb": final.get("unigram_bpb"), "checkpoint": str(out_dir), "steps": step,
               "tokens": step * total, "run_seconds": round(time.time() - start, 1),
               "train_seconds": round(time.time() - t_run, 1)}
    if tracker is not None:
        from lanbot.core.tracking import base_artifact

        tracker.summary(summary)
        tracker.log_artifact(base_artifact(cfg), "model", out_dir, files=layout.CHECKPOINT_REQUIRED,
                             metadata={"step": step, "val/bpb": summary["val/bpb"]})
        tracker.finish()
        print(f"[base] done: val bpb {summary['val/bpb']:.3f} (unigram {summary['unigram_bpb']:.3f}) in "
              f"{_clock(summary['run_seconds'])}; {out_dir}")
    return summary


def _progress(total: int, done: int):
    """A rich progress bar (steps, elapsed, ETA) on a terminal; None in logs, which get the printed lines."""
    from lanbot.core.progress import progress_bar

    return progress_bar("base", total, done)


def _clock(seconds: float) -> str:
    m, s = divmod(int(seconds), 60)
    return f"{m // 60}:{m % 60:02d}:{s:02d}" if m >= 60 else f"{m}:{s:02d}"


def peak_flops(device: torch.device) -> float:
    """bf16 dense peak of the GPU, for MFU (H100/H200 SXM 989 TFLOP/s, A100 312)."""
    name = torch.cuda.get_device_name(device)
    for key, peak in (("H200", 989e12), ("H100", 989e12), ("A100", 312e12), ("L40", 181e12), ("4090", 165e12)):
        if key in name:
            return peak
    return 989e12


class _null:
    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False
