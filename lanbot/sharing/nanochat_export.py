"""Write an identity's conversations as nanochat's `identity_conversations.jsonl`, or a trained model as a
nanochat checkpoint (`export.checkpoint=sft|mid|<folder>`: lanbot/sharing/nanochat_checkpoint.py does that).

    python -m lanbot.export.nanochat identity=sage
    python -m lanbot.export.nanochat identity=sage export.checkpoint=sft    # -> chatsft_checkpoints/d<n>/
    python -m lanbot.export.nanochat identity=sage export.types=[identity,reasoning,no_tool]
    python -m lanbot.export.nanochat identity=sage export.tool_calls=render export.overwrite=true

The file is for nanochat's CustomJSON task, through which nanochat's midtraining and SFT read
`<base dir>/identity_conversations.jsonl`: nanochat from 2025-10-21 up to 2026-07-03 (950a1dc deleted CustomJSON,
and with it the identity file, from its SFT) and its forks that keep it. CustomJSON takes each line as a JSON list of at
least 2 messages, roles alternating from user, every content a string. lanbot's tool-use conversations hold the assistant's calculator calls as a list of parts, which
CustomJSON refuses, so they are left out (`export.tool_calls=skip`, the default) or rendered into the text
as `<<expression=result>>` (`render`: GSM8K's calculator notation; plain text to nanochat, which does not
run it). The base dir is export.base_dir, else $NANOCHAT_BASE_DIR, else ~/.cache/nanochat, as in nanochat.
An existing file is never replaced without export.overwrite=true; the write is atomic.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from lanbot.core.conversation import TYPES, BadLine, read_jsonl, render_parts, role_problem
from lanbot.core.errors import LanbotError
from lanbot.core.files import atomic_path
from lanbot.core.identity import slug
from lanbot.core.layout import conversations_file
from lanbot.sharing.nanochat_versions import CUSTOMJSON_READERS

TOOL_CALL_CHOICES = ("skip", "render")


class ExportError(LanbotError, RuntimeError):
    """Bad input for an export; the message names the file and the fix."""


def nanochat_base_dir(configured: str | None = None) -> Path:
    """export.base_dir, else $NANOCHAT_BASE_DIR, else ~/.cache/nanochat (nanochat's own rule)."""
    if configured:
        return Path(configured).expanduser()
    if os.environ.get("NANOCHAT_BASE_DIR"):
        return Path(os.environ["NANOCHAT_BASE_DIR"]).expanduser()
    return Path.home() / ".cache" / "nanochat"


def customjson_problems(conversation: Any) -> list[str]:
    """What nanochat's CustomJSON would refuse in a conversation; empty when it loads as is."""
    if not isinstance(conversation, list) or len(conversation) < 2:
        return ["not a list of at least 2 messages"]
    problems = []
    for i, message in enumerate(conversation):
        if not isinstance(message, dict) or "role" not in message or "content" not in message:
            problems.append(f"message {i}: needs 'role' and 'content'")
            continue
        wrong = role_problem(i, message["role"])
        if wrong:
            problems.append(wrong)
        if not isinstance(message["content"], str):
            problems.append(f"message {i}: content is not a string")
    return problems


def to_nanochat(conversation: list[dict], tool_calls: str) -> list[dict[str, str]] | None:
    """The conversation with string contents only; None when it has tool calls and tool_calls='skip'."""
    out = []
    for message in conversation:
        content = message["content"]
        if not isinstance(content, str):
            if tool_calls == "skip":
                return None
            content = render_parts(content, calls="nanochat")
        out.append({"role": message["role"], "content": content})
    return out


def convert_file(path: Path, tool_calls: str) -> tuple[list[list[dict]], dict[str, int]]:
    """The CustomJSON-ready conversations of one JSONL file and its counts (read, kept, rendered, skipped)."""
    kept: list[list[dict]] = []
    counts = {"read": 0, "kept": 0, "rendered": 0, "skipped": 0}
    try:
        for number, conversation in read_jsonl(path):
            counts["read"] += 1
            has_parts = isinstance(conversation, list) and any(
                isinstance(m, dict) and isinstance(m.get("content"), list) for m in conversation
            )
            try:
                converted = to_nanochat(conversation, tool_calls)
            except (KeyError, TypeError, AttributeError) as exc:
                raise ExportError(f"{path}:{number}: not a lanbot conversation ({exc!r})") from exc
            if converted is None:
                counts["skipped"] += 1
                continue
            problems = customjson_problems(converted)
            if problems:
                raise ExportError(f"{path}:{number}: nanochat would refuse it: {'; '.join(problems)}")
            kept.append(converted)
            counts["kept"] += 1
            counts["rendered"] += int(has_parts)
    except BadLine as exc:
        raise ExportError(f"{exc}; regenerate the data folder") from exc
    return kept, counts


def export_nanochat(cfg: DictConfig) -> tuple[Path, dict[str, dict[str, int]]]:
    """Write the selected types' conversations into the nanochat base dir; returns the file and the counts."""
    export = cfg.export
    if export.tool_calls not in TOOL_CALL_CHOICES:
        raise ExportError(f"export.tool_calls={export.tool_calls!r}: choose skip or render")
    unknown = [t for t in export.types if t not in TYPES]
    if unknown or not export.types:
        raise ExportError(f"export.types: unknown {unknown or 'empty list'}; choose from {', '.join(TYPES)}")
    source = Path(export.source or cfg.paths.data_dir)
    missing = [conversations_file(t) for t in export.types if not (source / conversations_file(t)).is_file()]
    if missing:
        raise ExportError(
            f"{source} has no {', '.join(missing)}: generate it with "
            f"`python -m lanbot.generate identity={slug(cfg.identity.name)}` or set export.source"
        )
    target = nanochat_base_dir(export.base_dir) / str(export.file)
    if target.exists() and not export.overwrite:
        raise ExportError(f"{target} exists; add export.overwrite=true to replace it")
    conversations: list[list[dict]] = []
    counts: dict[str, dict[str, int]] = {}
    for kind in export.types:
        kept, counts[kind] = convert_file(source / conversations_file(kind), str(export.tool_calls))
        conversations.extend(kept)
    if not conversations:
        raise ExportError(f"nothing to export from {source} with export.tool_calls={export.tool_calls}")
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(target) as tmp, tmp.open("w", encoding="utf-8") as f:
        for conversation in conversations:
            f.write(json.dumps(conversation, ensure_ascii=False) + "\n")
    return target, counts


def report(target: Path, counts: dict[str, dict[str, int]], tool_calls: str) -> str:
    """The counts per type, and what happened to conversations with tool calls."""
    lines = [f"wrote {sum(c['kept'] for c in counts.values())} conversations to {target}"]
    for kind, c in counts.items():
        note = f", {c['skipped']} with tool calls left out" if c["skipped"] else ""
        note += f", {c['rendered']} with tool calls rendered as <<expr=result>>" if c["rendered"] else ""
        lines.append(f"  {kind:<16} {c['kept']:>6} of {c['read']}{note}")
    lines.append(f"tool calls: {tool_calls} (export.tool_calls=skip|render)")
    lines.append(f"read by {CUSTOMJSON_READERS}; nanochat since then reads no identity file")
    return "\n".join(lines)


def export_model(cfg: DictConfig) -> dict[str, Path]:
    """The checkpoint named by export.checkpoint (sft / mid of this identity, or a folder) in nanochat's layout."""
    from lanbot.core.layout import CheckpointError, find_checkpoint
    from lanbot.sharing.nanochat_checkpoint import NanochatCheckpointError, export_checkpoint

    export, name = cfg.export, str(cfg.export.checkpoint)
    try:
        folder = find_checkpoint(cfg, name) if name in ("mid", "sft") else Path(name).expanduser()
        return export_checkpoint(folder, nanochat_base_dir(export.base_dir), str(export.stage_dir),
                                 export.get("model_tag"), export.get("pad_vocab_to"), bool(export.overwrite))
    except (NanochatCheckpointError, CheckpointError) as exc:
        raise ExportError(f"export.checkpoint={name}: {exc}") from None


def export_app(cfg: DictConfig, run_dir: Path | None = None) -> Path:
    """`python -m lanbot.export.nanochat`: the identity's data as nanochat's CustomJSON, and what was left out;
    with export.checkpoint, a model in nanochat's checkpoint layout instead, and which nanochat loads it."""
    if cfg.export.get("checkpoint"):
        from lanbot.sharing.nanochat_checkpoint import STAGE_DIRS
        from lanbot.sharing.nanochat_versions import model_not_today

        files = export_model(cfg)
        tag_dir = files["model"].parent
        written = json.loads(files["meta"].read_text(encoding="utf-8"))["lanbot"]
        print(f"wrote {files['model']}, {files['meta'].name} and {files['tokenizer'].parent}/ (tokenizer.pkl, "
              f"token_bytes.pt), {written['architecture']}\n{written['loaded_by']} loads it with: "
              f"NANOCHAT_BASE_DIR={tag_dir.parent.parent} python -m scripts.chat_cli -i "
              f"{STAGE_DIRS[tag_dir.parent.name]} -g {tag_dir.name}")
        if model_not_today(written["architecture"]):
            print(model_not_today(written["architecture"]))
        return files["model"]
    target, counts = export_nanochat(cfg)
    print(report(target, counts, str(cfg.export.tool_calls)))
    return target
