"""The answers an evaluation has sampled so far, kept beside the checkpoint so that Ctrl-C loses none of them
and the same evaluation run again goes on from them: `<checkpoint>/eval.partial.jsonl`.

One line per decoded group of probes, appended (one write each) as soon as the group is answered:
    {"key": <checkpoint and settings>, "group": g, "prompts": <digest of the group's prompts>, "answers": {...}}
A rerun reuses a group's answers only where all three match: the same checkpoint (meta.json, tokenizer and
weights file unchanged), the same sampling settings and device, and the same prompts in group g (decoded with
seed + g), so a resumed evaluation writes the answers an uninterrupted one would. Anything else in the file (a
half-written last line of a killed run, another checkpoint's or setting's lines) is passed over. Once eval.json
is written, this evaluation's lines are removed (the file with them, if nothing else is left in it).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from lanbot.core.files import io_error, write_text_atomic
from lanbot.core.layout import EVAL_PARTIAL_FILE, META_FILE, TOKENIZER_FILE, weights_file
from lanbot.evaluation.engine import Completion

MAX_PARTIAL_BYTES = 256 << 20  # 128 probes x 5 samples x 192 tokens is about 2 MB; past this the file is no one's
SETTINGS = ("samples", "temperature", "top_k", "max_tokens", "seed", "batch_rows")  # what changes the answers


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode("utf-8")).hexdigest()[:16]


def checkpoint_key(checkpoint: Path, settings: dict, device: str) -> str:
    """What the answers depend on: meta.json and tokenizer.json (their bytes), the weights file (size and mtime:
    a save replaces it whole) and the sampling settings."""
    weights = weights_file(checkpoint)
    stat = weights.stat() if weights is not None else None
    files = {name: hashlib.sha256((checkpoint / name).read_bytes()).hexdigest() if (checkpoint / name).is_file()
             else None for name in (META_FILE, TOKENIZER_FILE)}
    return _digest({"files": files, "weights": stat and [stat.st_size, stat.st_mtime_ns], "device": device,
                    "settings": {k: settings.get(k) for k in SETTINGS}})


def group_digest(group: list[str], prompts: dict[str, list[int]]) -> str:
    return _digest([[pid, prompts[pid]] for pid in group])


def _completion(data: dict) -> Completion:
    tokens, parts, finished = data["tokens"], data["parts"], data["finished"]
    if not (isinstance(tokens, list) and all(isinstance(t, int) for t in tokens) and isinstance(parts, list)
            and all(isinstance(p, dict) and isinstance(p.get("type"), str) and isinstance(p.get("text"), str)
                    for p in parts) and isinstance(finished, bool)):
        raise ValueError("not an answer")
    return Completion(tokens=tokens, parts=[{"type": p["type"], "text": p["text"]} for p in parts], finished=finished)


class PartialAnswers:
    """The answered groups of one evaluation (`key`), read from and appended to `<checkpoint>/eval.partial.jsonl`."""

    def __init__(self, checkpoint: Path, key: str) -> None:
        self.path = Path(checkpoint) / EVAL_PARTIAL_FILE
        self.key = key
        self.groups: dict[tuple[int, str], dict[str, list[Completion]]] = self.read()

    def read(self) -> dict[tuple[int, str], dict[str, list[Completion]]]:
        """{(group, prompts digest): {probe id: answers}} of this evaluation's lines in the file."""
        found: dict[tuple[int, str], dict[str, list[Completion]]] = {}
        if self.path.is_symlink() or not self.path.is_file():
            return found
        try:
            with open(self.path, "rb") as f:
                lines = f.read(MAX_PARTIAL_BYTES).splitlines()
        except OSError:
            return found
        for line in lines:
            try:
                row = json.loads(line)
                if row["key"] != self.key:
                    continue
                answers = {str(pid): [_completion(a) for a in samples] for pid, samples in row["answers"].items()}
                found[(int(row["group"]), str(row["prompts"]))] = answers
            except (ValueError, KeyError, TypeError, AttributeError):
                continue  # a half-written last line of a killed run, or not one of ours
        return found

    def get(self, group: int, digest: str) -> dict[str, list[Completion]] | None:
        return self.groups.get((group, digest))

    def add(self, group: int, digest: str, answers: dict[str, list[Completion]]) -> None:
        """Append one answered group, in one write (a reader never sees half of it unless the disk fills)."""
        from lanbot.core.secrets import check_no_secret

        row = {"key": self.key, "group": group, "prompts": digest,
               "answers": {pid: [{"tokens": a.tokens, "parts": a.parts, "finished": a.finished} for a in samples]
                           for pid, samples in answers.items()}}
        text = json.dumps(row, ensure_ascii=False) + "\n"
        check_no_secret(text, self.path)
        try:  # O_NOFOLLOW: never write through a link planted in the checkpoint folder
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o644)
            try:
                os.write(fd, text.encode("utf-8"))
            finally:
                os.close(fd)
        except OSError as exc:
            raise io_error("appending to", self.path, exc) from None
        self.groups[(group, digest)] = answers

    def answered(self, probe_ids: set[str]) -> int:
        """How many of `probe_ids` the file holds answers to (read again: what a reader would find now)."""
        return len(probe_ids & {pid for answers in self.read().values() for pid in answers})

    def finish(self) -> None:
        """Remove this evaluation's lines, now that eval.json holds its answers; the file goes if nothing is left."""
        if self.path.is_symlink() or not self.path.is_file():
            return
        try:
            with open(self.path, "rb") as f:
                lines = f.read(MAX_PARTIAL_BYTES + 1).splitlines(keepends=True)
            others = [line for line in lines if f'"key": "{self.key}"'.encode() not in line[:100]]
            if not others or len(b"".join(lines)) > MAX_PARTIAL_BYTES:
                self.path.unlink()
            elif len(others) < len(lines):
                write_text_atomic(self.path, b"".join(others).decode("utf-8", "replace"))
        except OSError as exc:
            raise io_error("removing the finished answers from", self.path, exc) from None
