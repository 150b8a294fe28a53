"""What every fault suite asserts on: a refused run's one error line, and a folder's bytes before and after."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path


def one_line(proc: subprocess.CompletedProcess, app: str) -> str:
    """The error line of a refused run: exit 2, no traceback, one `error lanbot.<app>:` line."""
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.startswith("error ")]
    assert len(lines) == 1 and lines[0].startswith(f"error lanbot.{app}:"), proc.stderr
    return lines[0]


def snapshot(folder: Path) -> dict[str, str]:
    """sha256 of every file under `folder`, by relative path: what "intact" is checked against."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}
