"""wandb as its users expect, read back from the offline run files: runs named after what they are, artifacts
that carry their files up to logger.artifact_max_mb and say so above it, data stats as summary and a table
rather than history, and no run using its own output."""

from __future__ import annotations

import json

import pytest
import wandb_records as wr

from lanbot.core.config import compose_config
from lanbot.core.tracking import Tracker, run_name


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")


def test_every_run_is_named_after_what_it_is():
    cfg = compose_config(["identity=sage", "mix=no_identity", "model=tiny", "eval.stage=mid"])
    assert run_name(cfg, "base") == "base-bundled-tiny"
    assert run_name(cfg, "mid") == "mid-sage-no_identity-tiny"
    assert run_name(cfg, "sft") == "sft-sage-no_identity-tiny"
    assert run_name(cfg, "eval") == "eval-sage-no_identity-tiny-mid"
    zoe = compose_config(["identity.name='Zoë'"])
    assert run_name(zoe, "sft").startswith("sft-zo-")  # the data folder's slug, digest and all


def test_the_run_file_carries_the_name(tmp_path):
    cfg = compose_config([f"paths.root={tmp_path}", "identity=dev", "logger=wandb"])
    with Tracker(cfg, tmp_path / "run", job_type="sft"):
        pass
    import time

    deadline, names = time.monotonic() + 30, []  # wandb's writer may still be flushing the file
    while not names and time.monotonic() < deadline:
        names = [r.run.display_name for r in wr.records(wr.run_file(tmp_path / "run")) if r.HasField("run")]
        time.sleep(0 if names else 0.5)
    assert names and names[0] == "sft-dev-default-tiny"


def test_an_artifact_carries_its_files_up_to_the_limit_and_references_above_it(tmp_path, capsys):
    folder = tmp_path / "ckpt"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(b"\0" * 300_000)
    (folder / "meta.json").write_text("{}")
    cfg = compose_config([f"paths.root={tmp_path}", "logger=wandb", "logger.artifact_max_mb=0.1"])
    with Tracker(cfg, tmp_path / "run", job_type="mid") as tracker:
        tracker.log_artifact("small", "model", folder / "meta.json")
        tracker.log_artifact("big", "model", folder)
    logged = wr.artifacts(tmp_path / "run", {"small", "big"})
    small, big = logged["small"], logged["big"]
    assert json.loads(small.metadata)["stored"] == "files" and not small.manifest.contents[0].ref
    assert json.loads(big.metadata)["stored"] == "reference"
    assert all(e.ref.startswith("file://") for e in big.manifest.contents)
    err = capsys.readouterr().err
    assert "artifact big holds file:// references" in err and "logger.artifact_max_mb=0.1" in err
    assert "artifact small" not in err


def test_a_run_never_uses_its_own_output(tmp_path):
    folder = tmp_path / "ckpt"
    folder.mkdir()
    (folder / "meta.json").write_text("{}")
    cfg = compose_config([f"paths.root={tmp_path}", "logger=wandb"])
    with Tracker(cfg, tmp_path / "run", job_type="mid") as tracker:
        tracker.log_artifact("model-x", "model", folder)
        tracker.use_artifact("model-x", "model", folder)
        assert tracker.inputs == []


def test_generate_logs_stats_as_summary_and_a_table_not_history(tmp_path):
    from lanbot.generation.report import log_to_tracker

    stats = {"total": 3, "per_type": {"identity": {"count": 2, "unique_first_replies": 1.0},
                                      "tool_use": {"count": 1, "unique_first_replies": 1.0}},
             "turns": {"1": 3}, "assistant_chars_histogram": {"0": 3}}
    cfg = compose_config([f"paths.root={tmp_path}", "logger=wandb"])
    with Tracker(cfg, tmp_path / "run", job_type="generate") as tracker:
        log_to_tracker(tracker, stats, [["identity", 1, "hi"]])
    history = [i.key or "/".join(i.nested_key) for r in wr.records(wr.run_file(tmp_path / "run"))
               if r.HasField("history") for i in r.history.item]
    assert "total" not in history and not any(k.startswith("per_type") for k in history)
    assert any(k.startswith("stats_per_type/") for k in history)  # the table (a media entry)
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["per_type/identity/count"] == 2
