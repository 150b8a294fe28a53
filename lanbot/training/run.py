"""Midtraining and SFT of a nanochat-style GPT on a data mix: `python -m lanbot.train stage=mid|sft`
(`stage=base` pretraining is lanbot/training/pretrain.py; this app hands it over).

    python -m lanbot.train stage=base                              # once: the base every identity starts from
    python -m lanbot.train stage=mid identity=sage model=tiny
    python -m lanbot.train stage=sft identity=sage model=tiny
    python -m lanbot.train -m stage=mid model=tiny mix=default,no_identity identity=lanbot,sage
    torchrun --nproc_per_node=2 -m lanbot.train stage=mid hydra.run.dir=outputs/runs/ddp

Mid starts from the base of the configured corpus and model (`train.init_from=base`) and keeps its tokenizer;
a scratch mid run (`train.init_from=scratch`) trains the tokenizer on its training texts; sft starts from the mid
checkpoint of the same identity, mix and model. `train.init_from=nanochat:<folder>[@step]` starts from a nanochat
checkpoint, its tokenizer converted (lanbot/sharing/nanochat_checkpoint.py). Checkpoints are atomic; a killed run resumes from its last one.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from pathlib import Path

import torch
import torch.distributed as dist
from omegaconf import DictConfig
from safetensors.torch import load_file

import lanbot.core.identity  # noqa: F401  (schema and `slug` resolver)
from lanbot.core import layout
from lanbot.core.device import Runtime, autocast, init_distributed, shutdown_distributed, train_precision
from lanbot.core.errors import LanbotError
from lanbot.core.identity import identity_slug, slug
from lanbot.core.lock import reading
from lanbot.evaluation.evaluate_checkpoint import evaluate_run
from lanbot.training import checkpoint as ckpt
from lanbot.training import optim
from lanbot.training.chat_format import ChatFormatError
from lanbot.training.divergence import check_step, check_weights, clip_gradients
from lanbot.training.lora import LoRAError, apply_lora, load_lora_state_dict, lora_state_dict, merged_copy
from lanbot.training.mix import SourceData, conversation_text, load_mix, mixture
from lanbot.training.model import GPT
from lanbot.training.packing import pack_rows, render_all, shuffled_rows, to_batch
from lanbot.training.pretrain import scratch_config
from lanbot.training.pretrained_start import PretrainedStartError, is_pretrained, start_from_pretrained
from lanbot.training.settings_check import check_settings
from lanbot.training.tokenizer import Tokenizer, token_bytes

LORA_FILE = "lora.safetensors"  # the adapters beside the merged weights: what a resumed LoRA run goes on from


class TrainError(LanbotError, RuntimeError):
    """A run that cannot start: the message says why and what to do."""




def initial_state(cfg: DictConfig, sources: list[SourceData], rt: Runtime):
    """(model, tokenizer, meta of the source checkpoint or None): scratch, a folder, hf://, nanochat:, or sft's mid."""
    init = cfg.train.init_from
    pretrained = cfg.model.get("pretrained")  # a pretrained chat model is the base: mid is optional
    if init is None or init == "mid":
        init = str(layout.checkpoint_dir(cfg, "mid"))
        if layout.CheckpointMeta.read(init) is None and pretrained:
            print(f"[train] sft starts from {pretrained} (model={cfg.model.name}: no mid checkpoint at {init}, "
                  "and a pretrained chat model needs none)")
            init = "base"
        elif layout.CheckpointMeta.read(init) is None:
            raise TrainError(f"sft starts from the mid checkpoint at {init}, which does not exist: "
                             f"run `{layout.train_command(cfg, 'mid')}` first (or set train.init_from)")
    if init == "base" and pretrained:
        init = str(pretrained)
    if is_pretrained(init):
        try:
            model, tok, record = start_from_pretrained(init)
        except (PretrainedStartError, ChatFormatError) as exc:
            raise TrainError(f"train.init_from={init}: {exc}") from None
        meta = layout.CheckpointMeta(stage="pretrained", tokenizer_from=init, base={
            "dir": record["pretrained"]["path"], "name": init, "pretrained": record["pretrained"]})
        return model, tok, meta
    if init == "base":
        base = layout.base_dir(cfg)
        meta = layout.CheckpointMeta.read(base)
        if meta is None or not meta.finished:
            state = "is unfinished" if meta is not None else "does not exist"
            raise TrainError(f"{cfg.stage} starts from the base at {base}, which {state}: run "
                             f"`{layout.base_command(cfg)}` first (or set train.init_from=scratch)")
        with reading(base, "base checkpoint"):  # not while a pretraining run replaces it
            model, tok, meta = ckpt.load_checkpoint(base, "cpu")
        model.train()
        meta.base = base_record(base, meta)
        return model, tok, meta
    if init == "scratch":
        texts = [conversation_text(c) for s in sources for c in s.train]
        if rt.master:
            tok = Tokenizer.train(texts, int(cfg.model.vocab_size))
            blob = [tok._hf.to_str()] if hasattr(tok, "_hf") else [None]
        else:
            blob = [None]
        if rt.ddp:
            dist.broadcast_object_list(blob, src=0)
        if not rt.master:
            from tokenizers import Tokenizer as HFTokenizer

            tok = Tokenizer(HFTokenizer.from_str(blob[0]))
        model = GPT(scratch_config(cfg, tok, TrainError))
        torch.manual_seed(int(cfg.seed))
        model.init_weights()
        return model, tok, None
    if str(init).startswith("nanochat:"):
        from lanbot.sharing.nanochat_checkpoint import NanochatCheckpointError, import_checkpoint

        try:
            model, tok, meta = import_checkpoint(str(init), cfg.train.get("nanochat_tokenizer"))
        except NanochatCheckpointError as exc:
            raise TrainError(f"train.init_from={init}: {exc}") from None
        model.train()
        return model, tok, meta
    if str(init).startswith("hf://"):
        from lanbot.sharing.hub import HubError, download_checkpoint

        try:
            init = str(download_checkpoint(init))
        except HubError as exc:
            raise TrainError(f"train.init_from={init}: {exc}") from None
    with reading(init, "checkpoint folder"):  # sft's mid: not while a retrain of mid swaps it
        model, tok, meta = ckpt.load_checkpoint(init, "cpu")
    model.train()
    return model, tok, meta


