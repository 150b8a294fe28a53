"""The seed's workflow end to end through a loopback Hub (tests/hub_server.py).

On a "laptop" root: generate Sage's data, train a tiny mid checkpoint, push both with lanbot.upload. On a
"GPU box" root with an empty Hub cache: `python -m lanbot.train stage=sft data=identity
data.from_hub=... train.init_from=hf://...` (the CLI, wandb offline) downloads through snapshot_download and
trains. Then, the Hub gone and HF_HUB_OFFLINE=1, the same repos come from the cache that snapshot_download
filled, for every data preset and for both consumers (train and evaluate). Last, the token is looked for in
every byte the runs wrote (.hydra, logs, wandb, checkpoints, cards): it must be nowhere.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import huggingface_hub.constants
import pytest
from hub_server import HubServer
from rich.console import Console

from lanbot.core.config import CONFIG_PATH, compose_config
from lanbot.core.conversation import TYPES
from lanbot.generation.generate_data import generate
from lanbot.sharing import hub as lanbot_hub
from lanbot.sharing.hub import data_dir
from lanbot.sharing.hub_upload import upload
from lanbot.training.run import train

TOKEN = "hf_FlowSecretToken0123456789"
REPO = Path(__file__).resolve().parent.parent
TINY = ["model.n_layer=1", "model.n_embd=64", "model.n_head=2", "model.n_kv_head=2", "model.sequence_len=256",
        "model.vocab_size=400", "train.max_steps=2", "train.total_batch_tokens=2048", "train.eval_every=2",
        "train.checkpoint_every=2", "train.log_every=1", "train.eval_at_end=false",
        "mix.mid.chat.limit=20"]
PRESETS = sorted(p.stem for p in (Path(CONFIG_PATH) / "data").glob("*.yaml"))


@pytest.fixture
def laptop(tmp_path, monkeypatch):
    """A generated data folder and a finished tiny mid checkpoint under tmp/laptop; no real login."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "laptop-hf"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_TOKEN_PATH", str(tmp_path / "laptop-hf" / "token"))
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    root = tmp_path / "laptop"
    base = ["identity=sage", f"paths.root={root}", "logger=none"]
    generate(compose_config([*base, "data.count=10"]), root / "gen", console=Console(file=io.StringIO()))
    train(compose_config([*base, *TINY, "train.init_from=scratch"]), root / "mid-run")
    return root


def _meta(folder: Path) -> dict:
    return json.loads((folder / "meta.json").read_text())


