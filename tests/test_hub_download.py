"""lanbot.sharing.hub downloads, offline (HF_HUB_OFFLINE=1), from a Hub cache the test lays out as huggingface_hub
does: <cache>/<type>s--<ns>--<name>/blobs/<hash>, snapshots/<commit>/<file> -> ../../blobs/<hash>,
refs/<branch-or-tag> holding the commit."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
from hub_fixtures import CONVERSATIONS, write_checkpoint, write_data_folder
from hub_server import HubServer

from lanbot.core.config import compose_config
from lanbot.core.conversation import from_messages
from lanbot.generation.datafolder import DataFolder
from lanbot.sharing.hub import HubError, download_checkpoint, download_data, parse_hf_uri
from lanbot.sharing.hub_upload import plan_upload

COMMIT = "0123456789abcdef0123456789abcdef01234567"
OTHER = "fedcba9876543210fedcba9876543210fedcba98"


def fill_cache(cache: Path, repo_type: str, repo_id: str, source: Path, commit: str, refs=("main",)) -> Path:
    """Put every file of `source` into the cache as the snapshot `commit`, with `refs` pointing at it."""
    storage = cache / f"{repo_type}s--{repo_id.replace('/', '--')}"
    snapshot = storage / "snapshots" / commit
    for path in sorted(p for p in source.rglob("*") if p.is_file()):
        data = path.read_bytes()
        blob = storage / "blobs" / hashlib.sha256(data).hexdigest()
        blob.parent.mkdir(parents=True, exist_ok=True)
        blob.write_bytes(data)
        link = snapshot / path.relative_to(source)
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
    for ref in refs:
        (storage / "refs").mkdir(parents=True, exist_ok=True)
        (storage / "refs" / ref).write_text(commit)
    return snapshot


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """HF_HUB_OFFLINE=1 and HF_ENDPOINT at a loopback hub that records requests: none may arrive."""
    cache = tmp_path / "hub-cache"
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.chdir(tmp_path)
    with HubServer(token="hf_unused") as server:
        monkeypatch.setenv("HF_ENDPOINT", server.url)
        yield cache
    assert server.requests == [], [r.path for r in server.requests]


def test_online_goes_to_the_endpoint(tmp_path, monkeypatch):
    """The control: without HF_HUB_OFFLINE the same call does ask the Hub (HF_ENDPOINT, read at call time)."""
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub-cache"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    with HubServer(token="hf_unused") as server:
        monkeypatch.setenv("HF_ENDPOINT", server.url)
        with pytest.raises(HubError):
            download_checkpoint("hf://tester/sage-tiny")
    assert any("tester/sage-tiny" in r.path for r in server.requests)


def test_download_checkpoint_from_cache(cache, tmp_path):
    source = write_checkpoint(tmp_path / "ckpt", tmp_path / "run")
    snap = fill_cache(cache, "model", "tester/sage-tiny", source, COMMIT, refs=("main", "v1"))
    for uri in ("hf://tester/sage-tiny", "hf://tester/sage-tiny@v1", f"hf://tester/sage-tiny@{COMMIT}"):
        folder = download_checkpoint(uri)
        assert folder == snap, uri
        assert (folder / "model.safetensors").read_bytes() == (source / "model.safetensors").read_bytes()
        assert (folder / "tokenizer.json").read_text() == (source / "tokenizer.json").read_text()


def test_download_data_from_cache(cache, tmp_path):
    source = write_data_folder(tmp_path / "data")
    fill_cache(cache, "dataset", "tester/sage-data", source, COMMIT)
    older = write_data_folder(tmp_path / "older", kinds=("identity",))
    fill_cache(cache, "dataset", "tester/sage-data", older, OTHER, refs=("first",))
    folder = download_data("tester/sage-data")
    assert sorted(p.name for p in folder.iterdir()) == sorted(p.name for p in source.iterdir())
    assert (folder / "all_conversations.jsonl").read_text() == (source / "all_conversations.jsonl").read_text()
    assert not (download_data("tester/sage-data", revision="first") / "tool_use_conversations.jsonl").exists()
    assert download_data("tester/sage-data@first") == download_data("tester/sage-data", revision=OTHER)
    with pytest.raises(HubError, match="empty revision"):
        download_data("tester/sage-data@")


def test_an_older_checkpoint_repo_with_model_pt_still_downloads(cache, tmp_path):
    source = write_checkpoint(tmp_path / "ckpt", tmp_path / "run", legacy=True)
    fill_cache(cache, "model", "tester/sage-old", source, COMMIT)
    assert (download_checkpoint("hf://tester/sage-old") / "model.pt").read_bytes() == (source / "model.pt").read_bytes()


def pushed_dataset(source: Path, target: Path) -> Path:
    """The files lanbot.upload would push for the data folder `source`, written out as a repo's files."""
    cfg = compose_config(["identity=sage", f"upload.path={source}", "upload.repo_id=tester/sage-data"])
    for name, content in plan_upload(cfg).files.items():
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        (target / name).write_bytes(content if isinstance(content, bytes) else content.read_bytes())
    return target


