"""Checkpoints: atomic save, load round trip, a failed save keeps the last good one, find_checkpoint."""

from __future__ import annotations

import pytest
import torch

from lanbot import checkpoint as ckpt
from lanbot.config import compose_config
from lanbot.model import GPT, GPTConfig
from lanbot.tokenizer import Tokenizer


def small():
    model = GPT(GPTConfig(sequence_len=32, vocab_size=300, n_layer=1, n_head=2, n_kv_head=2, n_embd=32))
    model.init_weights()
    tok = Tokenizer.train(["hello world, who are you? I am LanBot."] * 20, 300)
    return model, tok


def test_round_trip_and_failed_save_keeps_last_good(tmp_path, monkeypatch):
    cfg = compose_config([f"paths.root={tmp_path}"])
    model, tok = small()
    out = ckpt.checkpoint_dir(cfg)
    ckpt.save_checkpoint(out, model, torch.optim.AdamW(model.parameters()), tok, cfg, {"step": 3, "stage": "mid"})
    loaded, tok2, meta = ckpt.load_checkpoint(out)
    assert meta["step"] == 3 and tok2.encode("hello") == tok.encode("hello")
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), loaded.state_dict().values(), strict=True))

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(Tokenizer, "save", boom)
    with pytest.raises(OSError):
        ckpt.save_checkpoint(out, model, None, tok, cfg, {"step": 4, "stage": "mid"})
    assert ckpt.read_meta(out)["step"] == 3 and ckpt.find_checkpoint(cfg, "mid") == out


def test_missing_checkpoint_names_the_train_command(tmp_path):
    cfg = compose_config([f"paths.root={tmp_path}", "identity=sage"])
    with pytest.raises(ckpt.CheckpointError, match="python -m lanbot.train stage=sft identity=sage"):
        ckpt.find_checkpoint(cfg)
    with pytest.raises(ckpt.CheckpointError, match="lanbot.train"):
        ckpt.load_checkpoint(tmp_path / "nothing")
