"""Training settings checked before any work: every bad `train.*` or `model.*` value named at once.

OmegaConf's structured configs check types at composition, not ranges, and `__post_init__` never runs
there; so a NaN learning rate or `train.max_steps=-3` would compose, train, and save a "finished"
checkpoint. `check_settings(cfg)` runs first in training (before data is read or a checkpoint written)
and raises one SettingsError listing one line per problem, each naming the field, its value and the fix.

    check_settings(cfg)   # raises SettingsError("train.max_steps=-3: must be a positive number of steps ...")
"""

from __future__ import annotations

import math
import shutil
from collections.abc import Callable
from typing import Any

import torch
from omegaconf import DictConfig

from lanbot.core.device import PRECISIONS
from lanbot.core.errors import LanbotError
from lanbot.training.chat_format import SYSTEM_FORMS
from lanbot.training.model import shape_problems
from lanbot.training.tokenizer import SPECIALS

FLOAT32_MAX = 3.4028234663852886e38  # the optimizers compute in float32: a larger rate is an overflow error
MIN_VOCAB = 256 + len(SPECIALS)  # every byte and the special tokens: the smallest tokenizer lanbot trains


class SettingsError(LanbotError, ValueError):
    """Training settings that cannot make a useful run; the message has one line per bad field."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        text = problems[0] if len(problems) == 1 else (
            f"{len(problems)} training settings need fixing:\n" + "\n".join(f"  {p}" for p in problems))
        super().__init__(text)


def _number(value: Any) -> float | None:
    """The value as a float, None if it is not a number (booleans are not numbers here)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _integer(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value


def training_problems(cfg: DictConfig) -> list[str]:
    """One line per bad training or model setting of the composed `cfg` (empty: all good)."""
    t, problems = cfg.train, []

    def need(field: str, ok: Callable[[Any], bool], why: str) -> None:
        value = cfg.train.get(field.removeprefix("train."))
        if not ok(value):
            problems.append(f"{field}={value}: {why}")

    def finite_at_least(low: float, high: float = math.inf) -> Callable[[Any], bool]:
        return lambda v: (n := _number(v)) is not None and math.isfinite(n) and low <= n <= high

    def fraction(v: Any) -> bool:
        return (n := _number(v)) is not None and 0.0 <= n <= 1.0

    def positive_int(v: Any) -> bool:
        return (n := _integer(v)) is not None and n > 0

    for lr in ("matrix_lr", "embedding_lr", "unembedding_lr"):
        need(f"train.{lr}", finite_at_least(0.0, FLOAT32_MAX),
             "must be a finite learning rate >= 0, within float32 (the defaults are 0.003-0.01)")
    need("train.weight_decay", finite_at_least(0.0), "must be a finite number >= 0 (0 = no weight decay)")
    need("train.grad_clip", finite_at_least(0.0),
         "must be a finite gradient-norm limit >= 0 (0 turns clipping off; the default is 1.0)")
    betas = list(t.betas) if t.get("betas") is not None else []
    if len(betas) != 2 or not all((n := _number(b)) is not None and 0.0 <= n < 1.0 for b in betas):
        problems.append(f"train.betas={betas}: must be two numbers in [0, 1), as [0.9, 0.95]")
    for ratio in ("warmup_ratio", "warmdown_ratio", "final_lr_frac"):
        need(f"train.{ratio}", fraction, "must be a fraction from 0 to 1")
    need("train.max_steps", positive_int, "must be a positive number of steps")
    need("train.device_batch_size", positive_int, "must be a positive number of rows per forward pass")
    need("train.total_batch_tokens", positive_int, "must be a positive number of tokens per optimizer step")
    for cadence in ("eval_every", "log_every", "checkpoint_every"):
        need(f"train.{cadence}", positive_int,
             "must be a positive number of steps (set it to train.max_steps or more for once at the end)")
    if t.get("sequence_len") is not None:
        need("train.sequence_len", positive_int, "must be a positive number of tokens, or null for the model's")
    if t.get("precision") not in PRECISIONS:
        problems.append(f"train.precision={t.get('precision')}: must be one of {', '.join(PRECISIONS)} "
                        "(auto: bf16 on cuda and on CPUs with native bf16, float32 elsewhere)")
    if t.get("compile") and str(t.get("device")) in ("cpu", "auto") and not _cpu_compiler_found(t.get("device")):
        problems.append("train.compile=true: torch.compile on CPU builds C++ kernels, and no C++ compiler (g++, "
                        "clang++ or c++) is on PATH: install one, or set train.compile=false")
    if str(cfg.get("stage")) == "base":
        for field in ("val_tokens", "tokenizer_chars", "buffer_docs"):
            need(f"train.{field}", positive_int, "must be a positive number")
    val = t.get("val")
    if val is not None and not ((n := _number(val.get("fraction"))) is not None and 0.0 <= n < 1.0):
        problems.append(f"train.val.fraction={val.get('fraction')}: must be a fraction from 0 to below 1")
    where = f" (fix conf/model/{cfg.model.get('name')}.yaml or the model.* override)"
    if cfg.model.get("pretrained"):  # the shape is the pretrained model's own; only the training length is chosen
        if not positive_int(cfg.model.get("sequence_len")):
            problems.append(f"model.sequence_len={cfg.model.get('sequence_len')}: must be a positive number of "
                            f"tokens (training rows){where}")
    else:
        problems += [p + where for p in model_problems(cfg.model)]
    lora = t.get("lora") or {}
    if lora and not ((n := _integer(lora.get("rank"))) is not None and n >= 0):
        problems.append(f"train.lora.rank={lora.get('rank')}: must be a whole number >= 0 (0 = full fine-tuning; "
                        "LoRA usually 8-64)")
    if lora and _integer(lora.get("rank")) and not ((a := _number(lora.get("alpha"))) is not None and a > 0
                                                    and 0.0 <= (_number(lora.get("dropout")) or 0.0) < 1.0):
        problems.append(f"train.lora.alpha={lora.get('alpha')} and dropout={lora.get('dropout')}: alpha must be "
                        "positive (usually 2 x rank) and dropout from 0 to below 1")
    forms = list(t.get("system_prompts") or [])
    if any(f not in SYSTEM_FORMS for f in forms):
        problems.append(f"train.system_prompts={forms}: each must be one of {', '.join(SYSTEM_FORMS)}")
    seq, longest = t.get("sequence_len") or cfg.model.get("sequence_len"), cfg.model.get("sequence_len")
    B, total = t.get("device_batch_size"), t.get("total_batch_tokens")
    if positive_int(seq) and positive_int(longest) and seq > longest:
        problems.append(f"train.sequence_len={seq}: exceeds the model's sequence_len {longest} (model.sequence_len): "
                        "lower it, or null for the model's")
    elif all(positive_int(v) for v in (seq, B, total)) and total % (B * seq):
        near = B * seq * max(1, round(total / (B * seq)))
        problems.append(f"train.total_batch_tokens={total}: must be a multiple of device_batch_size x sequence_len "
                        f"= {B} x {seq} = {B * seq} (gradient accumulation adds whole rows), e.g. {near}")
    return problems


def _cpu_compiler_found(device: str) -> bool:
    """Inductor's CPU backend compiles C++; on cuda it writes Triton, so only a CPU run needs the compiler."""
    if device == "auto" and torch.cuda.is_available():
        return True
    return any(shutil.which(c) for c in ("g++", "clang++", "c++"))


def model_problems(model: DictConfig) -> list[str]:
    """The model shape's problems (the rules are the model's own, lanbot.training.model.shape_problems) and room
    for the tokenizer."""
    problems = shape_problems(model, prefix="model.")
    vocab = model.get("vocab_size")
    if _integer(vocab) is not None and 0 < vocab < MIN_VOCAB:
        problems.append(f"model.vocab_size={vocab}: must be at least {MIN_VOCAB} (256 bytes + "
                        f"{len(SPECIALS)} special tokens, the smallest tokenizer); the models use 4096 or more")
    return problems


def check_settings(cfg: DictConfig) -> None:
    """Raise SettingsError naming every bad training or model setting; nothing has been read or written yet."""
    problems = training_problems(cfg)
    if problems:
        raise SettingsError(problems)
