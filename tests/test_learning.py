"""The proof that it learns (slow): identity val loss falls far below the no_identity control's."""

from __future__ import annotations

import os

import pytest
from train_fixtures import make_data_folder

from lanbot.core.config import compose_config
from lanbot.training.run import train

os.environ["WANDB_MODE"] = "offline"


@pytest.mark.slow
def test_identity_val_loss_beats_the_control(tmp_path):
    make_data_folder(tmp_path / "data" / "lanbot", per_type=60)
    make_data_folder(tmp_path / "data" / "assistant", per_type=60, name="Assistant")  # the control's data
    common = [f"paths.root={tmp_path}", "logger=none", "model=tiny", "model.n_layer=2", "model.n_embd=128",
              "model.sequence_len=128", "model.vocab_size=1024", "train.max_steps=80",
              "train.total_batch_tokens=1024", "train.eval_every=40", "train.checkpoint_every=1000",
              "train.init_from=scratch", "mix.mid.chat.limit=20"]
    with_identity = train(compose_config([*common, "mix=default"]), tmp_path / "a")
    control = train(compose_config([*common, "mix=no_identity"]), tmp_path / "b")
    assert with_identity["val/loss/identity"] < 0.6 * control["val/loss/identity"]
