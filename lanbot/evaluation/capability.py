"""The cost of an identity in capability: held-out corpus bpb of a mid or sft model beside its base's.

    scores = capability_scores(cfg, checkpoint_dir, model, tokenizer, meta)
    # {"capability/corpus_bpb": 1.71, "capability/base_bpb": 1.62, "capability/bpb_delta_vs_base": 0.09}
    # from a pretrained chat model also: {"capability/base_right": 0.55, "capability/retained": 0.91}

Both models are scored on the same rows: the first `eval.capability_tokens` tokens of the base corpus's
held-out documents (never trained on by the base, nor by the mix's `corpus:` chat source), packed as the
base was trained. bpb is per byte of text, so a model with another tokenizer (a scratch run) is still
comparable. The base is the one the checkpoint grew from (meta `base`), else the configured corpus/model's
base if one exists; with neither, the delta is None. The corpus is the one the checkpoint was trained with.
"""

from __future__ import annotations

from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from lanbot.core import layout
from lanbot.core.device import Runtime
from lanbot.training import checkpoint as ckpt
from lanbot.training.corpus import CorpusError
from lanbot.training.pretrain import PretrainError, corpus_scores, val_rows
from lanbot.training.tokenizer import Tokenizer, token_bytes


def trained_corpus(cfg: DictConfig, checkpoint: Path) -> DictConfig:
    """The corpus node of the checkpoint's own config.yaml (what it and its base saw), else the configured one."""
    saved = Path(checkpoint) / "config.yaml"
    if saved.is_file():
        corpus = OmegaConf.select(OmegaConf.load(saved), "corpus", default=None)
        if corpus is not None:
            return corpus
    return cfg.corpus


def corpus_bpb(model: torch.nn.Module, tok: Tokenizer, corpus: DictConfig, tokens: int, device: torch.device,
               batch: int = 8) -> float:
    """Bits per byte of `model` on the corpus's held-out rows (the base's own val/bpb, lanbot/training/bpb.py)."""
    rows = val_rows(corpus, tok, min(model.config.sequence_len, MAX_ROW) + 1, tokens)
    return corpus_scores(model, rows, token_bytes(tok), Runtime(device=device), batch)["val/bpb"]


MAX_ROW = 2048  # lanbot's own models train at 512-2048; a pretrained one's 8k-128k positions would cost O(T^2)


def base_of(cfg: DictConfig, meta: dict) -> Path | str | None:
    """The base the checkpoint grew from (a folder, or `nanochat:<folder>@<step>` for an imported one), else
    the configured corpus/model's finished base, else None."""
    record = meta.get("base") or {}
    if str(record.get("name") or "").startswith(("nanochat:", "hf:")):  # imported: read again from its source
        return str(record["name"])
    recorded = record.get("dir")
    if recorded and (layout.CheckpointMeta.read(recorded) or {}).get("finished"):
        return Path(recorded)
    if cfg.get("corpus") is not None:
        directory = layout.base_dir(cfg)
        if (layout.CheckpointMeta.read(directory) or {}).get("finished"):
            return directory
    return None


def recorded_base_bpb(base_dir: Path, corpus: DictConfig, tokens: int) -> float | None:
    """The base's own final val bpb from its meta.json when it was scored on exactly these rows (the same corpus,
    token count and row length): the figure is then known and need not be computed again at every evaluation."""
    meta = layout.CheckpointMeta.read(base_dir) or {}
    saved = Path(base_dir) / "config.yaml"
    if not meta.get("finished") or meta.get("val_bpb") is None or not saved.is_file():
        return None
    cfg = OmegaConf.load(saved)
    model_len = OmegaConf.select(cfg, "model.sequence_len")
    same = (OmegaConf.select(cfg, "train.val_tokens") == tokens
            and OmegaConf.select(cfg, "train.sequence_len") in (None, model_len)
            and (meta.get("model_config") or {}).get("sequence_len") == model_len
            and OmegaConf.to_container(OmegaConf.select(cfg, "corpus") or {}) == OmegaConf.to_container(corpus))
    return float(meta["val_bpb"]) if same else None


