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
