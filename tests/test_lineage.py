"""wandb lineage offline: the data folder, the checkpoint and eval.json as artifacts (read back from the offline
run files), inputs recorded by digest, and the answers table carrying the per-answer checks."""

from __future__ import annotations

import json
from pathlib import Path

import wandb_records as wr
from train_fixtures import make_data_folder

from lanbot.core.config import compose_config
from lanbot.core.tracking import Tracker

TINY = ["model.n_layer=1", "model.n_embd=64", "model.n_head=2", "model.n_kv_head=2", "model.sequence_len=128",
        "model.vocab_size=400", "train.max_steps=2", "train.total_batch_tokens=1024", "train.eval_every=2",
        "train.log_every=1", "train.eval_at_end=true", "eval.samples=1", "eval.max_tokens=4", "logger=wandb",
        "eval.families=[identity,task]", "train.init_from=scratch", "mix.mid.chat.limit=20"]


def test_generate_train_evaluate_lineage_in_offline_run_files(tmp_path: Path, monkeypatch) -> None:
    from lanbot.training.run import train

    monkeypatch.setenv("WANDB_MODE", "offline")
    data = make_data_folder(tmp_path / "data" / "lanbot")
    cfg = compose_config([f"paths.root={tmp_path}", *TINY])
    with Tracker(cfg, tmp_path / "gen", job_type="generate") as tracker:  # what lanbot.generate logs at its end
        tracker.log_artifact("data-lanbot", "dataset", data)
    dataset = wr.artifacts(tmp_path / "gen", {"data-lanbot"})["data-lanbot"]
    assert (dataset.name, dataset.type) == ("data-lanbot", "dataset") and len(dataset.manifest.contents) == 6

    train(cfg, tmp_path / "run")
    logged = wr.artifacts(tmp_path / "run", {"model-lanbot-default-tiny-mid", "eval-lanbot-default-tiny-mid"})
    model, evaluation = logged["model-lanbot-default-tiny-mid"], logged["eval-lanbot-default-tiny-mid"]
    assert model.type == "model" and evaluation.type == "evaluation"
    assert sorted(e.path for e in model.manifest.contents) == ["config.yaml", "meta.json", "model.safetensors", "tokenizer.json"]
    meta = json.loads(evaluation.metadata)
    # the evaluation at the end of training: the model is the run's own output, named, never also its input
    assert {(i["name"], i["digest"]) for i in meta["inputs"]} == {("data-lanbot", dataset.digest)}
    assert meta["checkpoint"] == "model-lanbot-default-tiny-mid" and meta["stored"] == "files"
    assert model.metadata and json.loads(model.metadata)["stored"] == "files"  # the weights travel with the run
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["lineage/inputs"][0]["digest"] == dataset.digest
    assert "eval/quirk/analogy" in summary  # LanBot's analogy quirk, scored on the task probes
    [table] = list((tmp_path / "run").rglob("eval/answers_*.table.json"))
    columns = json.loads(table.read_text())["columns"]
    assert {"family", "kind", "quirk/analogy", "recites_card"} <= set(columns)
