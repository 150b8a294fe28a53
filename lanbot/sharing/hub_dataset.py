"""A data folder as a Hub dataset and back: one parquet file per conversation type, a `messages` column per row.

Each row is one conversation: `id` (its dedup key in hex, stable across uploads), `type`, `identity` (the
identity's name), `language` (from the sidecar, null where it has none), `messages` (the conversation as
chat messages with tool calls, lanbot.core.conversation.to_messages, opened by the upload's policy system
message) and `meta` (its sidecar line, as JSON text). The dataset card declares one config per type plus `all` (every type, the default), so
`datasets.load_dataset(repo, "identity")` loads one type and the Hub's viewer shows each. `to_data_folder`
turns the files back into the JSONL data folder that training reads. File names are lanbot.core.layout's.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from lanbot.core.conversation import (
    SYSTEM_POLICIES,
    TYPES,
    dedup_key,
    from_messages,
    policy_system_message,
    read_jsonl,
    to_messages,
)
from lanbot.core.layout import (
    HUB_DATA_DIR,
    HUB_DATA_PATTERN,
    STATS_FILE,
    conversations_file,
    hub_data_file,
    lock_file,
    meta_file,
)

ALL_CONFIG = "all"  # the config with every type
_ARGUMENTS = {"object": pa.struct([("expression", pa.string())]), "string": pa.string()}


def schema(arguments: str = "object") -> pa.Schema:
    """The one schema of every file of an upload (so the `all` config reads the type files as one table), with
    a call's arguments in the form `arguments` (lanbot.core.conversation.ARGUMENT_FORMS)."""
    function = pa.struct([("name", pa.string()), ("arguments", _ARGUMENTS[arguments])])
    call = pa.struct([("id", pa.string()), ("type", pa.string()), ("function", function)])
    message = pa.struct([("role", pa.string()), ("content", pa.string()), ("tool_calls", pa.list_(call)),
                         ("tool_call_id", pa.string()), ("name", pa.string())])
    return pa.schema([
        ("id", pa.string()),
        ("type", pa.string()),
        ("identity", pa.string()),
        ("language", pa.string()),
        ("messages", pa.list_(message)),
        ("meta", pa.string()),
    ])


def rows(folder: Path, kind: str, identity: str, system: str | None = None, arguments: str = "object") -> pa.Table:
    """The rows of `<folder>/<kind>_conversations.jsonl` with their sidecar lines, each conversation's messages
    opened by the system message `system` (None: none) and its calls' arguments in the form `arguments`;
    ValueError naming file:line for a line that is not a conversation or has no one-to-one form as messages."""
    table_schema = schema(arguments)
    path = folder / conversations_file(kind)
    side = folder / meta_file(kind)
    sidecar = side.read_text(encoding="utf-8").splitlines() if side.is_file() else []
    out: dict[str, list[Any]] = {name: [] for name in table_schema.names}
    for index, (number, conversation) in enumerate(read_jsonl(path)):
        if not isinstance(conversation, list):
            raise ValueError(f"{path}:{number}: a conversation must be a JSON list of messages")
        try:
            messages = to_messages(conversation, system, arguments)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"{path}:{number}: {exc}") from None
        meta = sidecar[index] if index < len(sidecar) and sidecar[index].strip() else None
        try:
            language = (json.loads(meta) if meta else {}).get("language")
        except (ValueError, AttributeError):
            language = None
        out["id"].append(dedup_key(conversation).hex())
        out["type"].append(kind)
        out["identity"].append(identity)
        out["language"].append(language if isinstance(language, str) else None)
        out["messages"].append(messages)
        out["meta"].append(meta)
    return pa.table(out, schema=table_schema)


def parquet_bytes(table: pa.Table) -> bytes:
    """A table as the bytes of one parquet file."""
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    return sink.getvalue().to_pybytes()


def card_configs(kinds: list[str]) -> list[dict[str, Any]]:
    """The card's `configs:` (the Hub's data_files metadata): `all` (the default) and one per type."""
    every = {"config_name": ALL_CONFIG, "default": True,
             "data_files": [{"split": "train", "path": [hub_data_file(kind) for kind in kinds]}]}
    return [every, *({"config_name": kind, "data_files": [{"split": "train", "path": hub_data_file(kind)}]}
                     for kind in kinds)]


def hub_files(snapshot: Path) -> dict[str, list[Path]]:
    """The parquet files of a dataset repo's snapshot by type (shards in order); empty for an older repo."""
    found: dict[str, list[Path]] = {}
    for path in sorted((snapshot / HUB_DATA_DIR).glob("*.parquet")):
        match = HUB_DATA_PATTERN.match(path.name)
        if match:
            found.setdefault(match["kind"], []).append(path)
    return found