def test_upload_then_train_on_a_gpu_box_then_offline(laptop, tmp_path, monkeypatch):
    mid = laptop / "checkpoints" / "sage" / "default" / "tiny" / "mid"
    box = tmp_path / "gpu-box"
    with HubServer(token=TOKEN) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        base = ["identity=sage", f"paths.root={laptop}", "logger=none"]
        upload(compose_config([*base, "upload.repo_id=tester/sage-data"]), laptop / "up-data")
        upload(compose_config([*base, "upload.what=checkpoint", "upload.stage=mid",
                               "upload.repo_id=tester/sage-mid"]), laptop / "up-ckpt")
        pushed = len(hub.requests)

        env = {**os.environ, "HF_HOME": str(box / "hf"), "HF_ENDPOINT": hub.url, "HF_TOKEN": TOKEN,
               "PYTHONPATH": str(REPO),  # this checkout's lanbot, not an installed one
               "WANDB_MODE": "offline", "WANDB_SILENT": "true"}
        proc = subprocess.run(
            [sys.executable, "-m", "lanbot.train", "stage=sft", "identity=sage", f"paths.root={box / 'out'}",
             "data=identity", "data.from_hub=tester/sage-data", "train.init_from=hf://tester/sage-mid",
             "logger=wandb", f"hydra.run.dir={box / 'run'}", *TINY],
            cwd=box.parent, env=env, capture_output=True, text=True, timeout=300,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        downloads = [f"{r.method} {r.path}" for r in hub.requests[pushed:]]
        unsigned = [f"{r.method} {r.path}" for r in hub.requests[pushed:]
                    if "tester/" in r.path and r.headers.get("authorization") != f"Bearer {TOKEN}"]
        assert unsigned == []  # the private repos were read with the token (the hub refuses them otherwise)

    # both repos came through snapshot_download (repo info, then each file), none from the laptop's folders
    assert "GET /api/datasets/tester/sage-data/revision/main" in downloads
    assert "GET /api/models/tester/sage-mid/revision/main" in downloads
    assert any(d.startswith("GET /datasets/tester/sage-data/resolve/") and d.endswith("/data/identity-00000-of-00001.parquet")
               for d in downloads)
    assert any(d.startswith("GET /tester/sage-mid/resolve/") and d.endswith("/model.safetensors") for d in downloads)
    commits = {c["oid"] for repo in hub.repos.values() for c in repo.commits}
    for line in ("[hub] dataset repo tester/sage-data: commit ", "[hub] model repo tester/sage-mid: commit "):
        said = [x for x in proc.stdout.splitlines() if x.startswith(line)]
        assert len(said) == 1 and said[0][len(line):] in commits, proc.stdout  # the run says which commit
    assert not (box / "out" / "data").exists()
    sft = box / "out" / "checkpoints" / "sage" / "default" / "tiny" / "sft"
    assert _meta(sft)["finished"] and _meta(sft)["stage"] == "sft"
    assert _meta(sft)["tokenizer_sha256"] == _meta(mid)["tokenizer_sha256"]  # started from the pushed mid
    assert (box / "run" / "wandb").is_dir() and (box / "run" / ".hydra" / "config.yaml").is_file()

    # the Hub gone, HF_HUB_OFFLINE=1: the cache snapshot_download wrote serves every preset and both consumers
    monkeypatch.setenv("HF_HOME", str(box / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens there
    [snapshot] = (box / "hf" / "hub" / "datasets--tester--sage-data" / "snapshots").iterdir()
    assert sorted(p.name for p in snapshot.rglob("*") if p.is_file()) == sorted(
        [*(f"{kind}-00000-of-00001.parquet" for kind in TYPES), "stats.json", "README.md"])
    # the run trained on the data folder made from the parquet rows: the laptop's folder, byte for byte
    rebuilt = box / "out" / "hub" / "datasets--tester--sage-data" / snapshot.name
    laptop_data = laptop / "data" / "sage"
    assert sorted(p.name for p in rebuilt.iterdir()) == sorted(p.name for p in laptop_data.iterdir())
    for path in laptop_data.iterdir():
        assert (rebuilt / path.name).read_bytes() == path.read_bytes(), path.name
    assert PRESETS == ["agentic", "all", "identity", "reasoning"]
    for preset in PRESETS:
        cfg = compose_config(["identity=sage", f"paths.root={box / 'out'}", f"data={preset}",
                              "data.from_hub=tester/sage-data"])
        assert cfg.data.from_hub == "tester/sage-data", preset
        for folder in (data_dir(cfg), data_dir(cfg, None)):
            assert folder == rebuilt and (folder / "all_conversations.jsonl").is_file(), preset
    # evaluating on the box without data.from_hub: the checkpoint's config says which data it was trained on
    plain = compose_config(["identity=sage", f"paths.root={box / 'out'}"])
    assert data_dir(plain, sft) == rebuilt
    assert data_dir(plain) == box / "out" / "data" / "sage"  # no checkpoint: the local folder
    folder = lanbot_hub.download_checkpoint("hf://tester/sage-mid")
    assert (folder / "model.safetensors").read_bytes() == (mid / "model.safetensors").read_bytes()

    # the token is in no file that any step wrote: configs, .hydra, logs, wandb, checkpoints, records, cache
    written = [p for p in tmp_path.rglob("*") if p.is_file() and not p.is_symlink()]
    assert any(".hydra" in p.parts for p in written) and any("wandb" in p.parts for p in written)
    leaked = [str(p) for p in written if TOKEN.encode() in p.read_bytes()]
    assert leaked == []
    assert TOKEN not in proc.stdout + proc.stderr
