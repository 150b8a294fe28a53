"""Pretraining of the base model: `python -m lanbot.train stage=base` (corpus=bundled | fineweb | local).

    python -m lanbot.train stage=base                          # tiny on the bundled corpus, about 19 min on 2 cores
    python -m lanbot.train stage=base model=d4 train.max_steps=1000     # about 33 min on 2 cores
    torchrun --nproc_per_node=8 -m lanbot.train stage=base corpus=fineweb model=d20

nanochat's recipe: the tokenizer is trained on the corpus first (saved with the base and reused by mid and sft
of every identity), documents are packed BOS-aligned (lanbot/training/docpack.py), the learning rate warms up
and down, Muon trains the block matrices, gradients accumulate to `train.total_batch_tokens`, checkpoints are
atomic and a killed run resumes from its last one, DDP under torchrun. The held-out documents give val bpb, and
a unigram model of the same tokens gives the floor it must beat (`unigram_bpb` in meta.json).

The loop is every stage's (lanbot/training/loop.py); this module is what the base brings to it: `BaseStage`.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from omegaconf import DictConfig

from lanbot.core import layout
from lanbot.core.device import Runtime
from lanbot.core.errors import LanbotError
from lanbot.training import checkpoint as ckpt
from lanbot.training import corpus as corpora
from lanbot.training.bpb import bits_per_byte, held_out_sums, scores
from lanbot.training.docpack import pack_documents
from lanbot.training.loop import clock
from lanbot.training.scratch import scratch_model, shared_tokenizer
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
    t0 = time.time()
    tok = shared_tokenizer(tokenizer_texts(cfg.corpus, int(cfg.train.tokenizer_chars)), int(cfg.model.vocab_size), rt)
    if rt.master:
        print(f"[base] tokenizer: {tok.vocab_size} tokens trained on corpus={cfg.corpus.name} in {time.time() - t0:.0f} s")
    return tok


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



def row_batches(rows: torch.Tensor, rt: Runtime, batch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """(inputs, targets) of this rank's share of `rows` (rank r takes r, r + world, ...), `batch` rows at a time."""
    mine = rows[rt.rank::rt.world_size]
    for i in range(0, len(mine), batch):
        chunk = mine[i:i + batch].to(rt.device)
        yield chunk[:, :-1], chunk[:, 1:]


def corpus_scores(model: torch.nn.Module, rows: torch.Tensor, tbytes: torch.Tensor, rt: Runtime, batch: int) -> dict:
    """Held-out loss (nats/token) and bits per byte over `rows` (split across ranks); BOS targets are skipped,
    since they carry no bytes."""
    return scores(held_out_sums(model, row_batches(rows, rt, batch), tbytes, rt, skip_byteless=True))


def unigram_bpb(counts: torch.Tensor, rows: torch.Tensor, tbytes: torch.Tensor) -> float:
    """Bits per byte of a unigram model (add-one smoothed token frequencies of the training rows) on `rows`."""
    probs = (counts.double() + 1) / (counts.sum().double() + len(counts))
    y = rows[:, 1:].reshape(-1)
    counted = tbytes[y] > 0
    nats = -torch.log(probs[y[counted]]).sum()
    return bits_per_byte(nats.item(), float(tbytes[y[counted]].sum()))


