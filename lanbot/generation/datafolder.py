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
"""

from __future__ import annotations

import heapq
import json
import os
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from lanbot.core.conversation import TYPES, dedup_key
from lanbot.core.errors import LanbotError
from lanbot.core.files import atomic_path
from lanbot.core.layout import COMBINED_FILE, STATS_FILE, conversations_file, meta_file


class DataFolderError(LanbotError, RuntimeError):
    """The data folder cannot be used (unwritable, or a file in it is not lanbot's JSONL); says how to fix it."""




class DataFolder:
    """An identity's data folder, written append-and-resume."""

    def __init__(self, root: Path, kinds: Sequence[str], overwrite: bool = False) -> None:
        self.root = Path(root)
        self.kinds = list(dict.fromkeys(kinds))
        unknown = [k for k in self.kinds if k not in TYPES]
        if unknown:
            raise DataFolderError(f"unknown conversation type(s) {unknown}; the types are {', '.join(TYPES)}")
        self._make_writable()
        if overwrite:
            self._clear()
        self._keys: set[bytes] = set()
        self._counts: dict[str, int] = {}
        self._last_meta: dict[str, dict | None] = {}
        self._duplicates: Counter[str] = Counter()
        for kind in TYPES:  # dedup across the whole folder, whatever types this run writes
            if (self.root / conversations_file(kind)).exists() or kind in self.kinds:
                self._load(kind)
        self._files: dict[str, Any] = {}
        self._meta_files: dict[str, Any] = {}

    # ---- opening ------------------------------------------------------------------------------------

    def _make_writable(self) -> None:
        probe = self.root / f".write-test-{os.getpid()}"
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            raise DataFolderError(
                f"cannot write the data folder {self.root}: {exc.strerror or exc}. Point it somewhere writable "
                "with paths.root=<folder> (or paths.data_dir=<folder>)."
            ) from None

    def _clear(self) -> None:
        """Remove every file lanbot writes here (not the folder, nor files that are not lanbot's)."""
        names = [COMBINED_FILE, STATS_FILE] + [f(k) for k in TYPES for f in (conversations_file, meta_file)]
        for name in names:
            (self.root / name).unlink(missing_ok=True)

    def _load(self, kind: str) -> None:
        """Cut torn last lines, realign the sidecar with the conversations, and read the dedup keys."""
        path, meta_path = self.root / conversations_file(kind), self.root / meta_file(kind)
        _cut_torn_line(path)
        n = 0
        if path.exists():
            with path.open("rb") as f:
                for number, line in enumerate(f, 1):
                    try:
                        self._keys.add(dedup_key(json.loads(line)))
                    except (ValueError, AttributeError, TypeError):
                        raise DataFolderError(
                            f"{path}:{number}: not a conversation (a JSON list of messages). Fix or delete that "
                            "line, or start afresh with data.overwrite=true."
                        ) from None
                    n += 1
        self._counts[kind] = n
        self._last_meta[kind] = _align_sidecar(meta_path, n)

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
        if kind not in self._files:
            if kind not in TYPES:
                raise DataFolderError(f"unknown conversation type {kind!r}; the types are {', '.join(TYPES)}")
            self._counts.setdefault(kind, 0)
            self._files[kind] = open(self.root / conversations_file(kind), "a", encoding="utf-8")
            self._meta_files[kind] = open(self.root / meta_file(kind), "a", encoding="utf-8")
        self._keys.add(key)
        out, side = self._files[kind], self._meta_files[kind]
        side.write(json.dumps(meta, ensure_ascii=False) + "\n")
        out.write(json.dumps(conversation, ensure_ascii=False) + "\n")
        side.flush()  # the sidecar first: a kill between the two leaves it one line ahead, which _load trims
        out.flush()
        self._counts[kind] += 1
        self._last_meta[kind] = meta
        return True

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
        except OSError as exc:
            raise DataFolderError(f"cannot write {target}: {exc.strerror or exc}") from None
        finally:
            for h in handles:
                h.close()
        return target

    def close(self) -> None:
        for f in [*self._files.values(), *self._meta_files.values()]:
            f.close()
        self._files.clear()
        self._meta_files.clear()

    def __enter__(self) -> DataFolder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _positioned(lines: Iterator[str], n: int, rank: int) -> Iterator[tuple[float, int, str]]:
    """Each line with its place in the interleave: line i of n at (i + 0.5) / n, ties broken by type."""
    for i, line in enumerate(lines):
        yield (i + 0.5) / max(n, 1), rank, line if line.endswith("\n") else line + "\n"


def _cut_torn_line(path: Path) -> None:
    """Truncate `path` after its last newline: a line cut short by a kill is dropped, whole lines kept."""
    if not path.exists() or path.stat().st_size == 0:
        return
    with path.open("rb+") as f:
        size = f.seek(0, os.SEEK_END)
        f.seek(size - 1)
        if f.read(1) == b"\n":
            return
        end = size
        while end > 0:  # read back in blocks until a newline is found
            start = max(0, end - 65536)
            f.seek(start)
            block = f.read(end - start)
            cut = block.rfind(b"\n")
            if cut >= 0:
                f.truncate(start + cut + 1)
                return
            end = start
        f.truncate(0)


def _align_sidecar(path: Path, n: int) -> dict | None:
    """Make the sidecar hold exactly `n` lines (cut extra or torn ones, pad missing ones); return the last."""
    _cut_torn_line(path)
    kept, last, offset = 0, None, 0
    if path.exists():
        with path.open("rb") as f:
            for line in f:
                if kept == n:
                    break
                offset += len(line)
                kept += 1
                last = line
        if path.stat().st_size > offset:
            with path.open("rb+") as f:
                f.truncate(offset)
    if kept < n:  # conversations written without their meta (the sidecar was removed by hand)
        with path.open("a", encoding="utf-8") as f:
            f.write('{"recovered": true}\n' * (n - kept))
        return {"recovered": True}
    try:
        return json.loads(last) if last else None
    except ValueError:
        return None