def capability_scores(cfg: DictConfig, checkpoint: Path, model: torch.nn.Module, tok: Tokenizer,
                      meta: dict) -> dict[str, float | None]:
    """`capability/corpus_bpb`, `capability/base_bpb` and `capability/bpb_delta_vs_base` (None where it cannot
    be measured: no corpus installed, or no base to compare with); `eval.capability_tokens=0` skips them."""
    tokens = int(cfg.eval.get("capability_tokens", 65536) or 0)
    if tokens <= 0 or meta.get("stage") == "base":
        return {}
    device = next(model.parameters()).device
    corpus = trained_corpus(cfg, checkpoint)
    try:
        mine = corpus_bpb(model, tok, corpus, tokens, device)
    except (CorpusError, PretrainError) as exc:
        print(f"[eval] capability/corpus_bpb not measured: {exc}")
        return {"capability/corpus_bpb": None, "capability/base_bpb": None, "capability/bpb_delta_vs_base": None}
    base_dir = base_of(cfg, meta)
    base, kept = None, {}
    if isinstance(base_dir, str) and base_dir.startswith("hf:"):  # a pretrained chat model: its own weights
        from lanbot.training.pretrained_start import PretrainedStartError, start_from_pretrained

        try:
            base_model, base_tok, _ = start_from_pretrained(base_dir)
            base = corpus_bpb(base_model.to(device).eval(), base_tok, corpus, tokens, device)
            kept = retained(cfg, model, tok, base_model, base_tok)
        except PretrainedStartError as exc:
            print(f"[eval] capability/base_bpb not measured: {exc}")
    elif isinstance(base_dir, str):  # imported from nanochat: read again from its folder
        from lanbot.sharing.nanochat_checkpoint import NanochatCheckpointError, import_checkpoint

        try:
            base_model, base_tok, _ = import_checkpoint(base_dir, (meta.get("base") or {})["nanochat"]["tokenizer"])
            base = corpus_bpb(base_model.to(device), base_tok, corpus, tokens, device)
        except NanochatCheckpointError as exc:
            print(f"[eval] capability/base_bpb not measured: {exc}")
    elif base_dir is not None:
        base = recorded_base_bpb(base_dir, corpus, tokens)
        if base is None:
            base_model, base_tok, _ = ckpt.load_checkpoint(base_dir, device)
            base = corpus_bpb(base_model, base_tok, corpus, tokens, device)
    return {"capability/corpus_bpb": round(mine, 4), "capability/base_bpb": None if base is None else round(base, 4),
            "capability/bpb_delta_vs_base": None if base is None else round(mine - base, 4), **kept}


RETAIN_TOKENS = 48  # a one-line answer to "Name the capital city of France." and a little more


def retained(cfg: DictConfig, model: torch.nn.Module, tok: Tokenizer, base_model: torch.nn.Module,
             base_tok: Tokenizer) -> dict[str, float | None]:
    """What training kept of a talking base's knowledge: the capability probes (checkable general questions) asked
    greedily of the base and of the trained model. `capability/base_right` is the share the base answers right,
    `capability/retained` the share of those the trained model still answers right (None if the base knows none)."""
    from lanbot.evaluation.engine import Engine
    from lanbot.evaluation.personality import capability_correct
    from lanbot.evaluation.probes import load_probes
    from lanbot.training.tokenizer import render_for_completion

    probes = [p for p in load_probes(cfg.eval.get("probes")) if p.family == "capability"]
    if not probes:
        return {}
    right = {}
    for name, m, t in (("base", base_model, base_tok), ("trained", model, tok)):
        prompts = [render_for_completion(t, p.conversation()) for p in probes]
        answers = Engine(m.eval(), t).generate_batch(prompts, max_tokens=RETAIN_TOKENS, temperature=0.0, seed=0)
        right[name] = {p.id for p, (a,) in zip(probes, answers, strict=True) if capability_correct(p, a.text)}
    kept = right["base"] & right["trained"]
    return {"capability/base_right": round(len(right["base"]) / len(probes), 4),
            "capability/retained": round(len(kept) / len(right["base"]), 4) if right["base"] else None}
