"""The one app runner: positional paths, Hydra's composition errors as one line, one exit-code rule."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from lanbot.core.app import collect_positional

REPO = Path(__file__).resolve().parent.parent
APPS = ("generate", "train", "evaluate", "chat", "compare", "upload", "export.nanochat")


def test_paths_become_one_hydra_override() -> None:
    assert collect_positional(["outputs/multirun/a", "compare.sort=val_loss", "it's/b"], "compare.paths") == [
        "compare.sort=val_loss", "compare.paths=['outputs/multirun/a','it\\'s/b']"]
    assert collect_positional(["--cfg", "job", "x"], "compare.paths") == ["--cfg", "job", "compare.paths=['x']"]
    assert collect_positional(["-cd", "/my/conf", "identity=sage"], "compare.paths") == ["-cd", "/my/conf", "identity=sage"]


def run(app: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "WANDB_MODE": "disabled", "PYTHONPATH": str(REPO)}
    env.pop("HYDRA_FULL_ERROR", None)
    return subprocess.run([sys.executable, "-m", f"lanbot.{app}", *args, f"paths.root={cwd}", "logger=none"],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


CASES = {  # argv -> what the one line must say
    "unknown_option": (("mix=nope",), ["unknown mix 'nope'", "default, identity_heavy", "conf/mix/nope.yaml"]),
    "typo_key": (("train.max_step=10",), ["train.max_step=10", "Key 'max_step' not in 'Train'", "--cfg job"]),
    "bad_type": (("train.max_steps=lots",), ["train.max_steps=lots", "could not be converted to Integer"]),
    "bad_override": (("train.max_steps=[",), ["cannot read the override 'train.max_steps=['", "key=value"]),
}


@pytest.mark.parametrize("app", ["generate", "train", "compare"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_composition_errors_are_one_line_exit_2_in_every_app(tmp_path, app, case):
    args, needles = CASES[case]
    proc = run(app, *args, cwd=tmp_path)
    err = " ".join(proc.stderr.split())
    assert proc.returncode == 2, (app, case, proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr and err.startswith(f"error lanbot.{app}:"), err
    for needle in needles:
        assert needle in err, (needle, err)


def test_a_missing_value_is_named_with_the_fix(tmp_path):
    proc = run("generate", "backend=openai", "backend.api_key_env=null", "backend.base_url=???", "data.count=1",
               cwd=tmp_path)
    err = " ".join(proc.stderr.split())
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert "backend.base_url" in err, err


@pytest.mark.parametrize("app", [a for a in APPS if a not in ("generate", "train", "compare")])
def test_every_other_app_reports_an_unknown_option_the_same_way(tmp_path, app):
    proc = run(app, "identity=nobody", cwd=tmp_path)
    err = " ".join(proc.stderr.split())
    assert proc.returncode == 2 and err.startswith(f"error lanbot.{app}: unknown identity 'nobody'"), err


def test_claim_dir_gives_each_caller_its_own_folder(tmp_path):
    from lanbot.core.config import claim_dir

    base = str(tmp_path / "runs" / "2026-01-01" / "12-00-00_train")
    (tmp_path / "runs" / "2026-01-01").mkdir(parents=True)
    Path(base + "-2").write_text("a file, not a folder")
    assert [claim_dir(base) for _ in range(3)] == [base, base + "-3", base + "-4"]
    assert all(Path(p).is_dir() for p in (base, base + "-3", base + "-4"))


def test_apps_started_in_the_same_second_get_folders_of_their_own_named_for_the_app(tmp_path):
    """Another run already holds this second's folder (made here for the next 60 s, as a run started in the same
    second would): two generate runs and a generate sweep, started together, each get a `-N` folder of their own."""
    from datetime import datetime, timedelta

    now = datetime.now()
    taken = [now + timedelta(seconds=s) for s in range(60)]
    for t in taken:
        for kind in ("runs", "multirun"):
            folder = tmp_path / kind / f"{t:%Y-%m-%d}" / f"{t:%H-%M-%S}_generate"
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "other_run.txt").write_text("another run's")
    env = {**os.environ, "WANDB_MODE": "disabled", "PYTHONPATH": str(REPO)}
    common = [f"paths.root={tmp_path}", "logger=none", "data=identity", "data.count=2"]
    procs = [subprocess.Popen([sys.executable, "-m", "lanbot.generate", *args, *common], cwd=tmp_path, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for args in (["identity=sage"], ["identity=dev"], ["-m", "identity=lanbot,yourbot"])]
    for proc in procs:
        _, err = proc.communicate(timeout=180)
        assert proc.returncode == 0, err[-2000:]
    runs = sorted(p for p in (tmp_path / "runs").glob("*/*") if not (p / "other_run.txt").exists())
    assert len(runs) == 2 and all("_generate-" in p.name for p in runs), runs
    names = sorted((p / ".hydra" / "overrides.yaml").read_text() for p in runs)
    assert "identity=dev" in names[0] and "identity=sage" in names[1]  # each folder holds its own run's files
    assert all((p / "summary.json").is_file() and (p / "generate.log").is_file() for p in runs)
    [sweep] = [p for p in (tmp_path / "multirun").glob("*/*") if not (p / "other_run.txt").exists()]
    assert "_generate-" in sweep.name and (sweep / "multirun.yaml").is_file()
    jobs = sorted(p.name for p in sweep.glob("[01]_*"))
    assert len(jobs) == 2 and "identity=lanbot" in jobs[0] and "identity=yourbot" in jobs[1]
    assert all(sorted(os.listdir(tmp_path / k / f"{t:%Y-%m-%d}" / f"{t:%H-%M-%S}_generate")) == ["other_run.txt"]
               for t in taken for k in ("runs", "multirun"))