def with_lora(model: torch.nn.Module, lora, resume_from: Path | None) -> bool:
    """Put LoRA adapters on `model` when `train.lora.rank` > 0 (resuming: the saved adapters, taken off the merged
    weights again, so the optimizer state fits); the base weights are then frozen. Returns whether it did."""
    if lora is None or not int(lora.rank):
        return False
    try:
        apply_lora(model, int(lora.rank), float(lora.alpha), float(lora.dropout), lora.targets)
        if resume_from is not None:
            load_lora_state_dict(model, load_file(str(resume_from / LORA_FILE)), merged_base=True)
    except (LoRAError, FileNotFoundError) as exc:
        raise TrainError(f"train.lora: {exc}") from None
    return True


def base_record(directory: Path, meta: dict) -> dict:
    """What a mid or sft checkpoint keeps of the base it grew from (for the capability cost of the identity)."""
    return {"dir": str(directory), "name": layout.checkpoint_name(directory, base=True),
            "corpus": (meta.get("corpus") or {}).get("name"), "val_bpb": meta.get("val_bpb"),
            "tokenizer_sha256": meta.get("tokenizer_sha256")}


@torch.no_grad()
def evaluate_val(model, val_rows: dict[str, list], rt: Runtime, tbytes: torch.Tensor, batch: int) -> dict:
    """val/loss per source, overall val/loss and val/bpb over the held-out rows (split across ranks)."""
    model.eval()
    out, total_nats, total_tokens, total_bytes = {}, 0.0, 0, 0.0
    for name, rows in val_rows.items():
        stats = torch.zeros(3, dtype=torch.float64, device=rt.device)
        mine = rows[rt.rank::rt.world_size]
        for i in range(0, len(mine), batch):
            x, y = to_batch(mine[i:i + batch], rt.device)
            with autocast(rt.device):
                logits = model(x).float()
            valid = y != -1
            nats = torch.nn.functional.cross_entropy(logits.view(-1, logits.size(-1)), y.clamp(min=0).view(-1),
                                                     reduction="none").view_as(y)
            stats[0] += nats[valid].sum().double()
            stats[1] += valid.sum()
            stats[2] += tbytes.to(rt.device)[y.clamp(min=0)][valid].sum().double()
        if rt.ddp:
            dist.all_reduce(stats)
        if stats[1] > 0:
            out[f"val/loss/{name}"] = (stats[0] / stats[1]).item()
            total_nats, total_tokens, total_bytes = (total_nats + stats[0].item(), total_tokens + int(stats[1]),
                                                     total_bytes + stats[2].item())
    if total_tokens:
        out["val/loss"] = total_nats / total_tokens
        out["val/bpb"] = total_nats / (math.log(2) * max(total_bytes, 1.0))
    model.train()
    return out


