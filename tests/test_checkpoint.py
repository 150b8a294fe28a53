"""Checkpoints: atomic save, load round trip, a failed save keeps the last good one, find_checkpoint."""

from __future__ import annotations

import pytest
import torch

from lanbot.core import layout
from lanbot.core.config import compose_config
from lanbot.training import checkpoint as ckpt
from lanbot.training.model import GPT, GPTConfig
from lanbot.training.tokenizer import Tokenizer


def small():
    model = GPT(GPTConfig(sequence_len=32, vocab_size=300, n_layer=1, n_head=2, n_kv_head=2, n_embd=32))
    model.init_weights()
    tok = Tokenizer.train(["hello world, who are you? I am LanBot."] * 20, 300)
    return model, tok


def test_round_trip_and_failed_save_keeps_last_good(tmp_path, monkeypatch):
    cfg = compose_config([f"paths.root={tmp_path}"])
    model, tok = small()
    out = layout.checkpoint_dir(cfg)
    ckpt.save_checkpoint(out, model, torch.optim.AdamW(model.parameters()), tok, cfg, {"step": 3, "stage": "mid"})
    loaded, tok2, meta = ckpt.load_checkpoint(out)
    assert meta["step"] == 3 and tok2.encode("hello") == tok.encode("hello")
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), loaded.state_dict().values(), strict=True))

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(Tokenizer, "save", boom)
    with pytest.raises(OSError):
        ckpt.save_checkpoint(out, model, None, tok, cfg, {"step": 4, "stage": "mid"})
    assert layout.CheckpointMeta.read(out)["step"] == 3 and layout.find_checkpoint(cfg, "mid") == out


def test_missing_checkpoint_names_the_train_command(tmp_path):
    cfg = compose_config([f"paths.root={tmp_path}", "identity=sage"])
    with pytest.raises(layout.CheckpointError, match="python -m lanbot.train stage=sft identity=sage"):
        layout.find_checkpoint(cfg)
    with pytest.raises(layout.CheckpointError, match="lanbot.train"):
        ckpt.load_checkpoint(tmp_path / "nothing")


def test_another_checkpoints_tokenizer_is_refused_naming_both(tmp_path):
    cfg = compose_config([f"paths.root={tmp_path}"])
    model, tok = small()
    mine = ckpt.save_checkpoint(layout.checkpoint_dir(cfg, "mid"), model, None, tok, cfg, {"step": 1, "stage": "mid"})
    meta = layout.CheckpointMeta.read(mine)
    assert meta["tokenizer_sha256"] == ckpt.tokenizer_sha256(mine) and meta["tokenizer_from"] == "lanbot/default/tiny/mid"
    # sft inherits the name of the run that trained the tokenizer
    sft = ckpt.save_checkpoint(layout.checkpoint_dir(cfg, "sft"), model, None, tok, cfg,
                               {"step": 1, "stage": "sft", "tokenizer_from": meta["tokenizer_from"]})
    assert layout.CheckpointMeta.read(sft)["tokenizer_from"] == "lanbot/default/tiny/mid"
    other = Tokenizer.train(["a quite different text about other things entirely"] * 20, 280)
    assert other.vocab_size <= model.config.vocab_size  # fits the model: only the digest can tell
    other.save(sft)
    with pytest.raises(ckpt.CheckpointMismatch) as info:
        ckpt.load_checkpoint(sft)
    message = str(info.value)
    assert f"sha256:{ckpt.tokenizer_sha256(sft)[:12]}" in message and f"sha256:{meta['tokenizer_sha256'][:12]}" in message
    assert "lanbot/default/tiny/mid" in message


def test_weights_are_safetensors_and_load_without_pickle(tmp_path, monkeypatch):
    """A new checkpoint holds model.safetensors (no model.pt), its extra tensors as safetensors too, and loads
    with torch.load (the only pickle reader lanbot uses) made to raise and optimizer.pt gone."""
    from safetensors import safe_open

    cfg = compose_config([f"paths.root={tmp_path}"])
    model, tok = small()
    counts = torch.arange(300, dtype=torch.float64)
    out = ckpt.save_checkpoint(layout.checkpoint_dir(cfg), model, torch.optim.AdamW(model.parameters()), tok, cfg,
                               {"step": 2, "stage": "mid"}, extra={layout.UNIGRAM_FILE: {"counts": counts}})
    assert sorted(p.name for p in out.iterdir()) == ["config.yaml", "meta.json", "model.safetensors", "optimizer.pt",
                                                     "tokenizer.json", "unigram.safetensors"]
    with safe_open(str(out / "model.safetensors"), framework="pt") as f:
        assert set(f.keys()) == set(model.state_dict()) and f.metadata() == {"format": "pt"}
    (out / "optimizer.pt").unlink()

    def no_pickle(*args, **kwargs):
        raise AssertionError("torch.load called: loading a checkpoint must not need pickle")

    monkeypatch.setattr(torch, "load", no_pickle)
    loaded, _, meta = ckpt.load_checkpoint(out)
    assert meta.step == 2
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), loaded.state_dict().values(), strict=True))
    assert torch.equal(ckpt.load_unigram_counts(out), counts)


def test_an_older_model_pt_checkpoint_still_loads(tmp_path):
    """A checkpoint folder as lanbot wrote it before: model.pt and unigram.pt (torch.save), read weights_only."""
    cfg = compose_config([f"paths.root={tmp_path}"])
    model, tok = small()
    out = ckpt.save_checkpoint(layout.checkpoint_dir(cfg), model, None, tok, cfg, {"step": 5, "stage": "mid"})
    (out / "model.safetensors").unlink()
    torch.save(model.state_dict(), out / "model.pt")
    torch.save(torch.ones(300, dtype=torch.float64), out / "unigram.pt")
    assert layout.weights_file(out) == out / "model.pt"
    loaded, _, meta = ckpt.load_checkpoint(out)
    assert meta.step == 5
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), loaded.state_dict().values(), strict=True))
    assert torch.equal(ckpt.load_unigram_counts(out), torch.ones(300, dtype=torch.float64))
    (out / "model.pt").unlink()
    with pytest.raises(layout.CheckpointError, match="no checkpoint at"):
        ckpt.load_checkpoint(out)

