"""Compare: run folders found in a sweep, the sorted table, the plots and report, wandb query, the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf
from rich.console import Console

from lanbot.comparison.run import (
    CompareError,
    compare,
    find_runs,
    read_run,
    run_from_wandb,
    sort_rows,
    wandb_query,
)
from lanbot.core.config import compose_config
from lanbot.core.files import write_json_atomic
from lanbot.core.tracking import Tracker

ROOT = Path(__file__).resolve().parent.parent
PNG = b"\x89PNG\r\n\x1a\n"
# (identity, mix) -> (final val loss, identity rate)
RESULTS = {("lanbot", "default"): (1.2, 0.95), ("lanbot", "no_identity"): (1.9, 0.0),
           ("sage", "default"): (1.1, 0.9), ("sage", "no_identity"): (2.0, 0.02)}


def make_sweep(root: Path) -> Path:
    """A sweep folder as `python -m lanbot.train -m stage=sft identity=lanbot,sage mix=default,no_identity` leaves it."""
    sweep = root / "multirun" / "2026-11-24" / "21-00-00"
    for n, ((identity, mix), (loss, rate)) in enumerate(RESULTS.items()):
        cfg = compose_config([f"identity={identity}", f"mix={mix}", "stage=sft", "logger=none", f"paths.root={root}"])
        run = sweep / f"{n}_identity={identity},mix={mix}"
        (run / ".hydra").mkdir(parents=True)
        OmegaConf.save(cfg, run / ".hydra" / "config.yaml")
        with Tracker(cfg, run, job_type="sft") as tracker:
            for step in (10, 20, 30):
                tracker.log({"train/loss": loss + 3 / step, "val/loss": loss + 2 / step}, step=step)
            tracker.summary({"val/loss": loss + 2 / 30, "run_seconds": 100.0 + n})
        write_json_atomic(run / "eval.json", {
            "identity": cfg.identity.name, "mix": mix, "model": "tiny", "stage": "sft",
            "scores": {"identity_rate": rate, "creator_rate": rate / 2, "wrong_identity_rate": 0.0,
                       "distinct_answers": 0.8, "limitation_honesty": 0.5, "calculator_accuracy": 0.3}})
    (sweep / "multirun.yaml").write_text("hydra: {}\n")
    return sweep


def test_find_runs_reads_a_sweep_and_each_run(tmp_path: Path) -> None:
    sweep = make_sweep(tmp_path)
    (tmp_path / "elsewhere" / ".hydra").mkdir(parents=True)  # an app's run folder without metrics: not a run
    (tmp_path / "elsewhere" / ".hydra" / "config.yaml").write_text("{}\n")
    folders = find_runs([sweep])
    assert len(folders) == 4 and find_runs([folders[0]]) == [folders[0]]
    run = read_run(folders[2])
    assert (run.identity, run.mix, run.model, run.stage) == ("Sage", "default", "tiny", "sft")
    assert run.val_loss == pytest.approx(1.1 + 2 / 30) and run.run_seconds == 102.0
    assert run.val_curve == [(10, pytest.approx(1.3)), (20, pytest.approx(1.2)), (30, pytest.approx(1.1 + 2 / 30))]
    assert len(run.train_curve) == 3
    assert run.scores["identity_rate"] == 0.9


def test_empty_or_missing_folders_say_what_was_expected(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(CompareError, match=r"no run folders in .*empty: expected folders holding .hydra/config.yaml"):
        find_runs([tmp_path / "empty"])
    with pytest.raises(CompareError, match="does not exist"):
        find_runs([tmp_path / "nope"])
    with pytest.raises(CompareError, match="no paths given"):
        find_runs([])


def test_compare_writes_sorted_table_plots_and_report(tmp_path: Path) -> None:
    sweep = make_sweep(tmp_path)
    out = tmp_path / "report"
    console = Console(file=open(os.devnull, "w"), width=250)  # noqa: SIM115
    report = compare({"paths": [str(sweep)], "sort": "identity_rate", "out": str(out), "source": "files"}, console)
    text = report.read_text()
    table = [line.split("|") for line in text.splitlines() if line.startswith("| ")][2:]  # past head and rule
    order = [cells[2].strip() + "/" + cells[3].strip() for cells in table]
    assert order == ["LanBot/default", "Sage/default", "Sage/no_identity", "LanBot/no_identity"]
    assert "![loss.png](loss.png)" in text and "![scores.png](scores.png)" in text
    for name in ("loss.png", "scores.png"):
        data = (out / name).read_bytes()
        assert data.startswith(PNG) and len(data) > 10_000
    # default output folder: <first path>/compare
    assert compare({"paths": [str(sweep)], "sort": "val_loss"}, console) == sweep / "compare" / "report.md"


def test_sort_rows_direction_and_bad_key() -> None:
    rows = [{"run": "a", "val_loss": 2.0, "identity_rate": None}, {"run": "b", "val_loss": 1.0, "identity_rate": 0.5}]
    assert [r["run"] for r in sort_rows(rows, "val_loss")] == ["b", "a"]
    assert [r["run"] for r in sort_rows(rows, "identity_rate")] == ["b", "a"]
    with pytest.raises(CompareError, match="not a column"):
        sort_rows(rows, "accuracy")


def test_wandb_query_and_run_mapping() -> None:
    cfg = compose_config(["compare.source=wandb", "compare.entity=me", "compare.group=2026-11-24-21-00-00",
                          "+compare.filters.tags={$in: [sage]}"])
    assert wandb_query(cfg.compare) == ("me/lanbot", {"group": "2026-11-24-21-00-00", "tags": {"$in": ["sage"]}})
    assert wandb_query({"project": "p", "entity": None, "group": None, "filters": {}}) == ("p", {})

    class FakeRun:  # the attributes lanbot reads from a wandb.apis.public.Run
        name, group = "sft-1", "g"
        config = {"identity": {"name": "Sage"}, "mix": {"name": "default"}, "model": {"name": "tiny"}, "stage": "sft"}
        summary = {"val/loss": 1.5, "run_seconds": 90, "eval/identity_rate": 0.9}

        def scan_history(self, keys):
            return [{"_step": 10, keys[1]: 2.0}, {"_step": 20, keys[1]: 1.5}]

    run = run_from_wandb(FakeRun())
    assert (run.name, run.identity, run.mix, run.stage, run.val_loss) == ("g/sft-1", "Sage", "default", "sft", 1.5)
    assert run.scores == {"identity_rate": 0.9} and run.val_curve == [(10, 2.0), (20, 1.5)]


def test_cli_compares_a_sweep_and_refuses_an_empty_one(tmp_path: Path) -> None:
    sweep = make_sweep(tmp_path)
    env = {**os.environ, "WANDB_MODE": "offline"}
    args = [sys.executable, "-m", "lanbot.compare", f"hydra.run.dir={tmp_path}/run"]
    done = subprocess.run([*args, str(sweep), "compare.sort=wrong_identity_rate"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "sorted by wrong_identity_rate" in done.stdout and (sweep / "compare" / "report.md").is_file()
    (tmp_path / "empty").mkdir()
    empty = subprocess.run([*args, str(tmp_path / "empty")], cwd=ROOT, env=env, capture_output=True, text=True,
                           timeout=120)
    assert empty.returncode == 2 and "expected folders holding .hydra/config.yaml" in empty.stderr