def train(cfg: DictConfig, run_dir: Path, group: str | None = None) -> dict:
    """One training run of `cfg.stage`; returns the summary. The checkpoint folder it writes is locked for the
    run (one writer per folder; the master rank holds it) and cleared of the temps of killed saves first."""
    import os

    from lanbot.core.lock import FolderLock

    check_settings(cfg)  # before any data is read or a folder written (the lock file included)
    stage = str(cfg.stage)
    out_dir = layout.checkpoint_dir(cfg, stage)
    if int(os.environ.get("RANK", "0")) != 0:
        return _train(cfg, run_dir, group)
    with FolderLock(out_dir, "checkpoint folder"):
        removed = ckpt.remove_stale_saves(out_dir)
        if removed:
            print(f"[train] removed {len(removed)} leftover save(s) of an interrupted run: "
                  + ", ".join(p.name for p in removed))
        if stage != "base":
            check_owners(cfg, out_dir)
        return _train(cfg, run_dir, group)


def check_owners(cfg: DictConfig, out_dir: Path) -> None:
    """The checkpoint being written, sft's mid and the data folder belong to the configured identity (or refuse)."""
    from lanbot.generation.datafolder import check_owner

    name = str(cfg.identity.name)
    ckpt.check_identity(out_dir, layout.CheckpointMeta.read(out_dir), name)
    if str(cfg.stage) == "sft":
        mid = layout.checkpoint_dir(cfg, "mid")
        ckpt.check_identity(mid, layout.CheckpointMeta.read(mid), name)
    folder = Path(cfg.paths.data_dir)
    if folder.is_dir() and not (cfg.get("data") is not None and cfg.data.get("from_hub")):
        check_owner(folder, name)


