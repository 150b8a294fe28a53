"""A sweep runs every job, as Hydra's own sweeps do: a job refused with something to fix is named in its folder
(error.txt) and at the end, the others run to the end, and the sweep exits by the app rule (2)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(REPO), "WANDB_MODE": "disabled"}


def lanbot(app: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", f"lanbot.{app}", *args], cwd=cwd, env=ENV, capture_output=True,
                          text=True, timeout=300)


def test_a_refused_job_is_recorded_and_the_other_jobs_run(tmp_path):
    proc = lanbot("generate", "-m", "data=identity", "data.count=2,-1,3", "identity=sage,lanbot",
                  f"paths.root={tmp_path}", "logger=none", "hydra.sweep.dir=sweep", cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr[-2000:]
    jobs = sorted(p for p in (tmp_path / "sweep").iterdir() if p.is_dir())
    assert len(jobs) == 6  # every job ran, the refused ones included
    failed = sorted(j.name for j in jobs if (j / "error.txt").exists())
    assert len(failed) == 2 and all("data.count=-1" in name for name in failed)
    assert "is not a count" in (tmp_path / "sweep" / failed[0] / "error.txt").read_text()
    for identity in ("sage", "lanbot"):  # the last job of each identity wrote its 3 (2 + 1 more: resume)
        lines = (tmp_path / "data" / identity / "identity_conversations.jsonl").read_text().splitlines()
        assert len(lines) == 3
    last = proc.stderr.strip().splitlines()
    summary = [i for i, line in enumerate(last) if "2 of 6 sweep jobs stopped" in line]
    assert summary and all("is not a count" in line for line in last[summary[0] + 1:])


def test_a_sweep_with_cfg_is_one_line(tmp_path):
    proc = lanbot("train", "-m", "--cfg", "job", "identity=lanbot,sage", cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.count("\n") == 1 and "drop -m" in proc.stderr


def test_compare_on_the_sweep_shows_which_jobs_stopped_and_why(tmp_path):
    lanbot("generate", "-m", "data=identity", "data.count=2,-1", f"paths.root={tmp_path}", "logger=none",
           "hydra.sweep.dir=sweep", cwd=tmp_path)
    proc = lanbot("compare", "sweep", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-1500:]
    [line] = [x for x in proc.stdout.splitlines() if x.startswith("stopped ")]
    assert line.startswith("stopped sweep/1:") and "data.count=-1 is not a count" in line
    report = (tmp_path / "sweep" / "compare" / "report.md").read_text()
    assert "Sweep jobs that stopped" in report and "data.count=-1 is not a count" in report
