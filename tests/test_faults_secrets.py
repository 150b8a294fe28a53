"""Secrets by any route: a key typed into an override, into a sweep, or where a variable's name belongs never
reaches a file lanbot or Hydra writes (.hydra/*, multirun.yaml, folder names), wandb or the console; every
copy is masked and the message says which files.

Each case runs the real app and then reads every byte under its output folder, every folder name, and the
console."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from lanbot.core.secrets import KEY_SHAPE, check_env_name, mask, redact

REPO = Path(__file__).resolve().parents[1]
KEY = "sk-or-v1-5f0c8e1d2b3a49687766554433221100ffeeddcc"  # shaped like an OpenRouter key, set nowhere


def lanbot(app: str, *args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "WANDB_MODE": "offline", "WANDB_SILENT": "true", **(env or {})}
    env.pop("OPENROUTER_API_KEY", None)
    return subprocess.run([sys.executable, "-m", f"lanbot.{app}", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


def leaks(root: Path, needle: str) -> list[str]:
    """Every file whose bytes, and every path whose name, hold `needle`."""
    found = []
    for path in root.rglob("*"):
        if needle in path.name:
            found.append(f"name: {path}")
        if path.is_file() and not path.is_symlink() and needle.encode() in path.read_bytes():
            found.append(f"bytes: {path}")
    return found


def test_a_key_typed_into_an_override_is_masked_in_every_hydra_file(tmp_path):
    proc = lanbot("generate", f"identity.creator={KEY}", "data=identity", "data.count=2", f"paths.root={tmp_path}",
                  cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert KEY not in proc.stdout + proc.stderr and not leaks(tmp_path, KEY)
    [line] = proc.stderr.strip().splitlines()
    for name in (".hydra/config.yaml", ".hydra/hydra.yaml", ".hydra/overrides.yaml"):
        assert name in line
    [run] = list((tmp_path / "runs").glob("*/*_*"))
    import yaml

    assert "identity.creator=MASKED" in (run / ".hydra" / "overrides.yaml").read_text()
    for name in ("config.yaml", "hydra.yaml", "overrides.yaml"):  # still YAML that compare and Hydra can read
        yaml.safe_load((run / ".hydra" / name).read_text())
    assert not (tmp_path / "data").exists()  # refused before any work


def test_a_key_in_a_sweep_is_masked_in_multirun_yaml_folder_names_and_the_console(tmp_path):
    proc = lanbot("generate", "-m", f"identity.creator={KEY}", "data=identity", "data.count=1,2",
                  f"paths.root={tmp_path}", "hydra.sweep.dir=sweep", cwd=tmp_path)
    assert proc.returncode == 2
    assert KEY not in proc.stdout + proc.stderr and not leaks(tmp_path, KEY)
    jobs = sorted(p.name for p in (tmp_path / "sweep").iterdir() if p.is_dir())
    assert len(jobs) == 2 and all("identity.creator=masked" in j for j in jobs)
    assert "multirun.yaml" in proc.stderr and "2 of 2 sweep jobs stopped" in proc.stderr
    assert "MASKED" in (tmp_path / "sweep" / "multirun.yaml").read_text()


@pytest.mark.parametrize("value", [KEY, "'my key!'"])
def test_a_key_where_a_variable_name_belongs_is_refused_unechoed(tmp_path, value):
    proc = lanbot("generate", "backend=openrouter", f"backend.api_key_env={value}", "data=identity", "data.count=1",
                  f"paths.root={tmp_path}", cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    [line] = proc.stderr.strip().splitlines()
    assert KEY not in proc.stdout + proc.stderr and not leaks(tmp_path, KEY)
    assert "export " + value not in line
    if value != KEY:  # not key-shaped: the name check says what belongs there
        assert "backend.api_key_env names the environment variable" in line


def test_the_rules_on_their_own():
    assert KEY_SHAPE.search(f"key {KEY}.") and KEY_SHAPE.search("hf_" + "a1" * 12)
    assert KEY_SHAPE.search("sk-proj-" + "Ab3" * 16) and KEY_SHAPE.search("sk-ant-api03-" + "x9" * 20)
    for prose in ("sk-learn", "task-1234567890abcdefghij", "the sk- prefix", "hf_transfer",
                  "runs/sk-learn-experiments-2026/x"):
        assert not KEY_SHAPE.search(prose), prose
    assert mask(f"echo {KEY}") == "echo ***" and redact(f"x={KEY}") == "x=***"
    check_env_name("backend.api_key_env", "OPENROUTER_API_KEY")
    check_env_name("backend.api_key_env", None)
    for bad in (KEY, "OPENROUTER API KEY", "1ABC", ""):
        with pytest.raises(Exception, match="names the environment variable"):
            check_env_name("backend.api_key_env", bad)
