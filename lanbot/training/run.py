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

from collections import Counter
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig
from safetensors.torch import load_file

import lanbot.core.identity  # noqa: F401  (schema and `slug` resolver)
from lanbot.core import layout
from lanbot.core.device import Runtime, shutdown_distributed
from lanbot.core.errors import LanbotError
from lanbot.core.identity import identity_slug, slug
from lanbot.core.lock import reading
from lanbot.evaluation.evaluate_checkpoint import evaluate_run
from lanbot.training import checkpoint as ckpt
from lanbot.training.bpb import held_out_sums, scores
from lanbot.training.chat_format import ChatFormatError
from lanbot.training.loop import fit
from lanbot.training.lora import LoRAError, apply_lora, load_lora_state_dict, lora_state_dict, merged_copy
from lanbot.training.mix import SourceData, conversation_text, load_mix, mixture
from lanbot.training.packing import pack_rows, render_all, shuffled_rows, to_batch
from lanbot.training.pretrain import BaseStage
from lanbot.training.pretrained_start import PretrainedStartError, is_pretrained, start_from_pretrained
from lanbot.training.scratch import scratch_model, shared_tokenizer
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
        tok = shared_tokenizer(texts, int(cfg.model.vocab_size), rt)
        return scratch_model(cfg, tok, TrainError), tok, None
    if str(init).startswith("nanochat:"):
        from lanbot.sharing.nanochat_checkpoint import NanochatCheckpointError, import_checkpoint

        try:
            model, tok, meta = import_checkpoint(str(init), cfg.train.get("nanochat_tokenizer"))
        except NanochatCheckpointError as exc:
            raise TrainError(f"train.init_from={init}: {exc}") from None
        model.train()
        return model, tok, meta
    if layout.is_hub_address(str(init)):
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
    if folder.is_dir() and not layout.data_from_hub(cfg):
        check_owner(folder, name)


def _train(cfg: DictConfig, run_dir: Path, group: str | None = None) -> dict:
    stage = BaseStage(cfg, run_dir) if str(cfg.stage) == "base" else ChatStage(cfg, run_dir)
    return fit(cfg, run_dir, group, stage)


