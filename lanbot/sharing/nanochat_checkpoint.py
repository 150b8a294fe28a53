"""nanochat model checkpoints in and out: `train.init_from=nanochat:<folder>[@step]` and the model export.

nanochat's layout (facts from its checkpoint_manager.py and tokenizer.py): a base dir ($NANOCHAT_BASE_DIR,
else ~/.cache/nanochat) holds `tokenizer/` (tokenizer.pkl, token_bytes.pt) and one folder per stage,
`base_checkpoints/`, `mid_checkpoints/` (2025 only), `chatsft_checkpoints/`, `chatrl_checkpoints/`, each with
a folder per model tag (`d20`, ...) of `model_<step:06d>.pt` (the state dict, maybe with a torch.compile
`_orig_mod.` prefix, bf16 where trained on a GPU), `meta_<step:06d>.json` (`model_config` holds GPTConfig's
fields; also step, val_bpb, user_config, ...) and `optim_<step:06d>_rank<r>.pt`. nanochat loads the latest
step unless told one, and always the base dir's tokenizer.

Which GPT a checkpoint holds is read from its parameters: the 2026 one has `smear_gate` (and value
embeddings, residual and x0 scalars); the late-2025 one has none of them. Rows of the embeddings and the
lm_head beyond `vocab_size` (nanochat pads them to a multiple of 64, since Dec 9 2025) are never looked up and
their logits are cut off, so the import drops them and the export pads them back with zeros. An export is
loaded by the nanochat of its GPT only (lanbot/sharing/nanochat_versions.py says which commits, and why
lanbot's own late-2025 GPT cannot be written for today's nanochat).

    model, tok, meta = import_checkpoint("nanochat:~/.cache/nanochat/base_checkpoints/d20@5000")
    export_checkpoint(lanbot_folder, nanochat_base_dir, "chatsft_checkpoints", "d20")
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import torch

from lanbot.core.errors import LanbotError
from lanbot.core.files import atomic_path, write_text_atomic
from lanbot.core.layout import CheckpointMeta
from lanbot.sharing import nanochat_tokenizer, nanochat_versions
from lanbot.training.model import GPT, GPTConfig
from lanbot.training.tokenizer import Tokenizer

PREFIX = "nanochat:"
# nanochat's load_model(source) folder per source name
STAGE_DIRS = {"base_checkpoints": "base", "mid_checkpoints": "mid", "chatsft_checkpoints": "sft",
              "chatrl_checkpoints": "rl"}
TOKENIZER_DIR = "tokenizer"
ROPE_BASE_2026 = 100000.0
PAD_2026 = nanochat_versions.PAD  # nanochat-2026's GPT pads its vocabulary rows to a multiple of 64
PADDED = ("transformer.wte.weight", "lm_head.weight")  # and value_embeds.<i>.weight


class NanochatCheckpointError(LanbotError, ValueError):
    """A nanochat checkpoint that cannot be imported or written; the message names the file and the fix."""


def model_file(step: int) -> str:
    return f"model_{step:06d}.pt"


def meta_file(step: int) -> str:
    return f"meta_{step:06d}.json"


def parse_source(spec: str) -> tuple[Path, int | None]:
    """`nanochat:<folder>[@step]` -> (folder, step or None for the latest)."""
    body = spec[len(PREFIX):] if spec.startswith(PREFIX) else spec
    step = None
    match = re.fullmatch(r"(.*)@(\d+)", body)
    if match:
        body, step = match.group(1), int(match.group(2))
    if not body:
        raise NanochatCheckpointError(f"train.init_from={spec}: name the checkpoint folder, "
                                      "nanochat:<base dir>/base_checkpoints/<tag>[@step]")
    return Path(body).expanduser(), step


def steps(folder: Path) -> list[int]:
    """The steps that have a model file in `folder`, ascending."""
    found = (re.fullmatch(r"model_(\d+)\.pt", p.name) for p in folder.glob("model_*.pt"))
    return sorted(int(m.group(1)) for m in found if m)


def find_step(folder: Path, step: int | None) -> int:
    """`step`, checked to exist, or the latest (nanochat's own default)."""
    if not folder.is_dir():
        raise NanochatCheckpointError(f"{folder} is not a folder: point train.init_from=nanochat:<folder> at "
                                      "a checkpoint folder such as <base dir>/base_checkpoints/d20")
    found = steps(folder)
    if not found:
        tags = sorted(p.name for p in folder.iterdir() if p.is_dir() and steps(p))
        hint = f"it holds the model tags {', '.join(tags)}: add one to the path" if tags else \
            "nanochat writes model_<step>.pt and meta_<step>.json there"
        raise NanochatCheckpointError(f"{folder} has no model_<step>.pt: {hint}")
    if step is None:
        return found[-1]
    if step not in found:
        raise NanochatCheckpointError(f"{folder} has no step {step}: it has {', '.join(map(str, found))}")
    return step


def find_tokenizer(folder: Path, configured: str | None = None) -> Path:
    """The nanochat tokenizer folder: `configured`, else beside the checkpoint, else nanochat's usual place,
    `<base dir>/tokenizer` two levels up from `<base dir>/<stage>_checkpoints/<tag>`."""
    if configured:
        candidates = [Path(configured).expanduser()]
    else:
        candidates = [folder, folder / TOKENIZER_DIR, folder.parent.parent / TOKENIZER_DIR]
    for directory in candidates:
        if (directory / nanochat_tokenizer.PICKLE_FILE).is_file():
            return directory
    raise NanochatCheckpointError(
        f"no nanochat tokenizer.pkl in {' or '.join(map(str, candidates))}: nanochat keeps it in "
        "<base dir>/tokenizer; point at it with train.nanochat_tokenizer=<that folder>")


def architecture_of(state: dict[str, torch.Tensor], where: Path) -> str:
    """nanochat-2025 or nanochat-2026, from the parameter names; versions in between are refused."""
    if "smear_gate.weight" in state:
        return "nanochat-2026"
    newer = sorted(k for k in state if k.startswith(("resid_lambdas", "x0_lambdas", "value_embeds.")))
    if newer:
        raise NanochatCheckpointError(
            f"{where} is nanochat's GPT from between Jan and Mar 2026 (it has {newer[0]} but no smear_gate): "
            "lanbot imports the late-2025 GPT and the 2026 one (with smear and backout)")
    return "nanochat-2025"


def read_state(path: Path) -> dict[str, torch.Tensor]:
    """A nanochat state dict: tensors only (weights_only), float32, without torch.compile's prefix."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 (torch raises many kinds for a bad file)
        raise NanochatCheckpointError(f"{path}: not a readable model file ({exc.__class__.__name__}: "
                                      f"{str(exc).splitlines()[0][:120]})") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise NanochatCheckpointError(f"{path}: not a state dict of tensors, as nanochat's save_checkpoint writes")
    return {k.removeprefix("_orig_mod."): v.float() if v.is_floating_point() else v for k, v in state.items()}


def read_meta(path: Path) -> dict[str, Any]:
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
        config = meta["model_config"]
        missing = [k for k in ("sequence_len", "vocab_size", "n_layer", "n_head", "n_kv_head", "n_embd")
                   if k not in config]
    except FileNotFoundError:
        raise NanochatCheckpointError(f"{path} is missing: nanochat writes it beside the model file") from None
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as exc:
        raise NanochatCheckpointError(f"{path}: not nanochat's meta JSON with a model_config ({exc})") from None
    if missing:
        raise NanochatCheckpointError(f"{path}: model_config lacks {missing}")
    return meta


def import_checkpoint(spec: str, tokenizer_dir: str | None = None) -> tuple[GPT, Tokenizer, CheckpointMeta]:
    """(model, tokenizer, meta) of `nanochat:<folder>[@step]`; meta is a base record naming the source."""
    folder, step = parse_source(spec)
    step = find_step(folder, step)
    meta = read_meta(folder / meta_file(step))  # the shape first: checked before the weights are read
    try:
        fields = {k: int(meta["model_config"][k]) for k in
                  ("sequence_len", "vocab_size", "n_layer", "n_head", "n_kv_head", "n_embd")}
        GPTConfig(**fields)
    except (TypeError, ValueError, OverflowError) as exc:
        raise NanochatCheckpointError(f"{folder / meta_file(step)}: model_config: {exc}") from None
    state = read_state(folder / model_file(step))
    arch = architecture_of(state, folder / model_file(step))
    if arch == "nanochat-2026":
        fields.update(architecture=arch, rope_base=ROPE_BASE_2026,
                      window_pattern=str(meta["model_config"].get("window_pattern", "L")))
    else:
        fields.update(rope_bf16=True)  # nanochat-2025 rounds its rotary tables to bfloat16
    try:
        config = GPTConfig(**fields)
    except ValueError as exc:
        raise NanochatCheckpointError(f"{folder / meta_file(step)}: {exc}") from None
    vocab = config.vocab_size
    padded = int(state["transformer.wte.weight"].shape[0]) if "transformer.wte.weight" in state else vocab
    for key in [*PADDED, *(k for k in state if k.startswith("value_embeds."))]:
        if key in state and state[key].shape[0] > vocab:
            state[key] = state[key][:vocab].clone()
    model = GPT(config)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        detail = " ".join(str(exc).split())[:300]
        raise NanochatCheckpointError(f"{folder / model_file(step)} does not fit the {arch} GPT of its "
                                      f"meta_{step:06d}.json: {detail}") from None
    model.eval()
    tok_dir = find_tokenizer(folder, tokenizer_dir)
    try:
        tok = nanochat_tokenizer.read_tokenizer(tok_dir)
    except nanochat_tokenizer.NanochatTokenizerError as exc:
        raise NanochatCheckpointError(str(exc)) from None
    if tok.vocab_size != vocab:
        raise NanochatCheckpointError(f"{tok_dir / nanochat_tokenizer.PICKLE_FILE} has {tok.vocab_size} tokens but "
                                      f"the model in {folder} has {vocab}: point train.nanochat_tokenizer at its own")
    name = f"{PREFIX}{folder}@{step}"
    record = {"dir": str(folder), "name": name, "corpus": None, "val_bpb": meta.get("val_bpb"),
              "tokenizer_sha256": None,
              "nanochat": {"architecture": arch, "step": step, "padded_vocab_size": padded,
                           "tokenizer": str(tok_dir), "model_config": meta["model_config"]}}
    return model, tok, CheckpointMeta(stage="base", step=step, finished=True, model_config=vars(config),
                                      tokenizer_from=name, val_bpb=meta.get("val_bpb"), base=record)


def nanochat_config(config: GPTConfig) -> dict[str, Any]:
    """The model_config nanochat's GPTConfig takes for this architecture."""
    out: dict[str, Any] = {k: getattr(config, k) for k in
                           ("sequence_len", "vocab_size", "n_layer", "n_head", "n_kv_head", "n_embd")}
    if config.modern:
        out["window_pattern"] = config.window_pattern
    return out


def nanochat_state(model: GPT, pad_to: int) -> dict[str, torch.Tensor]:
    """The model's state dict with vocabulary rows padded with zeros to a multiple of `pad_to`."""
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    vocab = model.config.vocab_size
    rows = -(-vocab // pad_to) * pad_to
    for key in [*PADDED, *(k for k in state if k.startswith("value_embeds."))]:
        if key in state and rows > vocab:
            pad = torch.zeros(rows - vocab, state[key].shape[1], dtype=state[key].dtype)
            state[key] = torch.cat([state[key], pad])
    return state


def default_padding(model: GPT, meta: CheckpointMeta) -> int:
    """What the newest nanochat that reads it expects: 64 (the 2026 GPT, and the late-2025 one from Dec 9 2025
    to Jan 16 2026); 1 for a model imported unpadded from a nanochat older than that, which reads it back."""
    source = ((meta.base or {}).get("nanochat") or {})
    unpadded = source.get("architecture") == "nanochat-2025" and source.get("padded_vocab_size") == model.config.vocab_size
    return 1 if unpadded and not model.config.modern else PAD_2026


def loaded_by(config: GPTConfig, pad_to: int) -> str:
    """Which nanochat loads an export of this shape with its rows padded to a multiple of `pad_to`; none
    is a settings error."""
    window = nanochat_versions.model_window(config.architecture, config.vocab_size,
                                            -(-config.vocab_size // pad_to) * pad_to)
    if window is None:
        raise NanochatCheckpointError(
            f"export.pad_vocab_to={pad_to}: no nanochat loads {config.vocab_size} tokens padded so; nanochat pads "
            f"to a multiple of {nanochat_versions.PAD} (before 2025-12-09: not at all); leave it null")
    return window


def export_checkpoint(checkpoint: Path, base_dir: Path, stage_dir: str = "chatsft_checkpoints",
                      tag: str | None = None, pad_to: int | None = None, overwrite: bool = False) -> dict[str, Path]:
    """Write a lanbot checkpoint into a nanochat base dir: `<stage_dir>/<tag>/model_<step>.pt` and
    `meta_<step>.json`, and the tokenizer into `<base dir>/tokenizer/` (where nanochat reads it).

    Another tokenizer already in that base dir, or the same step of the same tag, is never replaced
    without `overwrite`: nanochat has one tokenizer per base dir, so a second model with another
    tokenizer needs a base dir of its own."""
    from lanbot.training.checkpoint import load_checkpoint

    if stage_dir not in STAGE_DIRS:
        raise NanochatCheckpointError(f"export.stage_dir={stage_dir!r}: choose {', '.join(STAGE_DIRS)}")
    model, tok, meta = load_checkpoint(checkpoint, "cpu")
    if model.config.modern and stage_dir == "mid_checkpoints":
        raise NanochatCheckpointError(
            "export.stage_dir=mid_checkpoints: the nanochat of this model's 2026 GPT has no mid stage (removed "
            "2026-01-31, 1ddaad1); choose chatsft_checkpoints or base_checkpoints")
    tag = tag or f"d{model.config.n_layer}"
    pad_to = int(pad_to or default_padding(model, meta))
    window = loaded_by(model.config, pad_to)
    step = int(meta.step)
    target = base_dir / stage_dir / tag
    files = {"model": target / model_file(step), "meta": target / meta_file(step),
             "tokenizer": base_dir / TOKENIZER_DIR / nanochat_tokenizer.PICKLE_FILE,
             "token_bytes": base_dir / TOKENIZER_DIR / nanochat_tokenizer.TOKEN_BYTES_FILE}
    if files["model"].exists() and not overwrite:
        raise NanochatCheckpointError(f"{files['model']} exists; add export.overwrite=true to replace it, "
                                      "or choose another export.model_tag")
    state = nanochat_tokenizer.from_lanbot(tok)
    if files["tokenizer"].is_file() and not overwrite:
        try:
            same = nanochat_tokenizer.read_encoding(files["tokenizer"]).mergeable_ranks == state.mergeable_ranks
        except nanochat_tokenizer.NanochatTokenizerError:
            same = False
        if not same:
            raise NanochatCheckpointError(
                f"{files['tokenizer']} is another tokenizer, which nanochat's other models in {base_dir} need: "
                "export into a base dir of its own (export.base_dir=... or NANOCHAT_BASE_DIR), or add "
                "export.overwrite=true to replace it")
    target.mkdir(parents=True, exist_ok=True)
    with atomic_path(files["model"]) as tmp:
        torch.save(nanochat_state(model, pad_to), tmp)
    config = nanochat_config(model.config)
    nanochat_meta = {"step": step, "val_bpb": meta.val_bpb, "model_config": config,
                     "max_seq_len": config["sequence_len"], "user_config": {},
                     "lanbot": {"checkpoint": str(checkpoint), "stage": meta.stage, "identity": meta.identity,
                                "architecture": model.config.architecture, "padded_to": pad_to,
                                "loaded_by": window}}
    write_text_atomic(files["meta"], json.dumps(nanochat_meta, indent=2, default=str))
    nanochat_tokenizer.write_tokenizer(tok, base_dir / TOKENIZER_DIR)
    return files