def test_download_parquet_data_from_cache_into_a_data_folder(cache, tmp_path):
    """A dataset repo of parquet rows: the data folder made from it is the one that was pushed, byte for byte;
    made once per commit under <root>/hub/, and the snapshot itself loads per config with datasets."""
    source = write_data_folder(tmp_path / "data")
    for kind in ("identity", "tool_use", "reasoning"):  # sidecars as generate writes them
        lines = [json.dumps({"persona": f"p{i}", "language": "es" if "Hola" in line else "en"}) + "\n"
                 for i, line in enumerate((source / f"{kind}_conversations.jsonl").read_text().splitlines())]
        (source / f"{kind}_meta.jsonl").write_text("".join(lines))
    with DataFolder(source, ["identity", "tool_use", "reasoning"], identity="Sage") as written:  # as generate does
        written.finalize()
    snap = fill_cache(cache, "dataset", "tester/sage-data", pushed_dataset(source, tmp_path / "repo"), COMMIT)
    assert not list(snap.glob("*.jsonl"))
    folder = download_data("tester/sage-data", root=tmp_path / "out")
    assert folder == tmp_path / "out" / "hub" / "datasets--tester--sage-data" / COMMIT
    assert sorted(p.name for p in folder.iterdir()) == sorted(p.name for p in source.iterdir())
    for path in source.iterdir():
        assert (folder / path.name).read_bytes() == path.read_bytes(), path.name
    stamp = (folder / "all_conversations.jsonl").stat().st_mtime_ns
    assert download_data("tester/sage-data", root=tmp_path / "out") == folder  # made once
    assert (folder / "all_conversations.jsonl").stat().st_mtime_ns == stamp

    from datasets import load_dataset

    for name, n in (("identity", 3), ("tool_use", 2), ("reasoning", 1), ("all", 6)):
        rows = load_dataset(str(snap), name, split="train")
        assert rows.num_rows == n and set(rows["type"]) == ({name} if name != "all" else {"identity", "tool_use", "reasoning"})
    spanish = load_dataset(str(snap), "identity", split="train").filter(lambda row: row["language"] == "es")
    assert [from_messages(m) for m in spanish["messages"]] == [CONVERSATIONS["identity"][2]]


def test_a_parquet_repo_with_a_type_this_lanbot_does_not_know(cache, tmp_path):
    repo = pushed_dataset(write_data_folder(tmp_path / "data"), tmp_path / "repo")
    (repo / "data" / "identity-00000-of-00001.parquet").rename(repo / "data" / "haiku-00000-of-00001.parquet")
    fill_cache(cache, "dataset", "tester/odd-data", repo, COMMIT)
    with pytest.raises(HubError, match="types this lanbot does not know: haiku"):
        download_data("tester/odd-data", root=tmp_path / "out")
    assert not (tmp_path / "out" / "hub" / "datasets--tester--odd-data" / COMMIT).exists()


def test_offline_and_not_cached_says_so(cache, tmp_path):
    fill_cache(cache, "model", "tester/sage-tiny", write_checkpoint(tmp_path / "c", tmp_path / "r"), COMMIT)
    with pytest.raises(HubError, match=r"not in the Hub cache .*HF_HUB_OFFLINE is set"):
        download_checkpoint("hf://tester/other-model")
    with pytest.raises(HubError, match="not in the Hub cache"):
        download_checkpoint("hf://tester/sage-tiny@no-such-branch")
    with pytest.raises(HubError, match="not in the Hub cache"):
        download_data("tester/sage-tiny")  # a model repo, not a dataset repo


def test_repo_that_is_not_a_checkpoint_or_data(cache, tmp_path):
    data = write_data_folder(tmp_path / "data")
    fill_cache(cache, "model", "tester/wrong", data, COMMIT)
    with pytest.raises(HubError, match="not a lanbot checkpoint: model.safetensors, tokenizer.json missing"):
        download_checkpoint("hf://tester/wrong")
    ckpt = write_checkpoint(tmp_path / "ckpt", tmp_path / "run")
    fill_cache(cache, "dataset", "tester/wrong-data", ckpt, COMMIT)
    with pytest.raises(HubError, match="holds no data/<type>-00000-of-00001.parquet nor \\*_conversations.jsonl"):
        download_data("tester/wrong-data")


@pytest.mark.parametrize("uri", ["tester/sage", "hf://sage", "hf://a/b/c", "hf://tester/x--y", "hf://tester/sage@"])
def test_bad_uris(uri, cache):
    with pytest.raises(HubError):
        download_checkpoint(uri)


def test_parse_hf_uri():
    assert parse_hf_uri("hf://tester/sage-tiny") == ("tester/sage-tiny", None)
    assert parse_hf_uri("hf://tester/sage-tiny@v1.2") == ("tester/sage-tiny", "v1.2")
