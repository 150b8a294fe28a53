"""An identity's data folder, written append-and-resume: what `python -m lanbot.generate` keeps on disk.

    folder = DataFolder(Path(cfg.paths.data_dir), ["identity", "tool_use"])
    if folder.add("identity", conversation, meta):   # False: an exact or near duplicate, dropped
        ...
    folder.finalize()                                 # all_conversations.jsonl, atomically
    folder.close()

Layout of `<paths.data_dir>/`: `<type>_conversations.jsonl` (one conversation per line, nanochat's
CustomJSON form), a sidecar `<type>_meta.jsonl` holding line for line what wrote each conversation
(persona, language, opening, phrasing, turns, ...), `all_conversations.jsonl` (every type interleaved,
what training reads) and `stats.json` (lanbot.generation.stats).

Every line is flushed as it is written, so a killed run keeps everything up to the line it was writing;
opening the folder again cuts a torn last line and realigns the sidecar, and the dedup keys of what is
on disk make the next run skip what it already has. `overwrite=True` starts afresh.

One writer at a time: opening takes the folder's lock (lanbot.core.lock; a second writer stops at once,
naming the first) and, holding it, removes the temp files of killed runs. `identity.json` records whose
data the folder holds: another identity's folder is refused, naming both. A line that cannot be read (not
JSON, not a conversation, torn) is cut like a torn line, its sidecar line with it, and a sidecar line that is
not a JSON object is replaced by `{"recovered": true}`; `repairs` counts both, for the run's report.
"""

from __future__ import annotations

import heapq
import json
import os
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from lanbot.core.conversation import TYPES, dedup_key, validate
from lanbot.core.errors import LanbotError
from lanbot.core.files import (
    FileIOError,
    atomic_path,
    check_not_link,
    io_error,
    make_dirs,
    open_no_follow,
    remove_stale_temps,
    temp_name_of,
    write_json_atomic,
)
from lanbot.core.layout import COMBINED_FILE, OWNER_FILE, STATS_FILE, conversations_file, meta_file
from lanbot.core.lock import FolderLock
from lanbot.core.secrets import check_no_secret, known_secrets


class DataFolderError(LanbotError, RuntimeError):
    """The data folder cannot be used (unwritable, another identity's, or a file in it is not lanbot's); says
    how to fix it."""


# every file lanbot writes in a data folder (each refused where it is a link)
WRITTEN = (COMBINED_FILE, STATS_FILE, OWNER_FILE, *(f(k) for k in TYPES for f in (conversations_file, meta_file)))
# temp files a killed run leaves (atomic writes of the folder's own files, the writability probe)
STALE_TEMPS = (temp_name_of(COMBINED_FILE), temp_name_of(STATS_FILE), temp_name_of(OWNER_FILE), ".write-test-*")


def folder_owner(root: Path) -> str | None:
    """The identity name whose data `root` holds (identity.json, else stats.json of older folders), or None."""
    for name, key in ((OWNER_FILE, "name"), (STATS_FILE, "identity")):
        path = Path(root) / name
        if not path.is_file():
            continue
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            if name == OWNER_FILE:
                raise DataFolderError(f"{path}: not lanbot's identity record (a JSON object with the identity's "
                                      "name); delete it and run again, which writes it afresh") from None
            continue
        if isinstance(data, dict) and isinstance(data.get(key), str):
            return data[key]
    return None


def check_owner(root: Path, identity: str, source: str | None = None) -> None:
    """Refuse a data folder that holds another identity's data, naming both (and `source`: where it came from)."""
    owner = folder_owner(root)
    if owner is not None and owner != identity and source is not None:
        raise DataFolderError(
            f"{source} holds the data of identity {owner!r}, not of {identity!r} (its rows' identity column; "
            f"copy in {root}): train {owner!r} on it, or give {identity!r}'s own dataset repo")
    if owner is not None and owner != identity:
        raise DataFolderError(
            f"{root} holds the data of identity {owner!r}, not of {identity!r}: each identity has a folder of its "
            f"own; point paths.data_dir at another folder for {identity!r}, or delete {root} if {owner!r}'s data "
            "is no longer wanted")


