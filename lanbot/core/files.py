"""Atomic writes: a temp file beside the target, renamed over it once complete, so a reader never sees half a
file and a failed write leaves the last good one. What lanbot writes gets a plain file's mode, not mkstemp's 0600.

Every text written here is first scanned for the values of known secrets (lanbot.core.secrets), and an
OSError becomes one line naming the operation and the file (`writing outputs/data/sage/stats.json: No space
left on device`). A killed run's temp files (`.<name>.<random>.tmp`) are removed by the next writer of the
same folder, which holds the folder's lock (`remove_stale_temps`).

No write follows a symbolic link planted in a folder lanbot writes (it could point at another identity's files,
or anything the user can write): `atomic_path` refuses a target that is a link, `open_no_follow` opens with
O_NOFOLLOW (and refuses anything but a regular file: a FIFO would block the run), and both say so in one
line naming the link (LinkRefused).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import stat
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from lanbot.core.errors import LanbotError


class FileIOError(LanbotError, OSError):
    """A disk or I/O error, named by what lanbot was doing and the file (full disk, no permission, ...)."""


class LinkRefused(FileIOError):
    """A file lanbot would write is a symbolic link (or not a regular file); nothing was written through it."""


def link_refused(path: str | os.PathLike, what: str = "a symbolic link") -> LinkRefused:
    target = ""
    if what == "a symbolic link":
        with contextlib.suppress(OSError):
            target = f" to {os.readlink(path)}"
    return LinkRefused(f"{path} is {what}{target}: lanbot never writes through a link or into a special file in "
                       f"its folders (it could be another identity's file); remove it (rm {path}) and run again")


def check_not_link(path: str | os.PathLike) -> None:
    """Refuse `path` where it is a symbolic link, a FIFO, socket or device (lstat: the link itself)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise io_error("checking", path, exc) from None
    if stat.S_ISLNK(st.st_mode):
        raise link_refused(path)
    if not stat.S_ISREG(st.st_mode) and not stat.S_ISDIR(st.st_mode):  # a folder: the write fails, named, on its own
        raise link_refused(path, "not a regular file")


def open_no_follow(path: str | os.PathLike, mode: str = "a") -> IO[Any]:
    """`open(path, mode)` for "a" (text, UTF-8), "ab" or "rb+" that never follows a link at `path` (O_NOFOLLOW)
    and opens only a regular file (O_NONBLOCK until checked: a FIFO planted there cannot block the run)."""
    flags = {"a": os.O_WRONLY | os.O_APPEND | os.O_CREAT, "ab": os.O_WRONLY | os.O_APPEND | os.O_CREAT,
             "rb+": os.O_RDWR}[mode]
    try:
        fd = os.open(path, flags | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, 0o666)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise link_refused(path) from None
        if exc.errno == errno.ENXIO:  # a FIFO nobody reads
            raise link_refused(path, "not a regular file") from None
        raise
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise link_refused(path, "not a regular file")
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
        return os.fdopen(fd, mode, encoding="utf-8") if "b" not in mode else os.fdopen(fd, mode)
    except BaseException:
        os.close(fd)
        raise


def io_error(operation: str, path: str | os.PathLike, exc: OSError) -> FileIOError:
    """`<operation> <path>: <reason>` as a FileIOError (the reason is the system's, e.g. No space left on device)."""
    return FileIOError(f"{operation} {path}: {exc.strerror or exc}{_fix(exc)}")


def _fix(exc: OSError) -> str:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return "; free some space (or point paths.root at a disk with room) and run the same command again"
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return "; make it writable or point paths.root at a folder you can write"
    return ""


def plain_mode(path: str | os.PathLike) -> None:
    """Give `path` the mode a plain open() would have given it (0666 less the umask)."""
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(path, 0o666 & ~mask)


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temp path beside `path`; when the block succeeds it replaces `path`, otherwise it is removed.
    A `path` that is a symbolic link is refused (LinkRefused) before anything is written.

    An OSError of the block or the rename is raised as FileIOError naming `path`."""
    path = Path(path)
    check_not_link(path)  # os.replace would swap the link itself; a planted link is refused, not silently dropped
    try:
        fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise io_error("writing", path, exc) from None
    os.close(fd)
    tmp = Path(name)
    try:
        try:
            yield tmp
            plain_mode(tmp)
            os.replace(tmp, path)
        except FileIOError:
            raise
        except OSError as exc:
            raise io_error("writing", path, exc) from None
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)  # gone already after the rename


def make_dirs(path: str | os.PathLike) -> Path:
    """`path` and its parents, an OSError named (`creating <path>: ...`)."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise io_error("creating", path, exc) from None
    return path


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write `text` (UTF-8) to `path` atomically, making its folder if needed; refuses a text holding a secret."""
    from lanbot.core.secrets import check_no_secret

    check_no_secret(text, path)
    make_dirs(Path(path).parent)
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json_atomic(path: str | os.PathLike, data: Any) -> None:
    """Write `data` as indented JSON to `path` atomically (values JSON cannot hold are written as strings)."""
    write_text_atomic(path, json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")


def temp_name_of(name: str) -> str:
    """The glob of the temp files `atomic_path` makes for the file `name`."""
    return f".{name}.*.tmp"


def remove_stale_temps(directory: str | os.PathLike, patterns: Iterable[str]) -> list[Path]:
    """Remove what matches `patterns` in `directory` (temps of killed runs); call only holding its lock."""
    removed = []
    directory = Path(directory)
    if not directory.is_dir():
        return removed
    for pattern in patterns:
        for path in directory.glob(pattern):
            try:
                if path.is_dir() and not path.is_symlink():
                    import shutil

                    shutil.rmtree(path)
                else:
                    path.unlink()
            except OSError as exc:
                raise io_error("removing the leftover temp file", path, exc) from None
            removed.append(path)
    return removed