class ChatStage:
    """`stage=mid` and `stage=sft` for the training loop: the identity's mix (lanbot/training/mix.py) rendered in
    the chat format and packed into rows, from a base, sft's mid, a nanochat import or scratch (`initial_state`);
    val/loss per source and val/bpb over the mix's held-out conversations."""

    tag, error, progress = "train", TrainError, False

    def __init__(self, cfg: DictConfig, run_dir: Path) -> None:
        self.cfg, self.run_dir = cfg, run_dir
        self.name = str(cfg.stage)
        self.out_dir = layout.checkpoint_dir(cfg, self.name)
        self.source_meta: layout.CheckpointMeta | None = None
        self.epoch, self.rows, self.cursor, self.skipped_total = -1, [], 0, 0
        self.drawn: Counter = Counter()

    def owns(self, meta: layout.CheckpointMeta) -> bool:
        return meta.stage == self.name

    def finished_error(self, meta: layout.CheckpointMeta) -> str:
        return (f"{self.out_dir} already holds a finished {self.name} checkpoint (step {meta.step}): "
                "pass train.overwrite=true to train it again")

    def optimizer_fix(self, meta: layout.CheckpointMeta) -> str:
        return "resume it with the optimizer it was trained with (train.optimizer) or start the stage afresh with " \
               "train.resume=false"

    def start(self, rt: Runtime, resume: bool) -> tuple[torch.nn.Module, Tokenizer]:
        """The mix's data first (a scratch tokenizer is trained on it), then the model: `out_dir` to resume."""
        # imported here: only hub runs pay for the client
        from lanbot.sharing.hub import data_dir as hub_or_local

        cfg = self.cfg
        data_dir = hub_or_local(cfg)
        if layout.data_from_hub(cfg):  # the Hub's data is refused as a local folder is
            from lanbot.generation.datafolder import check_owner

            check_owner(data_dir, str(cfg.identity.name), source=f"data.from_hub={cfg.data.from_hub}")
        with reading(data_dir, "data folder"):  # never a folder generate is rewriting: all of it, or a refusal
            self.sources = load_mix(cfg, self.name, data_dir)
        model, tok, self.source_meta = (initial_state(cfg, self.sources, rt) if not resume
                                        else ckpt.load_checkpoint(self.out_dir))
        self.adapters = with_lora(model, cfg.train.lora, self.out_dir if resume else None)
        return model, tok

    def sequence_len(self, model: torch.nn.Module) -> int:
        """A pretrained chat model trains at `model.sequence_len` rows, not its own 8k-128k positions."""
        pretrained = self.cfg.model.get("pretrained") and is_pretrained(str(self.cfg.model.pretrained))
        return int(self.cfg.model.sequence_len if pretrained else model.config.sequence_len)

    def prepare(self, model: torch.nn.Module, tok: Tokenizer, row_len: int, rt: Runtime) -> None:
        self.model, self.tok, self.row_len, self.rt = model, tok, row_len, rt
        self.pad = tok.special_id(tok.chat.stop)
        self.forms = list(self.cfg.train.system_prompts)
        self.val_rows = {s.name: pack_rows(render_all(tok, [(i, c) for c in s.val], self.forms), row_len,
                                           self.pad).rows
                         for i, s in enumerate(self.sources)}
        self.tbytes = token_bytes(tok)
        self.batch_size = int(self.cfg.train.device_batch_size)

    def resume(self, meta: layout.CheckpointMeta, step: int, accum: int) -> None:
        for _ in range(step * accum):  # replay the loader to where the run stopped
            self._next_rows(self.batch_size * self.rt.world_size)

    def header(self, model: torch.nn.Module, rt: Runtime, precision: str, accum: int, step: int) -> str:
        t = self.cfg.train
        return (f"[train] {self.name}: {model.num_params():,} parameters, {model.flops_per_token():,} FLOPs/token, "
                f"device {rt.device} x{rt.world_size}, {precision}{' compiled' if t.compile else ''}, "
                f"grad accumulation {accum}, checkpoint {self.out_dir}"
                + (f", resuming at step {step}" if step else ""))

    def tags(self) -> list[str]:
        return [slug(self.cfg.identity.name), str(self.cfg.mix.name), str(self.cfg.model.name)]

    def use_inputs(self, tracker: Any, resume: bool) -> None:
        use_inputs(tracker, self.cfg, self.name, self.out_dir if resume else None)

    def _next_rows(self, need: int) -> list:
        """The next `need` packed rows of the mix (all ranks'), a new shuffled epoch when these run out."""
        cfg, rt, seq = self.cfg, self.rt, self.row_len - 1
        if self.cursor + need > len(self.rows):
            self.epoch += 1
            packed = pack_rows(render_all(self.tok, mixture(self.sources, int(cfg.seed), self.epoch), self.forms),
                               self.row_len, self.pad)
            self.skipped_total = sum(packed.skipped.values())
            if packed.skipped and rt.master and self.epoch == 0:
                print(f"[train] skipped {self.skipped_total} conversations longer than {self.row_len} tokens: "
                      + ", ".join(f"{self.sources[i].name}={n}" for i, n in packed.skipped.items()))
            self.rows, self.cursor = shuffled_rows(packed, int(cfg.seed) + self.epoch), 0
            if len(self.rows) < need:
                raise TrainError(f"only {len(self.rows)} rows fit sequence_len={seq} (need {need} per step): "
                                 "raise the sequence_len or lower device_batch_size")
        batch = self.rows[self.cursor:self.cursor + need]
        self.cursor += need
        return batch

    def batch(self, n: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        mine = self._next_rows(n * self.rt.world_size)[self.rt.rank::self.rt.world_size]
        for r in mine:
            for i, count in r[2].items():
                self.drawn[self.sources[i].name] += count
        return to_batch(mine, device)

    def row(self, step: int) -> dict[str, Any]:
        return {}

    def logged(self) -> dict[str, Any]:
        return {f"mix/{k}": v for k, v in self.drawn.items()}

    def step_line(self, step: int, max_steps: int, loss: float, row: dict, eta: float) -> str:
        return (f"[train] step {step}/{max_steps} loss {loss:.3f}"
                + (f" val {row['val/loss']:.3f} bpb {row['val/bpb']:.3f}" if "val/loss" in row else ""))

    def evaluate(self, model: torch.nn.Module) -> dict[str, float]:
        """val/loss per source, then val/loss and val/bpb over all of them (every target but padding scored)."""
        rt, out, total = self.rt, {}, torch.zeros(3, dtype=torch.float64, device=self.rt.device)
        for name, rows in self.val_rows.items():
            mine = rows[rt.rank::rt.world_size]
            batches = (to_batch(mine[i:i + self.batch_size], rt.device) for i in range(0, len(mine), self.batch_size))
            sums = held_out_sums(model, batches, self.tbytes, rt, skip_byteless=False)
            if sums[1] > 0:
                out[f"val/loss/{name}"] = scores(sums)["val/loss"]
                total += sums
        return {**out, **scores(total)}

    def weights(self, model: torch.nn.Module) -> torch.nn.Module:
        """What is saved: with LoRA, a copy with the adapters merged in (the adapters go beside it)."""
        return merged_copy(model) if self.adapters else model

    def checkpoint_meta(self, step: int, finished: bool, metrics: dict, optimizer: str,
                        precision: str) -> tuple[layout.CheckpointMeta, dict | None]:
        cfg, source = self.cfg, self.source_meta
        return layout.CheckpointMeta(
            stage=self.name, step=step, finished=finished, identity=cfg.identity.name,
            identity_slug=identity_slug(cfg.identity.name), mix=cfg.mix.name, model=cfg.model.name,
            optimizer=optimizer, precision=precision, tokenizer_from=source.tokenizer_from if source else None,
            base=source.base if source else None, val_loss=metrics.get("val/loss"), val_bpb=metrics.get("val/bpb"),
            val_losses={k[9:]: v for k, v in metrics.items() if k.startswith("val/loss/")},
            run_dir=str(self.run_dir)), ({LORA_FILE: lora_state_dict(self.model)} if self.adapters else None)

    def summary(self, metrics: dict, step: int, run_seconds: float, train_seconds: float) -> dict:
        return {**{k: v for k, v in metrics.items() if k.startswith("val/")}, "checkpoint": str(self.out_dir),
                "steps": step, "run_seconds": run_seconds, "skipped_conversations": self.skipped_total}

    def publish(self, tracker: Any, summary: dict, metrics: dict, step: int) -> None:
        tracker.log_artifact(model_artifact(self.cfg, self.name), "model", self.out_dir,
                             files=layout.CHECKPOINT_REQUIRED,
                             metadata={"step": step, **{k: v for k, v in metrics.items() if k.startswith("val/")}})
        if self.cfg.train.eval_at_end:
            summary.update(evaluate_run(self.cfg, self.out_dir, self.run_dir, tracker))

    def done_line(self, summary: dict) -> str | None:
        return None


def model_artifact(cfg: DictConfig, stage: str) -> str:
    """The wandb artifact of a checkpoint slot: `model-<identity>-<mix>-<model>-<stage>` (core.tracking names it)."""
    from lanbot.core.tracking import slot_artifact

    return slot_artifact("model", cfg.identity.name, cfg.mix.name, cfg.model.name, stage)


def use_inputs(tracker, cfg: DictConfig, stage: str, resume_from: Path | None) -> None:
    """The run's inputs as wandb artifacts: the identity's data folder (logged by lanbot.generate as
    `data-<identity>`) and the checkpoint it starts from: the base for mid, the mid checkpoint for sft."""
    from lanbot.core.tracking import base_artifact, data_artifact

    folder = Path(cfg.paths.data_dir)
    if folder.is_dir() and not layout.data_from_hub(cfg):
        tracker.use_artifact(data_artifact(cfg.identity.name), "dataset", folder)
    if stage == "mid" and str(cfg.train.init_from) == "base" and resume_from is None:
        tracker.use_artifact(base_artifact(cfg), "model", layout.base_dir(cfg), files=layout.CHECKPOINT_REQUIRED)
    if stage == "sft" and str(cfg.train.init_from) == "mid" and resume_from is None:
        mid = layout.checkpoint_dir(cfg, "mid")
        tracker.use_artifact(model_artifact(cfg, "mid"), "model", mid, files=layout.CHECKPOINT_REQUIRED)


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