class DataFolder:
    """An identity's data folder, written append-and-resume, by one writer at a time."""

    def __init__(self, root: Path, kinds: Sequence[str], overwrite: bool = False, identity: str | None = None) -> None:
        self.root = Path(root)
        self.kinds = list(dict.fromkeys(kinds))
        unknown = [k for k in self.kinds if k not in TYPES]
        if unknown:
            raise DataFolderError(f"unknown conversation type(s) {unknown}; the types are {', '.join(TYPES)}")
        self._files: dict[str, Any] = {}
        self._meta_files: dict[str, Any] = {}
        self.repairs: dict[str, dict[str, int]] = {}  # {type: {"lines_cut": n, "sidecar_replaced": m}}
        self.removed_temps: list[Path] = []
        self._lock = FolderLock(self.root, "data folder")
        self._mkdir()
        self._lock.acquire()
        try:
            self._open(overwrite, identity)
        except BaseException:
            self._lock.release()
            raise

    # ---- opening ------------------------------------------------------------------------------------

    def _open(self, overwrite: bool, identity: str | None) -> None:
        self._make_writable()
        self.removed_temps = remove_stale_temps(self.root, STALE_TEMPS)
        for name in WRITTEN:  # before anything is written: no file of ours is a link (into another identity's data)
            check_not_link(self.root / name)
        if identity is not None:
            check_owner(self.root, identity)
        if overwrite:
            self._clear()
        if identity is not None and not (self.root / OWNER_FILE).is_file():
            write_json_atomic(self.root / OWNER_FILE, {"name": identity})
        self._secrets = known_secrets()
        self._keys: set[bytes] = set()
        self._counts: dict[str, int] = {}
        self._last_meta: dict[str, dict | None] = {}
        self._duplicates: Counter[str] = Counter()
        for kind in TYPES:  # dedup across the whole folder, whatever types this run writes
            if (self.root / conversations_file(kind)).exists() or kind in self.kinds:
                self._load(kind)

    def _mkdir(self) -> None:
        try:
            make_dirs(self.root)
        except FileIOError as exc:
            raise DataFolderError(f"cannot write the data folder {self.root}: {str(exc).split('; ')[0]}. Point it "
                                  "somewhere writable with paths.root=<folder> (or paths.data_dir=<folder>).") from None

    def _make_writable(self) -> None:
        probe = self.root / f".write-test-{os.getpid()}"
        try:  # O_EXCL: a file (or link) already there is never written through
            probe.unlink(missing_ok=True)
            os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644))
            probe.unlink()
        except OSError as exc:
            raise DataFolderError(
                f"cannot write the data folder {self.root}: {exc.strerror or exc}. Point it somewhere writable "
                "with paths.root=<folder> (or paths.data_dir=<folder>)."
            ) from None

    def _clear(self) -> None:
        """Remove every file lanbot writes here (not the folder, nor files that are not lanbot's)."""
        for name in WRITTEN:
            try:
                (self.root / name).unlink(missing_ok=True)
            except OSError as exc:
                raise io_error("removing", self.root / name, exc) from None

    def _load(self, kind: str) -> None:
        """Cut torn and unreadable lines, realign the sidecar with the conversations, and read the dedup keys."""
        path, meta_path = self.root / conversations_file(kind), self.root / meta_file(kind)
        try:
            cut = int(_cut_torn_line(path))
            bad = _unreadable_lines(path)
            if bad:
                _drop_lines(path, bad)
                _drop_lines(meta_path, bad)
            cut += len(bad)
            n = 0
            if path.exists():
                with path.open("rb") as f:
                    for line in f:
                        self._keys.add(dedup_key(json.loads(line)))
                        n += 1
            self._counts[kind] = n
            self._last_meta[kind], replaced = _align_sidecar(meta_path, n)
        except FileIOError:
            raise
        except OSError as exc:
            raise io_error("repairing", path, exc) from None
        if cut or replaced:
            self.repairs[kind] = {"lines_cut": cut, "sidecar_replaced": replaced}

    # ---- the contract -------------------------------------------------------------------------------

    def count(self, kind: str) -> int:
        """Conversations of `kind` on disk now."""
        return self._counts.get(kind, 0)

    def duplicates(self, kind: str) -> int:
        """Duplicates of `kind` dropped this run."""
        return self._duplicates[kind]

    def last_meta(self, kind: str) -> dict | None:
        """The meta of the last `kind` conversation on disk (where a resumed writer picks up), or None."""
        return self._last_meta.get(kind)

    def present(self) -> list[str]:
        """The types with a conversation file in the folder, in TYPES order."""
        return [k for k in TYPES if self._counts.get(k) or (self.root / conversations_file(k)).exists()]

    def add(self, kind: str, conversation: list[dict], meta: dict) -> bool:
        """Append one conversation (and its meta) unless it duplicates one in the folder; False = dropped.

        Does not validate: callers run `lanbot.core.conversation.validate` first.
        """
        key = dedup_key(conversation)
        if key in self._keys:
            self._duplicates[kind] += 1
            return False
        path = self.root / conversations_file(kind)
        if kind not in self._files:
            if kind not in TYPES:
                raise DataFolderError(f"unknown conversation type {kind!r}; the types are {', '.join(TYPES)}")
            self._counts.setdefault(kind, 0)
            try:
                self._files[kind] = open_no_follow(path, "a")
                self._meta_files[kind] = open_no_follow(self.root / meta_file(kind), "a")
            except OSError as exc:
                raise io_error("opening", path, exc) from None
        side_line, line = json.dumps(meta, ensure_ascii=False) + "\n", json.dumps(conversation, ensure_ascii=False) + "\n"
        check_no_secret(side_line, self.root / meta_file(kind), self._secrets)
        check_no_secret(line, path, self._secrets)
        self._keys.add(key)
        out, side = self._files[kind], self._meta_files[kind]
        try:
            side.write(side_line)
            out.write(line)
            side.flush()  # the sidecar first: a kill between the two leaves it one line ahead, which _load trims
            out.flush()
        except OSError as exc:
            raise io_error("appending to", path, exc) from None
        self._counts[kind] += 1
        self._last_meta[kind] = meta
        return True

    def rewrite(self, kind: str, conversations: list[Any], metas: list[dict]) -> None:
        """Replace a type's conversations and meta line for line (a later pass such as distillation rewrote some),
        each file atomically; the count stays and an append afterwards opens the new files."""
        if len(conversations) != len(metas):
            raise DataFolderError(f"{kind}: {len(conversations)} conversations but {len(metas)} meta lines")
        for files in (self._files, self._meta_files):
            if kind in files:
                files.pop(kind).close()
        for path, rows in ((self.root / meta_file(kind), metas), (self.root / conversations_file(kind), conversations)):
            text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
            check_no_secret(text, path, self._secrets)
            try:
                with atomic_path(path) as tmp:
                    tmp.write_text(text, encoding="utf-8")
            except OSError as exc:
                raise io_error("writing", path, exc) from None

    def finalize(self) -> Path:
        """Write all_conversations.jsonl (every type file in the folder, interleaved) atomically; return it.

        Streaming: each type's lines are spread evenly over the combined file (line i of n at (i+0.5)/n),
        merged from the open files, so memory stays flat however many conversations there are.
        """
        for f in self._files.values():
            f.flush()
        kinds = self.present()
        target = self.root / COMBINED_FILE
        handles = [(self.root / conversations_file(k)).open("r", encoding="utf-8") for k in kinds]
        try:
            streams = [_positioned(h, self.count(k), rank) for rank, (k, h) in enumerate(zip(kinds, handles, strict=True))]
            with atomic_path(target) as tmp, tmp.open("w", encoding="utf-8") as out:
                for _, _, line in heapq.merge(*streams):
                    out.write(line)
        except FileIOError:
            raise
        except OSError as exc:
            raise io_error("writing", target, exc) from None
        finally:
            for h in handles:
                h.close()
        return target

    def close(self, quiet: bool = False) -> None:
        """Close the files and release the folder's lock (`quiet`: unwinding an error already raised, which a
        second failure to flush the same full disk must not hide)."""
        try:
            for f in [*self._files.values(), *self._meta_files.values()]:
                try:
                    f.close()
                except OSError as exc:  # the last buffered bytes could not be written (a full disk)
                    if not quiet:
                        raise io_error("writing", f.name, exc) from None
        finally:
            self._files.clear()
            self._meta_files.clear()
            self._lock.release()

    def __enter__(self) -> DataFolder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close(quiet=exc[0] is not None)