def _train(cfg: DictConfig, run_dir: Path, group: str | None = None) -> dict:
    stage, t = str(cfg.stage), cfg.train
    if stage == "base":
        from lanbot.training.pretrain import pretrain

        return pretrain(cfg, run_dir, group)
    try:
        optim.check_name(str(t.optimizer))
    except optim.OptimizerError as exc:
        raise TrainError(str(exc)) from None
    try:
        rt = init_distributed(str(t.device))
    except (RuntimeError, ValueError) as exc:  # an unavailable or unknown train.device
        raise TrainError(str(exc)) from None
    start = time.time()
    out_dir = layout.checkpoint_dir(cfg, stage)
    meta = layout.CheckpointMeta.read(out_dir)
    resume_from = None
    if meta is not None and meta.stage == stage:
        if not meta.finished and t.resume:
            resume_from = out_dir
        elif meta.finished and not t.overwrite:
            raise TrainError(f"{out_dir} already holds a finished {stage} checkpoint (step {meta.step}): "
                             "pass train.overwrite=true to train it again")
    from lanbot.sharing.hub import data_dir as hub_or_local  # imported here: only hub runs pay for the client

    data_dir = hub_or_local(cfg)
    if cfg.get("data") is not None and cfg.data.get("from_hub"):  # the Hub's data is refused as a local folder is
        from lanbot.generation.datafolder import check_owner

        check_owner(data_dir, str(cfg.identity.name), source=f"data.from_hub={cfg.data.from_hub}")
    with reading(data_dir, "data folder"):  # never a folder generate is rewriting: all of it, or a refusal
        sources = load_mix(cfg, stage, data_dir)
    model, tok, source_meta = (initial_state(cfg, sources, rt) if resume_from is None
                               else ckpt.load_checkpoint(resume_from))
    pretrained = cfg.model.get("pretrained") and is_pretrained(str(cfg.model.pretrained))
    seq = int(t.sequence_len or (cfg.model.sequence_len if pretrained else model.config.sequence_len))
    if seq > model.config.sequence_len:
        raise TrainError(f"train.sequence_len={seq} exceeds the model's sequence_len {model.config.sequence_len}")
    row_len = seq + 1
    pad = tok.special_id(tok.chat.stop)
    forms = list(t.system_prompts)
    val_rows = {s.name: pack_rows(render_all(tok, [(i, c) for c in s.val], forms), row_len, pad).rows
                for i, s in enumerate(sources)}
    adapters = with_lora(model, t.lora, resume_from)
    model.to(rt.device).train()
    optimizer = optim.build_from_config(model, cfg.train)
    step = 0
    if resume_from is not None:
        saved = ckpt.load_torch_file(resume_from / layout.OPTIMIZER_FILE, rt.device)
        try:
            optimizer.load_state_dict(saved)
        except optim.OptimizerError as exc:
            raise TrainError(f"{resume_from}: {exc}; resume it with the optimizer it was trained with "
                             "(train.optimizer) or start the stage afresh with train.resume=false") from None
        step = int(layout.CheckpointMeta.read(resume_from).step)
    raw = model
    precision = train_precision(rt.device, str(t.precision))
    if t.compile:
        model = torch.compile(model)
    if rt.ddp:
        model = torch.nn.parallel.DistributedDataParallel(model, broadcast_buffers=False)
    B, total_tokens = int(t.device_batch_size), int(t.total_batch_tokens)
    per_step_rows = B * rt.world_size
    if total_tokens % (per_step_rows * seq):
        raise TrainError(f"train.total_batch_tokens={total_tokens} is not a multiple of device_batch_size x "
                         f"sequence_len x processes = {per_step_rows * seq}")
    accum = total_tokens // (per_step_rows * seq)
    tracker = None
    if rt.master:
        from lanbot.core.tracking import Tracker

        print(f"[train] {stage}: {raw.num_params():,} parameters, {raw.flops_per_token():,} FLOPs/token, "
              f"device {rt.device} x{rt.world_size}, {precision}{' compiled' if t.compile else ''}, "
              f"grad accumulation {accum}, checkpoint {out_dir}"
              + (f", resuming at step {step}" if step else ""))
        tracker = Tracker(cfg, run_dir, job_type=stage, group=group,
                          tags=[slug(cfg.identity.name), str(cfg.mix.name), str(cfg.model.name)])
        use_inputs(tracker, cfg, stage, resume_from)
    tbytes = token_bytes(tok)
    max_steps = int(t.max_steps)
    epoch, rows, cursor, drawn, skipped_total = -1, [], 0, Counter(), 0

    def next_rows():
        nonlocal epoch, rows, cursor, skipped_total
        need = per_step_rows
        if cursor + need > len(rows):
            epoch += 1
            packed = pack_rows(render_all(tok, mixture(sources, int(cfg.seed), epoch), forms), row_len, pad)
            skipped_total = sum(packed.skipped.values())
            if packed.skipped and rt.master and epoch == 0:
                print(f"[train] skipped {skipped_total} conversations longer than {row_len} tokens: "
                      + ", ".join(f"{sources[i].name}={n}" for i, n in packed.skipped.items()))
            rows, cursor = shuffled_rows(packed, int(cfg.seed) + epoch), 0
            if len(rows) < need:
                raise TrainError(f"only {len(rows)} rows fit sequence_len={seq} (need {need} per step): "
                                 "raise the sequence_len or lower device_batch_size")
        batch = rows[cursor:cursor + need][rt.rank::rt.world_size]
        cursor += need
        return batch

    for _ in range(step * accum):  # replay the loader to where the run stopped
        next_rows()

    def save(finished: bool, metrics: dict) -> None:
        check_weights(raw, step)
        if rt.master:
            ckpt.save_checkpoint(out_dir, merged_copy(raw) if adapters else raw, optimizer, tok, cfg, layout.CheckpointMeta(
                stage=stage, step=step, finished=finished, identity=cfg.identity.name,
                identity_slug=identity_slug(cfg.identity.name), mix=cfg.mix.name, model=cfg.model.name,
                optimizer=optimizer.name, precision=precision, tokenizer_from=source_meta.tokenizer_from if source_meta else None,
                base=source_meta.base if source_meta else None,
                val_loss=metrics.get("val/loss"), val_bpb=metrics.get("val/bpb"),
                val_losses={k[9:]: v for k, v in metrics.items() if k.startswith("val/loss/")}, run_dir=str(run_dir)),
                extra={LORA_FILE: lora_state_dict(raw)} if adapters else None)
        if rt.ddp:
            dist.barrier()

    metrics: dict = {}
    while step < max_steps:
        t0 = time.time()
        factor = optim.lr_factor(step, max_steps, float(t.warmup_ratio), float(t.warmdown_ratio), float(t.final_lr_frac))
        for g in optimizer.param_groups:
            g["lr"] = g["initial_lr"] * factor
        loss_sum, tokens = 0.0, 0
        for micro in range(accum):
            batch = next_rows()
            for r in batch:
                for i, n in r[2].items():
                    drawn[sources[i].name] += n
            x, y = to_batch(batch, rt.device)
            sync = not rt.ddp or micro == accum - 1
            ctx = model.no_sync() if not sync else _null()
            with ctx, autocast(rt.device, precision):
                loss = model(x, y) / accum
            with ctx:
                loss.backward()
            loss_sum += loss.item()
            tokens += x.numel() * rt.world_size
        check_step(step + 1, loss_sum, clip_gradients(model, float(t.grad_clip)), rt.ddp, rt.device)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        dt = time.time() - t0
        row = {"train/loss": loss_sum, "lr": optimizer.param_groups[0]["lr"], "tok_per_sec": tokens / dt,
               "step_time": dt}
        if rt.device.type == "cuda":  # model FLOPs utilisation against the GPU's bf16 peak
            from lanbot.training.pretrain import peak_flops

            row["mfu"] = raw.flops_per_token() * tokens / dt / (peak_flops(rt.device) * rt.world_size)
        if step % int(t.eval_every) == 0 or step == max_steps:
            row.update(evaluate_val(raw, val_rows, rt, tbytes, B))
            metrics = row
        if tracker is not None and (step % int(t.log_every) == 0 or "val/loss" in row):
            row.update({f"mix/{k}": v for k, v in drawn.items()})
            tracker.log(row, step=step)
            print(f"[train] step {step}/{max_steps} loss {loss_sum:.3f}"
                  + (f" val {row['val/loss']:.3f} bpb {row['val/bpb']:.3f}" if "val/loss" in row else ""))
        if step % int(t.checkpoint_every) == 0 and step < max_steps:
            save(False, metrics)
    save(True, metrics)
    summary = {**{k: v for k, v in metrics.items() if k.startswith("val/")}, "checkpoint": str(out_dir),
               "steps": step, "run_seconds": round(time.time() - start, 1), "skipped_conversations": skipped_total}
    if tracker is not None:
        tracker.summary(summary)
        tracker.log_artifact(model_artifact(cfg, stage), "model", out_dir, files=layout.CHECKPOINT_REQUIRED,
                             metadata={"step": step, **{k: v for k, v in metrics.items() if k.startswith("val/")}})
        if t.eval_at_end:
            summary.update(evaluate_run(cfg, out_dir, run_dir, tracker))
        tracker.finish()
    return summary


