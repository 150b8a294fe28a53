"""Base pretraining (stage=base): it learns, it is shared by identities, it resumes after a kill, fineweb reads
parquet shards, and DDP runs it on two gloo processes. Every corpus here is one the test writes."""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from omegaconf import OmegaConf
from safetensors.torch import load_file
from train_fixtures import make_data_folder

from lanbot.core import layout
from lanbot.core.config import compose_config
from lanbot.training import corpus as corpora
from lanbot.training.docpack import pack_documents
from lanbot.training.pretrain import PretrainError
from lanbot.training.run import TrainError, train

os.environ["WANDB_MODE"] = "offline"
NOUNS = ["cat", "dog", "bird", "farmer", "teacher", "river", "city", "garden", "child", "doctor"]
VERBS = ["sees", "likes", "follows", "helps", "paints", "finds"]
ADJS = ["small", "old", "happy", "green", "quiet", "bright"]
SMALL = ["model.n_layer=1", "model.n_embd=64", "model.n_head=2", "model.n_kv_head=2", "model.sequence_len=64",
         "model.vocab_size=320", "train.device_batch_size=8", "train.total_batch_tokens=512", "train.eval_every=10",
         "train.checkpoint_every=10", "train.log_every=5", "train.val_tokens=1024", "train.max_steps=30",
         "train.tokenizer_chars=200000", "train.buffer_docs=64", "logger=none", "train.compile=false"]


def sentence(rng: random.Random) -> str:
    """A sentence of a small grammar: the next word depends on the one before, so a model beats a unigram."""
    return (f"The {rng.choice(ADJS)} {rng.choice(NOUNS)} {rng.choice(VERBS)} the {rng.choice(NOUNS)} "
            f"near the {rng.choice(NOUNS)}.")


def write_texts(folder: Path, docs: int = 400, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    texts = [" ".join(sentence(rng) for _ in range(rng.randint(3, 8))) for _ in range(docs)]
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "texts.jsonl", "w", encoding="utf-8") as f:
        for i, text in enumerate(texts):
            f.write(json.dumps({"id": i, "text": text}) + "\n")
    return texts


def base_cfg(root: Path, corpus_dir: Path, *extra: str):
    return compose_config([f"paths.root={root}", "stage=base", "corpus=local", f"corpus.path={corpus_dir}",
                           "corpus.val_fraction=0.1", *SMALL, *extra])


def test_base_learns_below_the_unigram_on_held_out_text(tmp_path):
    write_texts(tmp_path / "corpus")
    summary = train(base_cfg(tmp_path, tmp_path / "corpus"), tmp_path / "run")
    meta = layout.CheckpointMeta.read(layout.base_dir(base_cfg(tmp_path, tmp_path / "corpus")))
    assert meta["finished"] and meta["stage"] == "base" and meta["tokenizer_from"] == "base/local/tiny"
    assert meta["corpus"]["kind"] == "local" and meta["corpus"]["license"]
    assert summary["val/bpb"] < 0.8 * summary["unigram_bpb"], summary  # 30 steps: about 0.92 vs 1.87
    rows = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert any("tok_per_sec" in r for r in rows)


def test_held_out_documents_never_reach_training(tmp_path):
    texts = write_texts(tmp_path / "corpus", docs=300)
    corpus = compose_config(["corpus=local", f"corpus.path={tmp_path / 'corpus'}", "corpus.val_fraction=0.1"]).corpus
    train_docs, val_docs = list(corpora.documents(corpus, "train")), list(corpora.documents(corpus, "val"))
    assert 10 < len(val_docs) < 60 and len(train_docs) + len(val_docs) == len(texts)
    assert not set(train_docs) & set(val_docs)


def test_packing_is_bos_aligned_and_keeps_every_token():
    docs = [np.arange(1, n + 1) for n in (5, 100, 3, 40, 7, 300, 12, 30)]
    rows = list(pack_documents(docs, 64, bos=0, buffer_size=3))
    assert all(len(r) == 64 and r[0] == 0 for r in rows)
    # tokens of every document appear (cut tails go back behind a fresh BOS); only the short last row is dropped
    assert sum(len(d) for d in docs) - sum(int((r != 0).sum()) for r in rows) < 64


