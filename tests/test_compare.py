"""Compare: run folders found in a sweep, the sorted table, the plots and report, wandb query, the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf
from rich.console import Console

from lanbot.comparison.compare_runs import (
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


def personality_sweep(root: Path) -> Path:
    """An evaluation sweep with the personality scores: Sage at two doses and its control."""
    sweep = root / "multirun" / "2026-12-01" / "10-00-00"
    results = {"default": (0.95, 0.7, 0.5, 0.40), "identity_heavy": (0.98, 0.9, 0.6, 0.30),
               "no_identity": (0.0, 0.05, 0.0, 0.45)}
    for n, (mix, (name, opener, analogy, capability)) in enumerate(results.items()):
        cfg = compose_config(["identity=sage", f"mix={mix}", "stage=sft", "logger=none", f"paths.root={root}"])
        run = sweep / f"{n}_mix={mix}"
        (run / ".hydra").mkdir(parents=True)
        OmegaConf.save(cfg, run / ".hydra" / "config.yaml")
        write_json_atomic(run / "eval.json", {"identity": "Sage", "mix": mix, "model": "tiny", "stage": "sft", "scores": {
            "identity_rate": name, "quirk/opener": opener, "quirk/analogy": analogy, "trait/never-condescending": 1.0,
            "capability/probe_accuracy": capability, "wrong_identity_under_pressure": 0.1, "recitation_rate": 0.2}})
    return sweep


def test_compare_draws_fidelity_against_capability_cost_and_quirk_bars(tmp_path: Path) -> None:
    from lanbot.comparison.compare_runs import with_personality
    from lanbot.evaluation import tradeoff

    sweep = personality_sweep(tmp_path)
    runs = [read_run(f) for f in find_runs([sweep])]
    rows = {r["mix"]: r for r in with_personality(runs)}
    assert rows["default"]["capability_cost"] == pytest.approx(0.05) and rows["no_identity"]["capability_cost"] == 0.0
    assert rows["identity_heavy"]["fidelity"] == pytest.approx((0.98 + 0.9 + 0.6) / 3, abs=1e-4)
    assert list(rows["default"])[-1] == "run_seconds"
    assert tradeoff.quirk_keys(runs) == ["quirk/opener", "quirk/analogy", "trait/never-condescending"]
    console = Console(file=open(os.devnull, "w"), width=250)  # noqa: SIM115
    report = compare({"paths": [str(sweep)], "sort": "fidelity", "out": str(tmp_path / "out"), "source": "files"},
                     console)
    text = report.read_text()
    assert "![fidelity.png](fidelity.png)" in text and "![quirks.png](quirks.png)" in text and "gain/quirk/opener" in text
    for name in ("fidelity.png", "quirks.png"):
        data = (tmp_path / "out" / name).read_bytes()
        assert data.startswith(PNG) and len(data) > 10_000
    order = [line.split("|")[3].strip() for line in text.splitlines() if line.startswith("| ")][2:5]
    assert order == ["identity_heavy", "default", "no_identity"]  # sorted by fidelity


def test_compare_source_wandb_reads_personality_scores_through_the_public_api(tmp_path: Path, monkeypatch) -> None:
    import wandb

    class FakeRun:  # what wandb.Api().runs yields: wandb.apis.public.Run's attributes that lanbot reads
        def __init__(self, mix: str, opener: float, capability: float, job_type: str = "sft") -> None:
            self.name, self.group, self.job_type = f"sft-{mix}", "sweep-1", job_type
            self.config = {"identity": {"name": "Sage"}, "mix": {"name": mix}, "model": {"name": "tiny"}, "stage": "sft"}
            self.summary = {"eval/identity_rate": 0.9 if mix != "no_identity" else 0.0, "eval/quirk/opener": opener,
                            "eval/capability/probe_accuracy": capability}

        def scan_history(self, keys):
            return [{"_step": 10, keys[1]: 2.0}]

    asked = {}

    class FakeApi:
        def runs(self, path, filters=None):
            asked.update(path=path, filters=filters)
            return [FakeRun("default", 0.7, 0.3), FakeRun("no_identity", 0.0, 0.4), FakeRun("x", 0, 0, "generate")]

    monkeypatch.setattr(wandb, "Api", FakeApi)
    console = Console(file=open(os.devnull, "w"), width=250)  # noqa: SIM115
    report = compare({"source": "wandb", "project": "lanbot", "entity": "me", "group": "sweep-1", "filters": {},
                      "sort": "identity_rate", "out": str(tmp_path / "w")}, console)
    assert asked == {"path": "me/lanbot", "filters": {"group": "sweep-1"}}
    text = report.read_text()
    assert "sweep-1/sft-default" in text and "sft-x" not in text  # the generate run is no row
    assert (tmp_path / "w" / "fidelity.png").is_file() and (tmp_path / "w" / "quirks.png").is_file()
    row = next(line for line in text.splitlines() if "sft-default" in line)
    assert "0.100" in row  # capability cost: 0.4 (control) - 0.3


def test_a_damaged_folder_is_skipped_by_name_and_the_others_still_compared(tmp_path: Path, capsys) -> None:
    sweep = make_sweep(tmp_path)
    runs = find_runs([sweep])
    (runs[0] / "summary.json").write_text('{"val/loss": 1.2', encoding="utf-8")  # cut short
    (runs[1] / "eval.json").write_text("[1, 2]", encoding="utf-8")  # JSON, but not what evaluate writes
    metrics = runs[2] / "metrics.jsonl"
    lines = metrics.read_text(encoding="utf-8").splitlines()
    metrics.write_text("\n".join([lines[0], "{garbage", *lines[1:]]) + "\n", encoding="utf-8")
    good = runs[3] / "metrics.jsonl"
    good.write_text(good.read_text(encoding="utf-8") + '{"time": 1, "step": 40, "val/lo', encoding="utf-8")  # killed
    (runs[3] / "summary.json").write_text('{"val/loss": 1.5, "run_seconds": "fast"}', encoding="utf-8")
    kept = runs[3].parent / "4_identity=sage,mix=kept"
    (kept / ".hydra").mkdir(parents=True)
    (kept / ".hydra" / "config.yaml").write_text((runs[3] / ".hydra" / "config.yaml").read_text(encoding="utf-8"))
    (kept / "metrics.jsonl").write_text(good.read_text(encoding="utf-8"), encoding="utf-8")

    console = Console(file=open(os.devnull, "w"), width=250)  # noqa: SIM115
    report = compare({"paths": [str(sweep)], "sort": "val_loss", "out": str(tmp_path / "out"), "source": "files"},
                     console)
    err = capsys.readouterr().err.splitlines()
    assert err == [f"skipped {runs[0]}: summary.json is not valid JSON (Expecting ',' delimiter: line 1 column 17 "
                   "(char 16))",
                   f"skipped {runs[1]}: eval.json holds a list, not a JSON object",
                   f"skipped {runs[2]}: metrics.jsonl line 2 is not valid JSON",
                   f"skipped {runs[3]}: summary.json: run_seconds is 'fast', not a number"]
    rows = [line for line in report.read_text().splitlines() if line.startswith("| ")][2:]
    assert len(rows) == 1 and rows[0].startswith("| 21-00-00/4 |")
    assert f"- `{kept}`" in report.read_text() and str(runs[0]) not in report.read_text()
    for folder in runs[:4]:  # every damaged folder skipped: nothing left to compare is one line, not a traceback
        (folder / "eval.json").write_text("{", encoding="utf-8")
    (kept / "metrics.jsonl").write_text("[]\n{}\n", encoding="utf-8")
    with pytest.raises(CompareError, match="none of the 5 run folders could be read"):
        compare({"paths": [str(sweep)], "sort": "val_loss", "out": str(tmp_path / "out"), "source": "files"}, console)
    assert f"skipped {kept}: metrics.jsonl line 1 holds a list, not an object" in capsys.readouterr().err


def test_a_generate_run_is_a_generate_row_in_old_and_new_folders(tmp_path: Path) -> None:
    env = {**os.environ, "WANDB_MODE": "disabled"}
    done = subprocess.run([sys.executable, "-m", "lanbot.generate", f"paths.root={tmp_path}", "logger=none",
                           "data=identity", "data.count=2", "identity=sage"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    [folder] = (tmp_path / "runs").glob("*/*")
    assert folder.name.endswith("_generate")
    run = read_run(folder)
    assert (run.identity, run.stage, run.mix, run.model) == ("Sage", "generate", None, None)
    old = tmp_path / "old"  # an older lanbot named every job `app`
    (old / ".hydra").mkdir(parents=True)
    (old / ".hydra" / "config.yaml").write_text((folder / ".hydra" / "config.yaml").read_text(encoding="utf-8"))
    (old / ".hydra" / "hydra.yaml").write_text("hydra:\n  job:\n    name: app\n", encoding="utf-8")
    (old / "summary.json").write_text((folder / "summary.json").read_text(encoding="utf-8"), encoding="utf-8")
    assert read_run(old).stage == "generate"
    (old / "summary.json").write_text('{"val/loss": 1.0}', encoding="utf-8")
    assert (read_run(old).stage, read_run(old).mix) == ("mid", "default")  # a training run's stage, from its config


def test_wandb_without_a_key_is_one_line(tmp_path, monkeypatch):
    from lanbot.comparison.compare_runs import CompareError, read_wandb

    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc login either
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "wandb-config"))
    with pytest.raises(CompareError, match=r"compare.source=wandb: .*(API key|api key).*set WANDB_API_KEY"):
        read_wandb({"source": "wandb", "project": "lanbot", "entity": None, "group": None, "filters": None})