def model_artifact(cfg: DictConfig, stage: str) -> str:
    """The wandb artifact of a checkpoint slot: `model-<identity>-<mix>-<model>-<stage>`."""
    return f"model-{slug(cfg.identity.name)}-{cfg.mix.name}-{cfg.model.name}-{stage}"


def use_inputs(tracker, cfg: DictConfig, stage: str, resume_from: Path | None) -> None:
    """The run's inputs as wandb artifacts: the identity's data folder (logged by lanbot.generate as
    `data-<identity>`) and the checkpoint it starts from: the base for mid, the mid checkpoint for sft."""
    from lanbot.core.tracking import base_artifact

    folder = Path(cfg.paths.data_dir)
    if folder.is_dir() and not (cfg.get("data") is not None and cfg.data.get("from_hub")):
        tracker.use_artifact(f"data-{slug(cfg.identity.name)}", "dataset", folder)
    if stage == "mid" and str(cfg.train.init_from) == "base" and resume_from is None:
        tracker.use_artifact(base_artifact(cfg), "model", layout.base_dir(cfg), files=layout.CHECKPOINT_REQUIRED)
    if stage == "sft" and str(cfg.train.init_from) == "mid" and resume_from is None:
        mid = layout.checkpoint_dir(cfg, "mid")
        tracker.use_artifact(model_artifact(cfg, "mid"), "model", mid, files=layout.CHECKPOINT_REQUIRED)


class _null:
    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False


STAGES = ("base", "mid", "sft")


def check_train_choice(train_choice: str | None, stage: str) -> None:
    """`train` follows `stage` (config.yaml: `train: ${stage}`): `train=sft` alone would train a mid checkpoint
    with sft's settings, written where mid's goes; a train option of its own (not a stage's) is the user's."""
    if train_choice in STAGES and train_choice != stage:
        raise TrainError(f"train={train_choice} chooses {train_choice}'s settings but the stage is {stage}, so this would "
                         f"train a {stage} checkpoint with them: give stage={train_choice} instead (train follows the "
                         "stage), or both")


def train_app(cfg: DictConfig, run_dir: Path) -> dict:
    """`python -m lanbot.train`: one stage; a sweep's runs share a wandb group named after the sweep folder."""
    from hydra.core.hydra_config import HydraConfig

    hc = HydraConfig.get()
    check_train_choice(hc.runtime.choices.get("train"), str(cfg.stage))
    group = cfg.logger.get("group") if cfg.get("logger") else None
    if group is None and str(hc.mode) == "RunMode.MULTIRUN":
        group = "-".join(Path(hc.sweep.dir).parts[-2:])
    try:
        return train(cfg, run_dir, group)
    finally:
        shutdown_distributed()
