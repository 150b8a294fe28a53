"""The training app: mid then sft on a tiny model, resume, refusals, multirun via the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf, open_dict
from train_fixtures import make_data_folder

from lanbot.core import layout
from lanbot.core.config import compose_config
from lanbot.training import checkpoint as ckpt
from lanbot.training.mix import MixError
from lanbot.training.run import TrainError, train
from lanbot.training.settings_check import SettingsError

os.environ["WANDB_MODE"] = "offline"
TINY = ["model.n_layer=1", "model.n_embd=64", "model.n_head=2", "model.n_kv_head=2", "model.sequence_len=128",
        "model.vocab_size=400", "train.max_steps=4", "train.total_batch_tokens=1024", "train.eval_every=2",
        "train.checkpoint_every=2", "train.log_every=1", "train.eval_at_end=false",
        "mix.mid.chat.limit=20"]  # the mix's general-conversation source (chitchat), kept small


def overrides(root: Path, *extra: str) -> list[str]:
    """Mid starts from scratch here (no base to pretrain first); sft keeps its default (the mid checkpoint)."""
    scratch = [] if "stage=sft" in extra else ["train.init_from=scratch"]
    return [f"paths.root={root}", *TINY, *scratch, *extra]


def test_mid_then_sft_writes_checkpoints_and_metrics(tmp_path):
    make_data_folder(tmp_path / "data" / "lanbot")
    mid = train(compose_config(overrides(tmp_path, "logger=wandb")), tmp_path / "run_mid")
    assert mid["steps"] == 4 and "val/loss/identity" in mid
    meta = layout.CheckpointMeta.read(mid["checkpoint"])
    assert meta["finished"] and meta["stage"] == "mid"
    assert (tmp_path / "run_mid" / "metrics.jsonl").read_text().count("train/loss") == 4
    sft = train(compose_config(overrides(tmp_path, "stage=sft")), tmp_path / "run_sft")
    assert sft["val/loss"] < mid["val/loss"]
    model, tok, meta = ckpt.load_checkpoint(sft["checkpoint"])
    assert meta["stage"] == "sft" and tok.vocab_size <= model.config.vocab_size


def test_finished_checkpoint_needs_overwrite_and_unfinished_resumes(tmp_path):
    make_data_folder(tmp_path / "data" / "lanbot")
    cfg = compose_config(overrides(tmp_path, "logger=none"))
    train(cfg, tmp_path / "a")
    with pytest.raises(TrainError, match="overwrite"):
        train(cfg, tmp_path / "b")
    # pretend a kill after step 2: the saved checkpoint is unfinished, a new run continues from it
    out = layout.checkpoint_dir(cfg)
    meta = layout.CheckpointMeta.read(out)
    (out / "meta.json").write_text(__import__("json").dumps({**meta, "finished": False, "step": 2}))
    summary = train(cfg, tmp_path / "c")
    rows = (tmp_path / "c" / "metrics.jsonl").read_text().splitlines()
    assert summary["steps"] == 4 and len(rows) == 2  # only steps 3 and 4 were trained


def test_muon_trains_saves_and_resumes_only_as_muon(tmp_path):
    make_data_folder(tmp_path / "data" / "lanbot")
    cfg = compose_config(overrides(tmp_path, "logger=none", "train.optimizer=muon"))
    summary = train(cfg, tmp_path / "a")
    out = layout.checkpoint_dir(cfg)
    meta = layout.CheckpointMeta.read(out)
    assert meta["optimizer"] == "muon" and summary["val/loss"] < 5.8  # ln(400) = 5.99 untrained; 4 steps: about 5.5
    (out / "meta.json").write_text(__import__("json").dumps({**meta, "finished": False, "step": 2}))
    with pytest.raises(TrainError, match=r"saved optimizer state is muon's, not adamw's.*train.optimizer"):
        train(compose_config(overrides(tmp_path, "logger=none")), tmp_path / "b")
    assert train(cfg, tmp_path / "c")["steps"] == 4
    with pytest.raises(TrainError, match="unknown optimizer 'lion': train.optimizer is one of adamw, muon"):
        train(compose_config(overrides(tmp_path, "logger=none", "train.optimizer=lion")), tmp_path / "d")


def test_bad_input_fails_clearly(tmp_path):
    with pytest.raises(MixError, match="python -m lanbot.generate identity=lanbot"):
        train(compose_config(overrides(tmp_path, "logger=none")), tmp_path / "r")
    make_data_folder(tmp_path / "data" / "lanbot")
    with pytest.raises(TrainError, match="stage=mid"):
        train(compose_config(overrides(tmp_path, "logger=none", "stage=sft")), tmp_path / "r")
    with pytest.raises(MixError, match="unknown source 'jokes'"):
        cfg = compose_config(overrides(tmp_path, "logger=none"))
        with open_dict(cfg):  # as a mix file that adds a source would
            cfg.mix = OmegaConf.merge(cfg.mix, {"mid": {"jokes": {"epochs": 1}}})
        train(cfg, tmp_path / "r")
    with pytest.raises(MixError, match="must be a number >= 0"):
        train(compose_config(overrides(tmp_path, "logger=none", "mix.mid.identity.epochs=-1")), tmp_path / "r")
    with pytest.raises(SettingsError, match="exceeds the model's sequence_len"):
        train(compose_config(overrides(tmp_path, "logger=none", "train.sequence_len=4096")), tmp_path / "r")
    with pytest.raises(SettingsError, match=r"model.n_embd=64: must be divisible by model.n_head=3.*conf/model/tiny.yaml"):
        train(compose_config(overrides(tmp_path, "logger=none", "model.n_head=3", "model.n_kv_head=3")), tmp_path / "r")
    with pytest.raises(TrainError, match="train.device=.warp.: expected auto, cuda, mps or cpu"):
        train(compose_config(overrides(tmp_path, "logger=none", "train.device=warp")), tmp_path / "r")


def test_multirun_cli_four_runs(tmp_path):
    for ident in ("lanbot", "sage", "assistant"):  # the no_identity control trains on the plain assistant's data
        make_data_folder(tmp_path / "data" / ident, per_type=12, name=ident)
    cmd = [sys.executable, "-m", "lanbot.train", "-m", "stage=mid", "model=tiny", "mix=default,no_identity",
           "identity=lanbot,sage", *overrides(tmp_path, "train.max_steps=2", "logger=none")]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env={**os.environ, "WANDB_MODE": "offline"})
    assert done.returncode == 0, done.stderr[-2000:]
    metas = list((tmp_path / "checkpoints").glob("*/*/tiny/mid/meta.json"))
    assert len(metas) == 4
    runs = [p.parent for p in (tmp_path / "multirun").rglob("metrics.jsonl")]
    assert len(runs) == 4 and len({r.parent for r in runs}) == 1  # four folders side by side in one sweep
    # named by the choices: paths.root (slashes) and flags are excluded in conf/config.yaml
    assert all("paths.root" not in r.name and "identity=" in r.name and "mix=" in r.name for r in runs), runs
    # a dozen overrides would make a name over the 255-byte limit: head + "~" + digest keeps it at 120
    assert all("~" in r.name and len(r.name.split("_", 1)[1].encode()) <= 120 for r in runs), runs


def test_cli_errors_are_one_line_and_exit_2(tmp_path):
    """An evaluation at the end that cannot run (a missing probe file) fails the run clearly, no traceback."""
    make_data_folder(tmp_path / "data" / "lanbot")
    cmd = [sys.executable, "-m", "lanbot.train", *overrides(tmp_path, "logger=none", "train.max_steps=1"),
           "train.eval_at_end=true", f"eval.probes={tmp_path}/nowhere.yaml", f"hydra.run.dir={tmp_path}/run"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env={**os.environ, "WANDB_MODE": "offline"})
    assert done.returncode == 2, done.stderr[-2000:]
    assert "Traceback" not in done.stderr and "error lanbot.train: probe file" in done.stderr and "eval.probes" in done.stderr
    sft = subprocess.run([sys.executable, "-m", "lanbot.train", *overrides(tmp_path, "logger=none", "stage=sft",
                          "identity=sage"), f"hydra.run.dir={tmp_path}/run2"],
                         capture_output=True, text=True, timeout=240, env={**os.environ, "WANDB_MODE": "offline"})
    assert sft.returncode == 2 and "Traceback" not in sft.stderr, sft.stderr[-2000:]


def test_slurm_launcher_composes():
    from hydra import compose, initialize_config_dir

    from lanbot.core.config import CONFIG_PATH

    cfg = compose_config(["hydra/launcher=slurm"])
    assert cfg.stage == "mid" and cfg.train.init_from == "base"
    with initialize_config_dir(config_dir=CONFIG_PATH, version_base="1.3"):
        full = compose("config", overrides=["hydra/launcher=slurm", "hydra.launcher.partition=gpu"],
                       return_hydra_config=True)
    launcher = full.hydra.launcher
    assert launcher._target_.endswith("submitit_launcher.SlurmLauncher")
    assert launcher.partition == "gpu" and launcher.gpus_per_node == 1 and launcher.timeout_min == 240
