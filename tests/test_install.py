"""lanbot installed as users install it: a wheel (`pip install .`) carries the config tree and the console
scripts, and its apps run from any folder with no checkout beside them; every app prints its resolved config."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
APPS = ("generate", "train", "evaluate", "chat", "compare", "upload", "export.nanochat", "export.hf")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(out),
                    str(REPO)], check=True, capture_output=True, timeout=300)
    [built] = out.glob("lanbot-*.whl")
    return built


def test_the_wheel_carries_the_config_tree_and_the_console_scripts(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    conf = {n.removeprefix("lanbot/conf/") for n in names if n.startswith("lanbot/conf/")}
    assert conf == {p.relative_to(REPO / "conf").as_posix() for p in (REPO / "conf").rglob("*.yaml")}
    [entry_points] = [n for n in names if n.endswith("entry_points.txt")]
    scripts = zipfile.ZipFile(wheel).read(entry_points).decode()
    for app in APPS:
        assert f"lanbot-{app.replace('.', '-')} = lanbot.{app}:main" in scripts


def test_an_installed_lanbot_generates_from_any_folder(wheel, tmp_path):
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheel)],
                   check=True, capture_output=True, timeout=300)
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {**os.environ, "PYTHONPATH": str(target), "WANDB_MODE": "disabled"}
    where = subprocess.run([sys.executable, "-c", "import lanbot.core.config as c; print(c.CONF_DIR)"], cwd=work,
                           env=env, capture_output=True, text=True, timeout=60)
    assert where.stdout.strip() == str(target / "lanbot" / "conf")  # the installed copy, not this checkout
    proc = subprocess.run([sys.executable, "-m", "lanbot.generate", "identity=sage", "data=identity", "data.count=3",
                           "logger=none", "paths.root=out"], cwd=work, env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert len((work / "out/data/sage/identity_conversations.jsonl").read_text().splitlines()) == 3


@pytest.mark.parametrize("app", APPS)
def test_every_app_prints_its_resolved_config(app, tmp_path):
    proc = subprocess.run([sys.executable, "-m", f"lanbot.{app}", "--cfg", "job", "--resolve"], cwd=tmp_path,
                          env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-1000:]
    assert "identity:" in proc.stdout and "${" not in proc.stdout


@pytest.mark.parametrize("app", APPS)
def test_every_app_has_its_own_help(app, tmp_path):
    proc = subprocess.run([sys.executable, "-m", f"lanbot.{app}", "--help"], cwd=tmp_path,
                          env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-1000:]
    assert proc.stdout.startswith(f"lanbot.{app}: ")
    assert proc.stdout.count(f"python -m lanbot.{app}") >= 3  # its examples
    assert "identity  lanbot, " in proc.stdout and "_schema" not in proc.stdout and "powered by Hydra" not in proc.stdout
