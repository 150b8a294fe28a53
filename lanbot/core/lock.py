"""One writer per folder, and readers that see it whole: a lock file beside the folder, held with the kernel's
`flock` while a run writes it (exclusive) or reads it (shared).

    with FolderLock(data_dir, "data folder") as lock:   # FolderBusy at once if another run holds it
        ...                                              # lock.stale: the record of a killed owner it took over
    with reading(checkpoint, "checkpoint folder"):       # shared: other readers may hold it too, no writer can
        ...

The lock file (`layout.lock_file`: `.<folder>.lock` beside the folder, so a checkpoint folder swapped in by
rename keeps it) holds the owner's pid, host, start time and command, for the one-line message a second
writer gets. The kernel releases an flock when its process dies, kill -9 included, so a lock left by a dead
run is free; its record (a pid no longer running) is reported as taken over. Released (and the file removed)
on exit, Ctrl-C and errors. Hand-written on fcntl: `filelock` truncates the file on every try, which would
erase the owner's record the message needs.

A writer's record is the file's one JSON line; each reader appends a line of its own (O_APPEND, one write),
so a refused writer names the readers still running. A reader never waits: a folder being written is
refused at once, like a second writer. A process that writes a folder may read it too (training evaluates
its own checkpoint): a shared lock inside its own exclusive one is a no-op.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import socket
import sys
import time
from pathlib import Path
from typing import Any

from lanbot.core.errors import LanbotError
from lanbot.core.files import io_error, link_refused
from lanbot.core.layout import lock_file


class FolderBusy(LanbotError, RuntimeError):
    """Another run is writing (or reading) the folder; the message names it (pid, host, command) and what to do."""


SHARED_RETRY_S = 1.0  # a reader refused by readers alone retries this long: the last reader to leave holds the
# lock exclusively for the instant it takes to remove the file (release), which is no real conflict
_EXCLUSIVE: set[Path] = set()  # lock files this process holds exclusively (a nested shared lock is a no-op)


def _record(shared: bool = False) -> dict[str, Any]:
    from lanbot.core.secrets import redact  # the command line is written to disk: no secret values in it

    argv = getattr(sys, "orig_argv", None) or [sys.executable, *sys.argv]
    record = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
              "command": redact(" ".join(argv))}
    return {**record, "mode": "shared"} if shared else record


def _records(fd: int) -> list[dict[str, Any]]:
    """Every record in the lock file (a writer's one line, or one line per reader); unreadable lines skipped."""
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        data = os.read(fd, 65536)  # a record is ~200 bytes: 64 KB holds hundreds of readers
    except OSError:
        return []
    records = []
    for line in data.splitlines():
        try:
            value = json.loads(line)
        except ValueError:
            continue
        if isinstance(value, dict):
            records.append(value)
    return records


def _read(fd: int) -> dict[str, Any] | None:
    """The writer's record (the last record that is not a reader's), or None."""
    writers = [r for r in _records(fd) if r.get("mode") != "shared"]
    return writers[-1] if writers else None


def _holders(fd: int) -> list[dict[str, Any]]:
    """The records of the runs that may hold the lock now: those whose pid still runs (another host's: kept),
    else the last record (the message then says its pid is gone)."""
    records = _records(fd)
    here = socket.gethostname()
    live = [r for r in records if r.get("host") != here or pid_alive(r.get("pid"))]
    return live or records[-1:]


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
    """A non-blocking lock on one folder for the life of a `with` block: exclusive (a writer), or `shared`
    (a reader, beside other readers)."""

    def __init__(self, folder: str | os.PathLike, what: str = "folder", shared: bool = False) -> None:
        self.folder = Path(folder)
        self.what = what
        self.shared = shared
        self.path = lock_file(self.folder)
        self.stale: dict[str, Any] | None = None  # the record of a dead owner this lock took over
        self._fd: int | None = None
        self._nested = False  # a shared lock inside this process's own exclusive one (or none could be made)
        self._read_only_fd = False  # a reader's lock file opened read-only: it adds no record

    def acquire(self) -> FolderLock:
        if self.shared and self.path in _EXCLUSIVE:
            self._nested = True
            return self
        if not self.shared:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise io_error("creating", self.path.parent, exc) from None
        flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC | (os.O_APPEND if self.shared else 0)
        deadline = time.monotonic() + SHARED_RETRY_S
        while True:
            try:
                fd = os.open(self.path, flags, 0o644)
            except OSError as exc:
                if self.shared and exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
                    fd = self._read_only()  # a folder this user may read but not write beside
                    if fd is None:
                        return self
                elif exc.errno == errno.ELOOP:  # a link planted where the lock file goes: never written through
                    raise link_refused(self.path) from None
                else:
                    raise io_error("creating the lock file", self.path, exc) from None
            try:
                fcntl.flock(fd, (fcntl.LOCK_SH if self.shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
            except BlockingIOError:
                holders = _holders(fd)
                os.close(fd)
                if self.shared and all(h.get("mode") == "shared" for h in holders) and time.monotonic() < deadline:
                    time.sleep(0.02)
                    continue
                raise self._busy(holders) from None
            try:  # the file may have been removed by the owner that released it while this one waited
                same = os.stat(self.path, follow_symlinks=False).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        try:
            if self.shared:  # one write with O_APPEND: readers starting together never overwrite each other's line
                if not self._read_only_fd:
                    os.write(fd, (json.dumps(_record(shared=True)) + "\n").encode("utf-8"))
            else:
                previous = _read(fd)
                if previous and previous.get("pid") != os.getpid():
                    self.stale = previous
                os.ftruncate(fd, 0)
                os.lseek(fd, 0, os.SEEK_SET)
                os.write(fd, (json.dumps(_record()) + "\n").encode("utf-8"))
        except OSError as exc:
            os.close(fd)
            raise io_error("writing the lock file", self.path, exc) from None
        self._fd = fd
        if not self.shared:
            _EXCLUSIVE.add(self.path)
        if self.stale is not None:
            print(f"[lock] took over the stale lock of {self.folder}: {describe(self.stale)} is no longer running",
                  file=sys.stderr)
        return self

    def _read_only(self) -> int | None:
        """A reader beside a folder it cannot write: the writer's lock file opened read-only (flock needs no write
        access; no record is added), or no lock at all where there is none (nobody writes there through lanbot
        as this user, and a lock file cannot be made)."""
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:
            self._nested = True  # released as a no-op
            return None
        self._read_only_fd = True
        return fd

    def _busy(self, holders: list[dict[str, Any]]) -> FolderBusy:
        """The one line for a refused lock: who holds the folder, reading or writing, and what to do."""
        here = socket.gethostname()
        reading = bool(holders) and all(h.get("mode") == "shared" for h in holders)
        owner = holders[-1] if holders else None
        orphan = bool(owner) and owner.get("host") == here and not pid_alive(owner.get("pid"))
        note = " (that pid is gone, but a process it started still holds the lock)" if orphan else ""
        runs = "; ".join(describe(h) for h in holders[-3:]) if holders else describe(None)
        more = f" and {len(holders) - 3} more" if len(holders) > 3 else ""
        pids = " ".join(str(h.get("pid")) for h in holders[-3:]) if holders else "<pid>"
        doing = "read" if reading else "written"
        elsewhere = ("point this run at another folder" if self.shared
                     else "write elsewhere with paths.root=<folder>")
        return FolderBusy(
            f"{self.what} {self.folder} is being {doing} by another lanbot run: {runs}{more}{note}. Wait for it to "
            f"finish or stop it (kill {pids}), then run again; or {elsewhere} (lock file {self.path})")

    def release(self) -> None:
        """Remove the lock file, then let go (a waiter that opened the old file sees it is gone and retries).
        A reader removes it only when it is the last one (it can take the lock exclusively)."""
        if self._nested:
            self._nested = False
            return
        if self._fd is None:
            return
        last = True
        if self.shared:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                last = False
        if last:
            with contextlib.suppress(OSError):
                self.path.unlink(missing_ok=True)
        _EXCLUSIVE.discard(self.path)
        os.close(self._fd)
        self._fd = None

    @property
    def held(self) -> bool:
        return self._fd is not None or self._nested

    def __enter__(self) -> FolderLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def reading(folder: str | os.PathLike, what: str = "folder") -> contextlib.AbstractContextManager[Any]:
    """A shared lock on `folder` while a run reads it, or nothing where the folder does not exist (the reader
    then reports it missing in its own words, and no lock file is made for a folder that is not there)."""
    return FolderLock(folder, what, shared=True) if Path(folder).is_dir() else contextlib.nullcontext()
