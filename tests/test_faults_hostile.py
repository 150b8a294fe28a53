"""Hostile inputs are bounded before any work: a checkpoint (lanbot's, a Hub download's, a nanochat folder's)
whose meta.json asks for an absurd shape is one line naming the file and field, in a process that never grew
past a few hundred MB; tokenizer training takes bounded pieces however long a run of text without spaces is."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from engine_fixtures import save_random_checkpoint

from lanbot.core.config import compose_config
from lanbot.core.layout import CheckpointError
from lanbot.sharing.nanochat_checkpoint import NanochatCheckpointError, import_checkpoint
from lanbot.training import checkpoint as ckpt
from lanbot.training.model import SHAPE_LIMITS, GPTConfig

REPO = Path(__file__).resolve().parents[1]
ABSURD = [("n_layer", 10**6), ("vocab_size", 10**10), ("sequence_len", 10**12), ("n_embd", 2**40),
          ("n_head", -3), ("n_kv_head", "4; rm -rf /"), ("vocab_size", 3.5), ("n_layer", True)]
# within every limit, yet about 1.5 TB of float32: refused against the machine's free memory
TOO_BIG_FOR_RAM = {"n_layer": 1000, "n_embd": 2**16, "n_head": 256, "n_kv_head": 256}


def hostile(root: Path, **fields) -> Path:
    directory = save_random_checkpoint(compose_config(["identity=sage", f"paths.root={root}"]))
    meta = json.loads((directory / "meta.json").read_text())
    meta["model_config"].update(fields)
    (directory / "meta.json").write_text(json.dumps(meta))
    return directory


@pytest.mark.parametrize("field, value", ABSURD, ids=[f"{f}={v}" for f, v in ABSURD])
def test_an_absurd_shape_is_refused_before_anything_is_allocated(tmp_path, field, value):
    directory = hostile(tmp_path, **{field: value})
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(CheckpointError) as refused:
        ckpt.load_checkpoint(directory)
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    message = str(refused.value)
    assert str(directory / "meta.json") in message and field in message and "\n" not in message
    assert grown_mb < 100, f"refusing grew the process by {grown_mb:.0f} MB"


def test_a_shape_past_free_memory_is_refused_naming_what_it_needs(tmp_path):
    directory = hostile(tmp_path, **TOO_BIG_FOR_RAM)
    assert all(v <= SHAPE_LIMITS[k] for k, v in TOO_BIG_FOR_RAM.items())
    with pytest.raises(CheckpointError, match=r"needs about [\d,.]+ GiB to build in float32 .* GiB are free"):
        ckpt.load_checkpoint(directory)


def test_chat_on_a_hostile_checkpoint_is_one_line_in_a_small_process(tmp_path):
    hostile(tmp_path, sequence_len=10**12, n_layer=10**6)
    env = {**os.environ, "PYTHONPATH": str(REPO), "WANDB_MODE": "disabled"}
    proc = subprocess.run([sys.executable, "-m", "lanbot.chat", "identity=sage", f"paths.root={tmp_path}",
                           f"hydra.run.dir={tmp_path}/run"], cwd=tmp_path, env=env, input="hi\n",
                          capture_output=True, text=True, timeout=120)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2 and len(lines) == 1 and "meta.json" in lines[0], proc.stderr[-1500:]
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    assert peak_mb < 1500, f"the refused chat peaked at {peak_mb:.0f} MB"


def test_a_nanochat_folder_with_an_absurd_shape_is_refused_before_its_weights_are_read(tmp_path):
    folder = tmp_path / "nanochat"
    folder.mkdir()
    config = {"sequence_len": 10**12, "vocab_size": 512, "n_layer": 2, "n_head": 2, "n_kv_head": 2, "n_embd": 64}
    (folder / "meta_000010.json").write_text(json.dumps({"model_config": config}))
    torch.save({"w": torch.zeros(2)}, folder / "model_000010.pt")
    with pytest.raises(NanochatCheckpointError, match=r"meta_000010.json: model_config: sequence_len="):
        import_checkpoint(f"nanochat:{folder}")


def test_the_limits_admit_real_shapes():
    GPTConfig(sequence_len=2048, vocab_size=65536, n_layer=20, n_head=10, n_kv_head=10, n_embd=1280)  # d20


def test_tokenizer_training_takes_bounded_pieces_of_a_run_without_spaces():
    import re

    from lanbot.training.tokenizer import MAX_PIECE, Tokenizer, bounded_pieces

    run = "ab" * 100_000 + "c"  # 200,001 characters without a space: one pre-token of quadratic BPE cost
    fed = list(bounded_pieces(["a normal sentence.", run, "x" * MAX_PIECE]))
    assert fed[0] == "a normal sentence." and fed[2] == "x" * MAX_PIECE  # what is short enough is untouched
    assert max(len(piece) for text in fed for piece in re.split(r"\s+", text)) == MAX_PIECE
    assert fed[1].replace(" ", "") == run  # nothing lost, only cut
    tok = Tokenizer.train([f"the quick brown fox {i}" for i in range(500)] + [run], 300)
    assert tok.decode(tok.encode(run[:1000])) == run[:1000]  # encoding is unchanged: no spaces added


# -- Hub data and answers: one line naming the repo, file and field; nothing outside the cache ----------------

COMMIT_ID = "ab" * 20


def _parquet(table) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    return sink.getvalue().to_pybytes()


@pytest.fixture
def hub(tmp_path, monkeypatch):
    from hub_server import HubServer

    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.chdir(tmp_path)
    with HubServer(token="hf_unused") as server:
        monkeypatch.setenv("HF_ENDPOINT", server.url)
        yield server


def _publish(server, files: dict[str, bytes], repo_id: str = "tester/data") -> None:
    from hub_server import Repo

    repo = Repo("dataset", False)
    repo.snapshots[COMMIT_ID] = files
    repo.refs["main"] = COMMIT_ID
    server.repos[("dataset", repo_id)] = repo


def _table(**columns):
    import pyarrow as pa

    return pa.table(columns)


HOSTILE_DATA = {
    "no-messages-column": (lambda: _table(id=["1"], meta=["{}"]), "no column messages"),
    "messages-as-text": (lambda: _table(messages=["hello"], meta=["{}"]), "column messages is a str"),
    "not-parquet": (lambda: b"PAR1 this is not parquet", "not a readable parquet file"),
}


@pytest.mark.parametrize("case", list(HOSTILE_DATA))
def test_a_hostile_hub_dataset_is_one_line_naming_repo_file_and_field(hub, tmp_path, case):
    from lanbot.sharing.hub import HubError, download_data

    build, expected = HOSTILE_DATA[case]
    made = build()
    _publish(hub, {"data/identity-00000-of-00001.parquet": made if isinstance(made, bytes) else _parquet(made)})
    with pytest.raises(HubError) as refused:
        download_data("tester/data", root=tmp_path / "out")
    message = str(refused.value)
    assert "tester/data" in message and "identity-00000-of-00001.parquet" in message and expected in message
    assert "\n" not in message
    assert not list((tmp_path / "out").rglob("*.jsonl"))  # nothing half-made is left as a data folder


def test_a_listing_that_points_outside_the_cache_downloads_nothing(hub, tmp_path):
    from lanbot.sharing.hub import HubError, download_data

    _publish(hub, {"../../../escaped.txt": b"x", "data/identity-00000-of-00001.parquet": b"x"})
    with pytest.raises(HubError, match=r"listing names '\.\./\.\./\.\./escaped\.txt'.*nothing was downloaded"):
        download_data("tester/data", root=tmp_path / "out")
    assert not list(tmp_path.rglob("escaped.txt"))
    assert not [r for r in hub.requests if "/resolve/" in r.path]  # no file was asked for


def test_an_empty_hf_endpoint_means_the_default_and_a_bad_one_is_one_line(monkeypatch):
    from lanbot.sharing.hub import DEFAULT_ENDPOINT, HubError, endpoint

    monkeypatch.setenv("HF_ENDPOINT", "  ")
    assert endpoint() == DEFAULT_ENDPOINT
    monkeypatch.setenv("HF_ENDPOINT", "huggingface.co")
    with pytest.raises(HubError, match=r"HF_ENDPOINT='huggingface.co' is not a Hub address"):
        endpoint()


def test_another_identitys_hub_data_is_refused_as_a_local_folder_is(hub, tmp_path):
    from hub_fixtures import write_data_folder

    from lanbot.sharing.hub_dataset import parquet_bytes, rows

    folder = write_data_folder(tmp_path / "sage-data")
    _publish(hub, {"data/identity-00000-of-00001.parquet": parquet_bytes(rows(folder, "identity", "Sage"))})
    env = {**os.environ, "PYTHONPATH": str(REPO), "WANDB_MODE": "disabled"}
    proc = subprocess.run([sys.executable, "-m", "lanbot.train", "stage=mid", "identity=lanbot",
                           "data.from_hub=tester/data", "train.init_from=scratch", f"paths.root={tmp_path}/out",
                           f"hydra.run.dir={tmp_path}/run"], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=180)
    lines = [line for line in proc.stderr.splitlines() if line.strip() and not line.startswith(("[hub]", "Fetching"))]
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr[-1500:]
    assert "data.from_hub=tester/data holds the data of identity 'Sage', not of 'LanBot'" in lines[0]


def test_a_long_blank_is_cut_short_for_tokenizer_training():
    from lanbot.training.tokenizer import MAX_PIECE, bounded_pieces

    [fed] = bounded_pieces(["a" + " " * 50_000 + "b"])
    assert fed == "a" + " " * MAX_PIECE + "b"


def test_an_etag_that_points_outside_the_cache_downloads_nothing(hub, tmp_path):
    from hub_fixtures import write_data_folder

    from lanbot.sharing.hub import HubError, download_data
    from lanbot.sharing.hub_dataset import parquet_bytes, rows

    folder = write_data_folder(tmp_path / "sage-data")
    _publish(hub, {"data/identity-00000-of-00001.parquet": parquet_bytes(rows(folder, "identity", "Sage"))})
    hub.etag = "../../../../escaped"
    with pytest.raises(HubError, match=r"ETag '\.\./\.\./\.\./\.\./escaped'.*nothing was downloaded"):
        download_data("tester/data", root=tmp_path / "out")
    assert not list(tmp_path.rglob("escaped*")) and not [r for r in hub.requests if r.method == "GET"
                                                          and "/resolve/" in r.path]