def _positioned(lines: Iterator[str], n: int, rank: int) -> Iterator[tuple[float, int, str]]:
    """Each line with its place in the interleave: line i of n at (i + 0.5) / n, ties broken by type."""
    for i, line in enumerate(lines):
        yield (i + 0.5) / max(n, 1), rank, line if line.endswith("\n") else line + "\n"


def _cut_torn_line(path: Path) -> bool:
    """Truncate `path` after its last newline: a line cut short by a kill is dropped, whole lines kept.
    True where a line was cut."""
    if not path.exists() or path.stat().st_size == 0:
        return False
    with open_no_follow(path, "rb+") as f:
        size = f.seek(0, os.SEEK_END)
        f.seek(size - 1)
        if f.read(1) == b"\n":
            return False
        end = size
        while end > 0:  # read back in blocks until a newline is found
            start = max(0, end - 65536)
            f.seek(start)
            block = f.read(end - start)
            cut = block.rfind(b"\n")
            if cut >= 0:
                f.truncate(start + cut + 1)
                return True
            end = start
        f.truncate(0)
    return True


def _readable(line: bytes) -> bool:
    """A line that is a conversation (a JSON list of messages that passes the format's own rules)."""
    try:
        return not validate(json.loads(line))
    except (ValueError, TypeError, AttributeError):
        return False


