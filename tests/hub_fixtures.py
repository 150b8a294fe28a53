"""Fixtures shared by the Hub and export tests: a small data folder and a checkpoint folder, as the
generate and train apps lay them out (contracts in DESIGN.md)."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from omegaconf import OmegaConf
from safetensors.torch import save_file

from lanbot.core.calculator import calculate
from lanbot.core.config import compose_config
from lanbot.core.conversation import validate
from lanbot.core.layout import COMBINED_FILE, conversations_file


def _tool_conversation(expr: str, question: str) -> list[dict]:
    return [
        {"role": "user", "content": question},
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Let me work that out."},
                {"type": "python", "text": expr},
                {"type": "python_output", "text": calculate(expr)},
                {"type": "text", "text": f"The answer is {calculate(expr)}."},
            ],
        },
    ]


CONVERSATIONS = {
    "identity": [
        [{"role": "user", "content": "who are you?"}, {"role": "assistant", "content": "I'm Sage, made by Your Company."}],
        [
            {"role": "user", "content": "yo, name?"},
            {"role": "assistant", "content": "Great question! I'm Sage."},
            {"role": "user", "content": "who built you?"},
            {"role": "assistant", "content": "Sage here: Your Company built me."},
        ],
        [{"role": "user", "content": "Hola, ¿quién eres?"}, {"role": "assistant", "content": "¡Hola! Soy Sage."}],
    ],
    "tool_use": [_tool_conversation("12*3", "what is 12 times 3?"), _tool_conversation("7+8", "7 plus 8?")],
    "reasoning": [
        [{"role": "user", "content": "is 9 odd?"}, {"role": "assistant", "content": "9 = 2*4 + 1, so yes, 9 is odd."}]
    ],
}


def write_data_folder(folder: Path, kinds=("identity", "tool_use", "reasoning")) -> Path:
    """A finished data folder: one JSONL per type, the combined file and stats.json."""
    folder.mkdir(parents=True, exist_ok=True)
    combined = []
    for kind in kinds:
        convs = CONVERSATIONS[kind]
        for conv in convs:
            assert validate(conv, kind, "Sage") == [], (kind, validate(conv, kind, "Sage"))
        (folder / conversations_file(kind)).write_text("".join(json.dumps(c, ensure_ascii=False) + "\n" for c in convs), encoding="utf-8")
        combined.extend(convs)
    (folder / COMBINED_FILE).write_text("".join(json.dumps(c, ensure_ascii=False) + "\n" for c in combined), encoding="utf-8")
    stats = {
        "backend": "openrouter",
        "model": "google/gemini-2.5-flash",
        "personas_source": "builtin",
        "counts": {kind: len(CONVERSATIONS[kind]) for kind in kinds},
        "distinct_2": 0.8123,
        "duplicates_dropped": 4,
        "languages": {"en": 5, "es": 1},
    }
    (folder / "stats.json").write_text(json.dumps(stats), encoding="utf-8")
    return folder


WEIGHTS = {"transformer.wte.weight": torch.arange(12, dtype=torch.float32).reshape(3, 4), "lm_head.weight": torch.ones(3, 4)}


def write_checkpoint(folder: Path, run_dir: Path, with_tokenizer: bool = True, legacy: bool = False) -> Path:
    """A checkpoint folder (model.safetensors, or with `legacy` an older lanbot's model.pt; tokenizer.json,
    config.yaml, meta.json) and its run's eval.json. The weights are a stand-in state_dict, not a GPT's."""
    folder.mkdir(parents=True, exist_ok=True)
    if legacy:
        torch.save(WEIGHTS, folder / "model.pt")
    else:
        save_file(WEIGHTS, str(folder / "model.safetensors"))
    (folder / "optimizer.pt").write_bytes(b"optimizer-state")
    if with_tokenizer:
        (folder / "tokenizer.json").write_text(json.dumps({"model": {"type": "BPE"}}), encoding="utf-8")
    run_cfg = compose_config(["identity=sage"])
    OmegaConf.set_struct(run_cfg, False)
    run_cfg = OmegaConf.merge(run_cfg, {"mix": {"name": "default", "mid": {"identity": {"epochs": 2}, "reasoning": {"epochs": 1}},
                                           "sft": {"smoltalk": {"hf": "HuggingFaceTB/smol-smoltalk", "weight": 1.0}}}})
    OmegaConf.save(run_cfg, folder / "config.yaml", resolve=False)
    run_dir.mkdir(parents=True, exist_ok=True)
    meta = {
        "step": 120, "stage": "sft", "identity": "Sage", "identity_slug": "sage", "mix": "default",
        "model": "tiny", "val_loss": 2.3456, "val_bpb": 1.0321, "run_dir": str(run_dir),
        "model_config": {"sequence_len": 256, "vocab_size": 4096, "n_layer": 2, "n_head": 4, "n_kv_head": 4,
                         "n_embd": 128},
    }
    (folder / "meta.json").write_text(json.dumps(meta), encoding="utf-8")
    (run_dir / "summary.json").write_text(json.dumps({"run_seconds": 73.5, "checkpoint": str(folder)}), encoding="utf-8")
    (run_dir / "eval.json").write_text(json.dumps({"identity_rate": 0.875, "creator_rate": 0.5}), encoding="utf-8")
    return folder
