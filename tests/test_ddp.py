"""DDP: two CPU processes (gloo) under torch.distributed.run see different rows and end identical."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import torch
from train_fixtures import make_data_folder

SCRIPT = """
import sys, torch, torch.distributed as dist
sys.path.insert(0, {tests!r})
import lanbot.training.packing as packing
seen = []
orig = packing.to_batch
def spy(rows, device):
    seen.append(sorted(tuple(r[0]) for r in rows)); return orig(rows, device)
packing.to_batch = spy
import lanbot.training.run as T
T.to_batch = spy
models = []
import lanbot.training.optim as O
orig_opt = O.build_from_config
def keep(model, train):
    models.append(model); return orig_opt(model, train)
O.build_from_config = keep
from lanbot.core.config import compose_config
cfg = compose_config(sys.argv[1:])
T.train(cfg, __import__("pathlib").Path({root!r}) / "run")
rank = dist.get_rank() if dist.is_initialized() else int(__import__("os").environ["RANK"])
torch.save(seen, {root!r} + f"/seen{{rank}}.pt")
torch.save(models[0].state_dict(), {root!r} + f"/weights{{rank}}.pt")
"""


def test_two_gloo_ranks_differ_in_data_and_agree_in_weights(tmp_path):
    make_data_folder(tmp_path / "data" / "lanbot", per_type=20)
    script = tmp_path / "ddp.py"
    script.write_text(SCRIPT.format(tests=str(Path(__file__).parent), root=str(tmp_path)))
    overrides = [f"paths.root={tmp_path}", "logger=none", "model.n_layer=1", "model.n_embd=32", "model.n_head=2",
                 "model.n_kv_head=2", "model.sequence_len=96", "model.vocab_size=300", "train.max_steps=2",
                 "train.device_batch_size=2", "train.total_batch_tokens=384", "train.eval_every=2",
                 "train.checkpoint_every=10", "train.device=cpu", "train.init_from=scratch",
                 "mix.mid.chat.limit=20"]
    with socket.socket() as sock:  # a free port, so that two test runs on one machine don't collide
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={port}", str(script),
           *overrides]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    seen0, seen1 = torch.load(tmp_path / "seen0.pt"), torch.load(tmp_path / "seen1.pt")
    train0, train1 = seen0[:2], seen1[:2]  # the two optimizer steps (evaluation batches follow)
    assert train0 and all(a != b for a, b in zip(train0, train1, strict=True))
    w0, w1 = torch.load(tmp_path / "weights0.pt"), torch.load(tmp_path / "weights1.pt")
    assert all(torch.equal(w0[k], w1[k]) for k in w0)
    meta = (tmp_path / "checkpoints" / "lanbot" / "default" / "tiny" / "mid" / "meta.json")
    assert meta.exists()
