"""One writer per folder: a lock file beside the folder, held with the kernel's `flock` while a run writes.

    with FolderLock(data_dir, "data folder") as lock:   # FolderBusy at once if another run holds it
        ...                                              # lock.stale: the record of a killed owner it took over

The lock file (`layout.lock_file`: `.<folder>.lock` beside the folder, so a checkpoint folder swapped in by
rename keeps it) holds the owner's pid, host, start time and command, for the one-line message a second
writer gets. The kernel releases an flock when its process dies, kill -9 included, so a lock left by a dead
run is free; its record (a pid no longer running) is reported as taken over. Released (and the file removed)
on exit, Ctrl-C and errors. Hand-written on fcntl: `filelock` truncates the file on every try, which would
erase the owner's record the message needs.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import sys
import time
from pathlib import Path
from typing import Any

from lanbot.core.errors import LanbotError
from lanbot.core.files import io_error
from lanbot.core.layout import lock_file


class FolderBusy(LanbotError, RuntimeError):
    """Another run is writing the folder; the message names it (pid, host, command) and what to do."""


def _record() -> dict[str, Any]:
    from lanbot.core.secrets import redact  # the command line is written to disk: no secret values in it

    argv = getattr(sys, "orig_argv", None) or [sys.executable, *sys.argv]
    return {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
            "command": redact(" ".join(argv))}


def _read(fd: int) -> dict[str, Any] | None:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        data = json.loads(os.read(fd, 65536) or b"null")
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def pid_alive(pid: Any) -> bool:
    """Whether process `pid` runs on this host (a zombie counts as gone)."""
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a killed child its parent has not reaped yet is still listed
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][:1] != "Z"
    except (OSError, IndexError):
        return True


def describe(owner: dict[str, Any] | None) -> str:
    """`pid 123 on host h (python -m lanbot.generate ...), since ...` for a lock record."""
    if not owner:
        return "a run that has not written its record yet"
    command = " ".join(str(owner.get("command")).split())  # one line, however the command was given
    command = command if len(command) <= 160 else command[:157] + "..."
    return f"pid {owner.get('pid')} on host {owner.get('host')} (`{command}`), since {owner.get('started')}"


class FolderLock:
    """An exclusive, non-blocking lock on one folder for the life of a `with` block."""

    def __init__(self, folder: str | os.PathLike, what: str = "folder") -> None:
        self.folder = Path(folder)
        self.what = what
        self.path = lock_file(self.folder)
        self.stale: dict[str, Any] | None = None  # the record of a dead owner this lock took over
        self._fd: int | None = None

    def acquire(self) -> FolderLock:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise io_error("creating", self.path.parent, exc) from None
        while True:
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as exc:
                raise io_error("creating the lock file", self.path, exc) from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                owner = _read(fd)
                os.close(fd)
                orphan = (owner and owner.get("host") == socket.gethostname() and not pid_alive(owner.get("pid")))
                note = " (that pid is gone, but a process it started still holds the lock)" if orphan else ""
                raise FolderBusy(
                    f"{self.what} {self.folder} is being written by another lanbot run: {describe(owner)}{note}. "
                    f"Wait for it to finish or stop it (kill {owner.get('pid') if owner else '<pid>'}), then run again; or write "
                    f"elsewhere with paths.root=<folder> (lock file {self.path})") from None
            try:  # the file may have been removed by the owner that released it while this one waited
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        previous = _read(fd)
        if previous and previous.get("pid") != os.getpid():
            self.stale = previous
        try:
            os.ftruncate(fd, 0)
            os.lseek(fd, 0, os.SEEK_SET)
            os.write(fd, (json.dumps(_record()) + "\n").encode("utf-8"))
        except OSError as exc:
            os.close(fd)
            raise io_error("writing the lock file", self.path, exc) from None
        self._fd = fd
        if self.stale is not None:
            print(f"[lock] took over the stale lock of {self.folder}: {describe(self.stale)} is no longer running",
                  file=sys.stderr)
        return self

    def release(self) -> None:
        """Remove the lock file, then let go (a waiter that opened the old file sees it is gone and retries)."""
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            self.path.unlink(missing_ok=True)
        os.close(self._fd)
        self._fd = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def __enter__(self) -> FolderLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
