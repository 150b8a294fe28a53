"""The run folder's `<app>.log` keeps the console: info lines, the tables, a progress bar's end state (never its
redraws) and the one-line error, with secrets masked; the real app in a subprocess, and at a real terminal (a pty)."""

from __future__ import annotations

import logging
import os
import pty
import subprocess
import sys
from pathlib import Path

from lanbot.core.console_log import console_log

REPO = Path(__file__).resolve().parents[1]
KEY = "sk-proj-Zq8Hx2Lm4Rt7Pv9Wc3Nb6Yd1Kf5Gs0Ja"  # shaped like an OpenAI key, set nowhere
SECRET = "tok3n-v4lue-0f-a-s3cret-variable"  # a secret-named variable's value: not key-shaped, masked all the same


def env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), "WANDB_MODE": "disabled", "LANBOT_TEST_TOKEN": SECRET}


def run_log(root: Path) -> str:
    [log] = list((root / "runs").glob("*/*_generate/generate.log"))
    return log.read_text(encoding="utf-8")


def messages(log: str) -> list[str]:
    """The log's messages without Hydra's `[time][logger][level] - ` heads."""
    return [line.split("] - ", 1)[1].rstrip() for line in log.splitlines() if "] - " in line]


def test_the_log_holds_what_the_console_showed(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "lanbot.generate", "data=identity", "data.count=3",
                           f"paths.root={tmp_path}", "logger=none"], cwd=tmp_path, env=env(), capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    logged = messages(run_log(tmp_path))
    shown = [line.rstrip() for line in (proc.stdout + proc.stderr).splitlines() if line.strip()]
    assert any(line.startswith("Data folder:") for line in shown) and len(shown) >= 8, shown
    assert set(shown) <= set(logged), sorted(set(shown) - set(logged))  # every console line, one record each


def test_the_one_line_error_is_in_the_log_and_no_key_is(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "lanbot.generate", "data=identity", "data.count=3",
                           f"identity.creator={KEY}", f"paths.root={tmp_path}", "logger=none"], cwd=tmp_path,
                          env=env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr[-2000:]
    log = run_log(tmp_path)
    assert "[ERROR] - error lanbot.generate: the config holds a value shaped like a key" in log, log
    assert KEY not in log and KEY not in proc.stderr


def test_the_tee_masks_secrets_strips_colours_and_logs_whole_lines(tmp_path, monkeypatch):
    monkeypatch.setenv("LANBOT_TEST_TOKEN", SECRET)
    handler = logging.FileHandler(tmp_path / "app.log", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(name)s - %(message)s"))  # pytest's own handlers left out
    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", [handler])
    try:
        with console_log("generate"):
            print(f"key {KEY} and token {SECRET}")
            sys.stdout.write("\x1b[1mbold\x1b[0m half ")
            sys.stdout.write("a line\n")
            sys.stdout.write("a windows line\r\nstep 1/3\rstep 3/3\n")
            print("to stderr, unfinished", end="", file=sys.stderr)
        print("after the job: not logged")
    finally:
        handler.close()
    lines = [line.split(" - ", 1)[1] for line in (tmp_path / "app.log").read_text().splitlines()]
    assert lines == ["key *** and token ***", "bold half a line", "a windows line", "step 3/3",
                     "to stderr, unfinished"], lines
    assert type(sys.stdout).__name__ != "_Tee"  # the job's end gives the console back


def test_without_a_log_file_nothing_is_wrapped(monkeypatch):
    monkeypatch.setattr(logging.getLogger(), "handlers", [])  # as hydra/job_logging=none leaves it
    before = sys.stdout
    with console_log("generate"):
        assert sys.stdout is before  # hydra/job_logging=none: no file handler, the console is left alone


def test_a_progress_bar_at_a_terminal_leaves_one_line_in_the_log(tmp_path):
    """At a terminal the bar is redrawn many times; the log gets its end state once and no control codes."""
    args = [sys.executable, "-m", "lanbot.generate", "identity=sage", "data=identity", "data.count=600",
            f"paths.root={tmp_path}", "logger=none"]
    pid, fd = pty.fork()
    if pid == 0:  # the child: the app, its stdout and stderr a terminal
        os.chdir(tmp_path)
        os.execve(sys.executable, args, {**env(), "COLUMNS": "100", "TERM": "xterm"})
    screen = bytearray()
    while True:
        try:
            data = os.read(fd, 65536)
        except OSError:
            break
        if not data:
            break
        screen += data
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, screen[-2000:]
    assert b"\x1b[" in screen  # the terminal did get colours and redraws
    log = run_log(tmp_path)
    assert "\x1b" not in log and "\r" not in log
    logged = messages(log)
    assert [m for m in logged if m.startswith("identity 600/600 (")] == [logged[0]], logged  # the bar's end, once
    assert not [m for m in logged if "━" in m and not m.startswith(("┏", "┡"))], logged  # no drawn bar
    assert logged[-1].startswith("Run folder:"), logged