def policy_messages(identity: str | None) -> set[str]:
    """Every system message an upload's policy can have written for `identity`'s rows (what from_messages drops)."""
    return {policy_system_message(policy, identity or "") for policy in SYSTEM_POLICIES}


MAX_ROW_BYTES = 1 << 20  # one conversation's messages as JSON: a long one is a few KB; 1 MB bounds a hostile row


def _checked_rows(path: Path) -> Any:
    """The rows of one parquet file as {messages (a conversation), meta, identity}, each field checked;
    ValueError naming the file, the row and the field for anything that is not what lanbot.upload writes."""
    try:
        parquet = pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as exc:
        raise ValueError(f"{path.name}: not a readable parquet file ({' '.join(str(exc).split())[:120]})") from None
    names = parquet.schema_arrow.names
    if "messages" not in names:
        raise ValueError(f"{path.name}: no column messages (it has {', '.join(names) or 'none'}); a lanbot dataset "
                         "has id, type, identity, language, messages and meta")
    columns = [c for c in ("messages", "meta", "identity") if c in names]
    number = 0
    try:
        for batch in parquet.iter_batches(batch_size=256, columns=columns):
            for row in batch.to_pylist():
                number += 1
                messages, meta, owner = row.get("messages"), row.get("meta"), row.get("identity")
                if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
                    raise ValueError(f"column messages is a {type(messages).__name__}, not a list of messages")
                if meta is not None and not isinstance(meta, str) or owner is not None and not isinstance(owner, str):
                    raise ValueError("column meta or identity is not text")
                if len(json.dumps(messages, default=str)) > MAX_ROW_BYTES:
                    raise ValueError(f"column messages is past {MAX_ROW_BYTES >> 20} MB")
                conversation = from_messages(messages, policy_messages(owner))
                if conversation and conversation[0]["role"] == "system":  # lanbot's form has none to keep
                    raise ValueError(f"it opens with the system message {conversation[0]['content'][:80]!r}, not "
                                     "one lanbot.upload writes (\"\" or \"You are <identity>.\"); upload the data "
                                     "folder again")
                yield {"messages": conversation, "identity": owner,
                       "meta": meta if meta and meta.strip() and "\n" not in meta else '{"recovered": true}'}
    except (pa.ArrowException, OSError) as exc:
        raise ValueError(f"{path.name}: unreadable at row {number + 1} ({' '.join(str(exc).split())[:120]})") from None
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"{path.name}, row {number}: {exc}") from None


def to_data_folder(snapshot: Path, target: Path) -> Path:
    """The data folder (`<type>_conversations.jsonl`, sidecars, all_conversations.jsonl, stats.json) of a
    snapshot's parquet files, written beside `target` and renamed into place; an existing one is reused."""
    from lanbot.generation.datafolder import DataFolder  # the interleave of all_conversations.jsonl is its

    if target.is_dir():  # renamed into place whole, so complete
        return target
    files = hub_files(snapshot)
    unknown = sorted(set(files) - set(TYPES))
    if unknown:
        raise ValueError(f"types this lanbot does not know: {', '.join(unknown)} (it knows {', '.join(TYPES)})")
    kinds = [kind for kind in TYPES if kind in files]
    tmp = target.parent / f".{target.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    identity = None  # whose data it is: the rows say, and the folder records it (identity.json) as generate does
    try:
        for kind in kinds:
            owners: set[str] = set()
            with open(tmp / conversations_file(kind), "w", encoding="utf-8") as out, \
                    open(tmp / meta_file(kind), "w", encoding="utf-8") as side:
                for path in files[kind]:
                    for row in _checked_rows(path):
                        out.write(json.dumps(row["messages"], ensure_ascii=False) + "\n")
                        side.write(row["meta"] + "\n")
                        owners.update([row["identity"]] if row["identity"] else [])
            if len(owners | ({identity} if identity else set())) > 1:
                raise ValueError(f"{files[kind][0].name}: column identity holds the data of several identities "
                                 f"({', '.join(sorted(owners | {identity} - {None}))}); push one identity per repo")
            identity = identity or next(iter(owners), None)
        if (snapshot / STATS_FILE).is_file():
            shutil.copyfile(snapshot / STATS_FILE, tmp / STATS_FILE)
        with DataFolder(tmp, kinds, identity=identity) as folder:
            folder.finalize()
        try:
            tmp.rename(target)
        except OSError:  # another process made it first
            if not target.is_dir():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        lock_file(tmp).unlink(missing_ok=True)  # the temp folder's lock (DataFolder's), left beside it
    return target