def test_mid_of_two_identities_reuses_the_base_tokenizer(tmp_path):
    write_texts(tmp_path / "corpus")
    for name in ("lanbot", "sage"):
        make_data_folder(tmp_path / "data" / name, per_type=12, name=name)
    mid = [f"paths.root={tmp_path}", "corpus=local", f"corpus.path={tmp_path / 'corpus'}", *SMALL[:6],
           "model.sequence_len=128", "train.max_steps=2", "train.total_batch_tokens=1024", "train.eval_every=2",
           "train.eval_at_end=false", "logger=none"]
    with pytest.raises(TrainError, match=r"python -m lanbot.train stage=base corpus=local model=tiny"):
        train(compose_config([*mid, "identity=sage"]), tmp_path / "r0")
    train(base_cfg(tmp_path, tmp_path / "corpus", "model.sequence_len=128", "train.max_steps=4",
                   "train.total_batch_tokens=1024"), tmp_path / "base")
    base = layout.CheckpointMeta.read(tmp_path / "checkpoints" / "base" / "local" / "tiny")
    shas = []
    for name in ("lanbot", "sage"):
        summary = train(compose_config([*mid, f"identity={name}", "mix.mid.chat.limit=20"]), tmp_path / f"r-{name}")
        meta = layout.CheckpointMeta.read(summary["checkpoint"])
        assert meta["tokenizer_from"] == "base/local/tiny" and meta["base"]["name"] == "base/local/tiny"
        shas.append(meta["tokenizer_sha256"])
    assert shas[0] == shas[1] == base["tokenizer_sha256"]
    sft = train(compose_config([*mid, "identity=sage", "stage=sft", "train.eval_at_end=true", "eval.samples=1",
                                "eval.max_tokens=4", "eval.capability_tokens=2048"]), tmp_path / "r-sft")
    assert layout.CheckpointMeta.read(sft["checkpoint"])["tokenizer_sha256"] == base["tokenizer_sha256"]
    # the identity's cost: held-out corpus bpb of the sft model beside its base's, in eval.json and compare
    scores = json.loads((tmp_path / "r-sft" / "eval.json").read_text())["scores"]
    assert scores["capability/corpus_bpb"] > 0 and scores["capability/base_bpb"] > 0
    assert scores["capability/bpb_delta_vs_base"] == pytest.approx(
        scores["capability/corpus_bpb"] - scores["capability/base_bpb"], abs=1e-3)
    from lanbot.comparison.compare_runs import read_run

    (tmp_path / "r-sft" / ".hydra").mkdir()
    (tmp_path / "r-sft" / ".hydra" / "config.yaml").write_text("stage: sft\n")
    row = read_run(tmp_path / "r-sft").row()
    assert row["capability/bpb_delta_vs_base"] == scores["capability/bpb_delta_vs_base"]
    # the base's figure is its own final val bpb when the rows are the same, else it is computed
    from lanbot.evaluation.capability import corpus_bpb, recorded_base_bpb
    from lanbot.training.checkpoint import load_checkpoint

    base_dir = tmp_path / "checkpoints" / "base" / "local" / "tiny"
    saved = OmegaConf.load(base_dir / "config.yaml")
    tokens = int(saved.train.val_tokens)
    model, tok, _ = load_checkpoint(base_dir, "cpu")
    recorded = recorded_base_bpb(base_dir, saved.corpus, tokens)
    assert recorded == pytest.approx(corpus_bpb(model, tok, saved.corpus, tokens, torch.device("cpu")), abs=1e-4)
    assert recorded_base_bpb(base_dir, saved.corpus, tokens // 2) is None


def test_base_resumes_after_a_kill_and_ends_as_if_never_stopped(tmp_path):
    write_texts(tmp_path / "corpus")
    args = [f"paths.root={tmp_path}", "stage=base", "corpus=local", f"corpus.path={tmp_path / 'corpus'}",
            "corpus.val_fraction=0.1", *SMALL, "train.max_steps=60", "train.checkpoint_every=4",
            "train.eval_every=1000", "train.log_every=1"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "offline"}
    proc = subprocess.Popen([sys.executable, "-m", "lanbot.train", *args, f"hydra.run.dir={tmp_path}/run1"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    out = tmp_path / "checkpoints" / "base" / "local" / "tiny"
    deadline = time.time() + 120
    while time.time() < deadline and (layout.CheckpointMeta.read(out) or {}).get("step", 0) < 8:
        assert proc.poll() is None, "the run ended before it could be killed: " + proc.stderr.read()[-2000:]
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed = layout.CheckpointMeta.read(out)
    assert not killed["finished"] and 8 <= killed["step"] < 60, killed["step"]
    torch.set_num_threads(1)
    summary = train(compose_config(args), tmp_path / "run2")  # the same command again: it resumes
    assert summary["steps"] == 60
    trained = [json.loads(r)["step"] for r in (tmp_path / "run2" / "metrics.jsonl").read_text().splitlines()
               if "train/loss" in r]
    assert trained[0] > killed["step"]  # only the steps after the last checkpoint ran
    # a run never stopped ends with the same weights: the loader, optimizer, schedule and counts all resumed
    train(compose_config([*args, f"paths.root={tmp_path / 'whole'}"]), tmp_path / "run3")
    whole = tmp_path / "whole" / "checkpoints" / "base" / "local" / "tiny"
    resumed, straight = load_file(out / "model.safetensors"), load_file(whole / "model.safetensors")
    assert all(torch.allclose(resumed[k], straight[k], atol=1e-5) for k in straight)
    assert layout.CheckpointMeta.read(out)["unigram_bpb"] == pytest.approx(layout.CheckpointMeta.read(whole)["unigram_bpb"])
    with pytest.raises(PretrainError, match="overwrite=true"):
        train(compose_config(args), tmp_path / "run4")


def write_shards(folder: Path, shards: int = 3, per_shard: int = 80) -> list[str]:
    rng = random.Random(1)
    folder.mkdir(parents=True, exist_ok=True)
    texts = []
    for s in range(shards):
        chunk = [" ".join(sentence(rng) for _ in range(rng.randint(3, 8))) for _ in range(per_shard)]
        texts += chunk
        pq.write_table(pa.table({"text": chunk, "id": list(range(len(chunk)))}), folder / f"shard_{s:05d}.parquet")
    return texts


def test_fineweb_reads_local_parquet_shards_and_holds_out_the_head(tmp_path):
    texts = write_shards(tmp_path / "shards")
    corpus = compose_config(["corpus=fineweb", f"corpus.path={tmp_path / 'shards'}", "corpus.val_docs=20"]).corpus
    val = list(corpora.documents(corpus, "val"))
    assert val == texts[:20]
    assert list(corpora.documents(corpus, "train")) == texts[20:]
    rank0 = list(corpora.documents(corpus, "train", rank=0, world_size=2))
    rank1 = list(corpora.documents(corpus, "train", rank=1, world_size=2))
    assert rank0 and rank1 and not set(rank0) & set(rank1) and sorted(rank0 + rank1) == sorted(texts[20:])
    summary = train(compose_config([f"paths.root={tmp_path}", "stage=base", "corpus=fineweb",
                                    f"corpus.path={tmp_path / 'shards'}", "corpus.val_docs=20", *SMALL,
                                    "train.max_steps=6"]), tmp_path / "run")
    assert summary["steps"] == 6 and (tmp_path / "checkpoints" / "base" / "fineweb" / "tiny" / "meta.json").is_file()
    with pytest.raises(corpora.CorpusError, match=r"nothing: no .txt, .jsonl or .parquet files there"):
        list(corpora.documents(compose_config(["corpus=fineweb", f"corpus.path={tmp_path}/nothing"]).corpus, "val"))


DDP_SCRIPT = """
import sys, torch
import lanbot.training.pretrain as P
seen = []
orig = P.Rows.batch
def spy(self, n, device):
    x, y = orig(self, n, device); seen.append(x.tolist()); return x, y
P.Rows.batch = spy
from lanbot.core.config import compose_config
from omegaconf import OmegaConf
from lanbot.training.run import train
import torch.distributed as dist
train(compose_config(sys.argv[1:]), __import__("pathlib").Path({root!r}) / "run")
rank = dist.get_rank()
torch.save(seen, {root!r} + f"/seen{{rank}}.pt")
"""


def test_base_under_ddp_with_two_gloo_processes(tmp_path):
    write_texts(tmp_path / "corpus")
    script = tmp_path / "ddp.py"
    script.write_text(DDP_SCRIPT.format(root=str(tmp_path)))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    args = [f"paths.root={tmp_path}", "stage=base", "corpus=local", f"corpus.path={tmp_path / 'corpus'}",
            "corpus.val_fraction=0.1", *SMALL, "train.max_steps=4", "train.device=cpu",
            "train.total_batch_tokens=1024"]
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
                           f"--master_port={port}", str(script), *args], capture_output=True, text=True, timeout=180,
                          env={**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "offline"})
    assert done.returncode == 0, done.stderr[-3000:]
    seen0, seen1 = torch.load(tmp_path / "seen0.pt"), torch.load(tmp_path / "seen1.pt")
    assert len(seen0) == len(seen1) == 4 and all(a != b for a, b in zip(seen0, seen1, strict=True))
    meta = layout.CheckpointMeta.read(tmp_path / "checkpoints" / "base" / "local" / "tiny")
    assert meta["finished"] and meta["tokens_trained"] == 4 * 1024 and set(meta["loader"]) == {"0", "1"}