def _unreadable_lines(path: Path) -> set[int]:
    """The 0-based indices of `path`'s lines that are not conversations."""
    if not path.exists():
        return set()
    with path.open("rb") as f:
        return {i for i, line in enumerate(f) if not _readable(line)}


def _drop_lines(path: Path, indices: set[int]) -> None:
    """Rewrite `path` (atomically, streaming) without the lines at `indices`."""
    if not path.exists():
        return
    with atomic_path(path) as tmp, path.open("rb") as src, tmp.open("wb") as out:
        for i, line in enumerate(src):
            if i not in indices:
                out.write(line)


def _align_sidecar(path: Path, n: int) -> tuple[dict | None, int]:
    """Make the sidecar hold exactly `n` lines, each a JSON object (cut extra or torn ones, pad missing ones,
    replace unreadable ones by {"recovered": true}); return the last and how many were replaced."""
    _cut_torn_line(path)
    kept, offset = 0, 0
    if path.exists():
        with path.open("rb") as f:
            for line in f:
                if kept == n:
                    break
                offset += len(line)
                kept += 1
        if path.stat().st_size > offset:
            with open_no_follow(path, "rb+") as f:
                f.truncate(offset)
    replaced = _replace_unreadable_meta(path)
    if kept < n:  # conversations written without their meta (the sidecar was removed by hand)
        with open_no_follow(path, "a") as f:
            f.write(RECOVERED * (n - kept))
        return {"recovered": True}, replaced
    return _last_line(path), replaced


def _last_line(path: Path) -> dict | None:
    """The last line of the sidecar as JSON (read back from the end: sidecars may be long)."""
    if not path.exists() or path.stat().st_size == 0:
        return None
    with path.open("rb") as f:
        end = f.seek(0, os.SEEK_END) - 1  # the final newline
        start = end
        while start > 0:
            step = min(start, 65536)
            f.seek(start - step)
            cut = f.read(step).rfind(b"\n")
            if cut >= 0:
                start = start - step + cut + 1
                break
            start -= step
        f.seek(max(start, 0))
        return json.loads(f.read())


RECOVERED = '{"recovered": true}\n'


def _meta_readable(line: bytes) -> bool:
    try:
        return isinstance(json.loads(line), dict)
    except ValueError:
        return False


def _replace_unreadable_meta(path: Path) -> int:
    """Replace every sidecar line that is not a JSON object by {"recovered": true}, keeping the alignment."""
    if not path.exists():
        return 0
    with path.open("rb") as f:
        bad = sum(not _meta_readable(line) for line in f)
    if bad:
        with atomic_path(path) as tmp, path.open("rb") as src, tmp.open("wb") as out:
            for line in src:
                out.write(line if _meta_readable(line) else RECOVERED.encode())
    return bad