class BaseStage:
    """`stage=base` for the training loop: a tokenizer trained on the corpus (or a checkpoint's), BOS-aligned
    corpus rows, held-out corpus bpb, and the unigram floor counted from the rows trained on."""

    name, tag, error, progress = "base", "base", PretrainError, True

    def __init__(self, cfg: DictConfig, run_dir: Path) -> None:
        self.cfg, self.run_dir = cfg, run_dir
        self.out_dir = layout.base_dir(cfg)
        self.total = int(cfg.train.total_batch_tokens)

    def owns(self, meta: layout.CheckpointMeta) -> bool:
        return True

    def finished_error(self, meta: layout.CheckpointMeta) -> str:
        return (f"{self.out_dir} already holds a finished base (step {meta.get('step')}, val bpb "
                f"{meta.get('val_bpb'):.3f}): pass train.overwrite=true to train it again")

    def optimizer_fix(self, meta: layout.CheckpointMeta) -> str:
        return (f"resume it with train.optimizer={meta.get('optimizer')} or "
                "train afresh with train.resume=false train.overwrite=true")

    def start(self, rt: Runtime, resume: bool) -> tuple[torch.nn.Module, Tokenizer]:
        init = self.cfg.train.init_from
        if resume or init not in (None, "scratch"):
            model, tok, _ = ckpt.load_checkpoint(self.out_dir if resume else str(init))
            return model.train(), tok
        tok = train_tokenizer(self.cfg, rt)
        return scratch_model(self.cfg, tok, PretrainError), tok

    def sequence_len(self, model: torch.nn.Module) -> int:
        return int(model.config.sequence_len)

    def prepare(self, model: torch.nn.Module, tok: Tokenizer, row_len: int, rt: Runtime) -> None:
        self.tok, self.rt = tok, rt
        self.loader = Rows(self.cfg, tok, row_len, rt)
        self.counts = torch.zeros(model.config.vocab_size, dtype=torch.float64)  # targets trained on: the unigram
        self.held = val_rows(self.cfg.corpus, tok, row_len, int(self.cfg.train.val_tokens))
        self.tbytes = token_bytes(tok)
        self.batch_size = int(self.cfg.train.device_batch_size)

    def resume(self, meta: layout.CheckpointMeta, step: int, accum: int) -> None:
        rank = str(self.rt.rank)
        self.loader.skip_to(*meta["loader"][rank] if rank in meta.get("loader", {}) else (0, 0))
        saved_counts = ckpt.load_unigram_counts(self.out_dir)
        if saved_counts is not None:
            self.counts = saved_counts

    def header(self, model: torch.nn.Module, rt: Runtime, precision: str, accum: int, step: int) -> str:
        cfg, t = self.cfg, self.cfg.train
        return (f"[base] corpus={cfg.corpus.name} model={cfg.model.name}: {model.num_params():,} parameters, "
                f"{model.flops_per_token():,} FLOPs/token, device {rt.device} x{rt.world_size}, {self.total:,} "
                f"tokens/step (grad accumulation {accum}), {int(t.max_steps)} steps, {precision}"
                f"{' compiled' if t.compile else ''}, checkpoint {self.out_dir}"
                + (f", resuming at step {step}" if step else ""))

    def tags(self) -> list[str]:
        return ["base", str(self.cfg.corpus.name), str(self.cfg.model.name)]

    def use_inputs(self, tracker: Any, resume: bool) -> None:
        pass  # the corpus is a package or a folder, not an artifact

    def batch(self, n: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = self.loader.batch(n, device)
        self.counts += torch.bincount(y.reshape(-1).cpu(), minlength=len(self.counts)).double()
        return x, y

    def row(self, step: int) -> dict[str, Any]:
        return {"tokens": step * self.total}

    def logged(self) -> dict[str, Any]:
        return {}

    def step_line(self, step: int, max_steps: int, loss: float, row: dict, eta: float) -> str:
        return (f"[base] step {step}/{max_steps} loss {loss:.3f} {row['tok_per_sec']:,.0f} tok/s ETA {clock(eta)}"
                + (f" | val loss {row['val/loss']:.3f} bpb {row['val/bpb']:.3f}" if "val/loss" in row else ""))

    def evaluate(self, model: torch.nn.Module) -> dict[str, float]:
        return corpus_scores(model, self.held, self.tbytes, self.rt, self.batch_size)

    def weights(self, model: torch.nn.Module) -> torch.nn.Module:
        return model

    def checkpoint_meta(self, step: int, finished: bool, metrics: dict, optimizer: str,
                        precision: str) -> tuple[dict, dict]:
        """Every rank: the loaders' positions are gathered and the unigram counts summed (collectives)."""
        rt, cfg = self.rt, self.cfg
        states = [[self.loader.epoch, self.loader.taken]]
        if rt.ddp:
            gathered: list = [None] * rt.world_size
            dist.all_gather_object(gathered, states[0])
            states = gathered
        all_counts = self.counts.clone()
        if rt.ddp:
            dist.all_reduce(all_counts)
        uni = unigram_bpb(all_counts, self.held, self.tbytes) if rt.master and all_counts.sum() > 0 else None
        return ({"step": step, "stage": "base", "finished": finished, "identity": None, "identity_slug": None,
                 "mix": None, "model": cfg.model.name, "corpus": corpora.describe(cfg.corpus),
                 "optimizer": optimizer, "precision": precision,
                 "tokenizer_from": layout.checkpoint_name(self.out_dir, base=True),
                 "val_loss": metrics.get("val/loss"), "val_bpb": metrics.get("val/bpb"), "unigram_bpb": uni,
                 "tokens_trained": step * self.total, "loader": {str(r): s for r, s in enumerate(states)},
                 "run_dir": str(self.run_dir)},
                {layout.UNIGRAM_FILE: {"counts": self.counts}})

    def summary(self, metrics: dict, step: int, run_seconds: float, train_seconds: float) -> dict:
        final = layout.CheckpointMeta.read(self.out_dir) or {}
        return {"val/loss": metrics.get("val/loss"), "val/bpb": metrics.get("val/bpb"),
                "unigram_bpb": final.get("unigram_bpb"), "checkpoint": str(self.out_dir), "steps": step,
                "tokens": step * self.total, "run_seconds": run_seconds, "train_seconds": train_seconds}

    def publish(self, tracker: Any, summary: dict, metrics: dict, step: int) -> None:
        from lanbot.core.tracking import base_artifact

        tracker.log_artifact(base_artifact(self.cfg), "model", self.out_dir, files=layout.CHECKPOINT_REQUIRED,
                             metadata={"step": step, "val/bpb": summary["val/bpb"]})

    def done_line(self, summary: dict) -> str | None:
        return (f"[base] done: val bpb {summary['val/bpb']:.3f} (unigram {summary['unigram_bpb']:.3f}) in "
                f"{clock(summary['run_seconds'])}; {self.out_dir}")

