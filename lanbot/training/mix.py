"""Data mixes: which conversations midtraining and SFT see, and how often (the `mix` config group).

A mix lists, per stage (`mix.mid`, `mix.sft`), its sources. Each source is one of
- a generated type by name (`identity`, `tool_use`, ...): `<paths.data_dir>/<type>_conversations.jsonl`;
- a CustomJSON file: `{name: mine, path: my_conversations.jsonl}` (one JSON list of messages a line);
- general conversation bundled with the pretraining corpus: `chat: {corpus: chitchat}` (casual two-person
  conversations of the base's training split, so the model learns to talk, not only to recite);
- a Hugging Face dataset: `{name: smoltalk, hf: HuggingFaceTB/smol-smoltalk, format: smoltalk}`, read
  through `datasets`, from the hub or from a local copy given as `path` (a folder or parquet/jsonl files).
How much of it: `epochs: 2` (every training conversation twice; 0.5 = a seeded half; 0 = validation only)
or `weight: w` (weighted sources share one pass's worth of conversations in proportion to their weights).
`limit: N` keeps the first N rows (nanochat's `stop=`).

Every source gets a held-out validation split (seeded by the run seed and the source's name only, so the
same conversations are held out in every mix and stage) that is never trained on.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from lanbot.core.conversation import TYPES, BadLine, Conversation, merge_system, read_jsonl
from lanbot.core.errors import LanbotError
from lanbot.core.layout import carried_overrides, conversations_file
from lanbot.core.schemas import MixSource

HF_FORMATS = ("conversations", "smoltalk", "gsm8k", "mmlu")
SOURCE_KEYS = {"name"} | {f.name for f in fields(MixSource)}


class MixError(LanbotError, ValueError):
    """A mix that cannot be used: the message names the entry and the fix."""


@dataclass(init=False)
class Source(MixSource):
    """One entry of a stage's mix, checked: its name and the schema's settings (`Source("identity", epochs=2)`)."""

    name: str = ""

    def __init__(self, name: str, **settings: Any) -> None:
        super().__init__(**settings)
        self.name = name

    @property
    def generated(self) -> bool:
        return self.path is None and self.hf is None and self.corpus is None


@dataclass
class SourceData:
    """A loaded source: its training and held-out validation conversations."""

    source: Source
    train: list[Conversation] = field(default_factory=list)
    val: list[Conversation] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.source.name


def source_list(entries: Any) -> list:
    """A stage's sources as a list, each `{name, ...settings}` (the config keys them by name; a list is kept)."""
    if isinstance(entries, DictConfig | ListConfig):
        entries = OmegaConf.to_container(entries, resolve=True)
    if isinstance(entries, dict):
        return [{"name": name, **{k: v for k, v in (settings or {}).items() if v is not None}}
                for name, settings in entries.items()]
    return list(entries or [])


def parse_sources(entries: Any, where: str) -> list[Source]:
    """The checked sources of one stage (`where` = 'mix.mid' names the list in errors).

    `entries` maps each source's name to its settings (the config's form), or lists them with a `name`.
    """
    entries = source_list(entries)
    if not entries:
        raise MixError(f"{where} is empty: name at least one source, e.g. `identity: {{epochs: 2}}`")
    sources, seen = [], set()
    for i, entry in enumerate(entries):
        at = f"{where}[{i}]"
        if isinstance(entry, str):
            entry = {"name": entry, "epochs": 1}
        if not isinstance(entry, dict) or "name" not in entry:
            raise MixError(f"{at}: expected a mapping with a `name`, got {entry!r}")
        unknown = set(entry) - SOURCE_KEYS
        if unknown:
            raise MixError(f"{at} ({entry['name']}): unknown key(s) {sorted(unknown)}; allowed: {sorted(SOURCE_KEYS)}")
        src = Source(**{k: v for k, v in entry.items() if v is not None})
        if src.name in seen:
            raise MixError(f"{at}: source {src.name!r} is listed twice")
        seen.add(src.name)
        if (src.epochs is None) == (src.weight is None):
            raise MixError(f"{at} ({src.name}): give exactly one of `epochs` or `weight`")
        amount = src.epochs if src.epochs is not None else src.weight
        if not isinstance(amount, (int, float)) or amount < 0:
            key = "epochs" if src.epochs is not None else "weight"
            raise MixError(f"{at} ({src.name}): {key}={amount!r} must be a number >= 0 (0 = validation only)")
        if src.generated and src.name not in TYPES:
            raise MixError(
                f"{at}: unknown source {src.name!r}: not a generated type ({', '.join(TYPES)}); "
                "for other data give `path:` (a CustomJSON .jsonl) or `hf:` (a Hugging Face dataset id)"
            )
        if src.format not in HF_FORMATS:
            raise MixError(f"{at} ({src.name}): format={src.format!r}, expected one of {HF_FORMATS}")
        if src.limit is not None and (not isinstance(src.limit, int) or src.limit < 1):
            raise MixError(f"{at} ({src.name}): limit={src.limit!r} must be a positive integer or null")
        sources.append(src)
    return sources


def read_conversations(path: Path) -> list[Conversation]:
    """Conversations of a CustomJSON file; a bad line fails naming the file and line."""
    conversations = []
    try:
        for number, value in read_jsonl(path):
            try:
                conversations.append(to_conversation(value, "conversations"))
            except ValueError as exc:
                raise MixError(f"{path}:{number}: not a conversation ({exc}); expected a JSON list of messages") from exc
    except BadLine as exc:
        raise MixError(f"{exc}; expected a JSON list of messages") from exc
    return conversations


def load_source(src: Source, data_dir: Path, identity_slug: str, val_fraction: float = 0.02) -> list[Conversation]:
    """Every conversation of one source (before the validation split); `val_fraction` = the corpus's held-out share."""
    if src.corpus is not None:
        from lanbot.training.corpus import CorpusError, chat_conversations

        try:
            conversations = chat_conversations(src.corpus, val_fraction)
        except CorpusError as exc:
            raise MixError(f"source {src.name!r}: {exc}") from None
    elif src.generated:
        path = Path(data_dir) / conversations_file(src.name)
        if not Path(data_dir).is_dir():
            raise MixError(
                f"no data folder at {data_dir} for identity {identity_slug!r}: make it with "
                f"`python -m lanbot.generate identity={identity_slug}{carried_overrides()}`"
            )
        if not path.is_file():
            raise MixError(
                f"{path} is missing (source {src.name!r}): generate it with "
                f"`python -m lanbot.generate identity={identity_slug} data=all{carried_overrides()}`, or drop it from the mix"
            )
        conversations = read_conversations(path)
    elif src.hf is None:
        path = Path(src.path)  # type: ignore[arg-type]
        if not path.is_file():
            hint = (f"; it is a data folder's file: generate it with python -m lanbot.generate "
                    f"identity={path.parent.name}" if path.name == conversations_file(src.name) else "")
            raise MixError(f"source {src.name!r}: no file at {path} (path: a CustomJSON .jsonl file){hint}")
        conversations = read_conversations(path)
    else:
        conversations = [to_conversation(row, src.format) for row in _hf_rows(src)]
    if src.limit is not None:
        conversations = conversations[: src.limit]
    if not conversations:
        raise MixError(f"source {src.name!r} holds no conversations")
    return conversations


def _hf_rows(src: Source) -> Iterable[dict]:
    """Rows of a Hugging Face dataset: from `path` when given (no network), else from the hub by id."""
    import datasets  # imported here: only mixes with hf sources pay for it

    if src.path:
        path = Path(src.path)
        if not path.exists():
            raise MixError(f"source {src.name!r}: path {path} does not exist (a local copy of {src.hf})")
        if path.is_dir() and ((path / "dataset_info.json").exists() or (path / "state.json").exists()):
            ds = datasets.load_from_disk(str(path))
            ds = ds[src.split] if isinstance(ds, datasets.DatasetDict) else ds
        elif path.is_dir():
            ds = datasets.load_dataset(str(path), src.subset, split=src.split)
        else:
            builder = {".parquet": "parquet", ".jsonl": "json", ".json": "json", ".csv": "csv"}.get(path.suffix)
            if builder is None:
                raise MixError(f"source {src.name!r}: cannot read {path} (use .parquet, .jsonl, .csv or a folder)")
            ds = datasets.load_dataset(builder, data_files=str(path), split="train")
    else:
        try:
            ds = datasets.load_dataset(src.hf, src.subset, split=src.split)
        except Exception as exc:  # noqa: BLE001 (offline, missing, gated: all end the same way)
            raise MixError(
                f"source {src.name!r}: cannot load {src.hf} ({src.subset}, {src.split}) from the hub: {exc}; "
                "download it once and give its folder or files as `path:`"
            ) from exc
    if src.limit is not None:
        ds = ds.select(range(min(src.limit, len(ds))))
    return ds


def to_conversation(row: Any, fmt: str) -> Conversation:
    """One row of a dataset as a lanbot conversation (user first, alternating, assistant last)."""
    if fmt == "conversations" or fmt == "smoltalk":
        messages = row.get("messages") if isinstance(row, dict) else row
        if not isinstance(messages, list) or not messages:
            raise ValueError("no list of messages")
        messages = [{"role": m["role"], "content": m["content"]} for m in messages]
        messages = merge_system(messages)  # SmolTalk's optional system prompt, as nanochat folds it
        if messages[0]["role"] != "user" or messages[-1]["role"] != "assistant":
            raise ValueError("a conversation starts with the user and ends with the assistant")
        return messages
    if fmt == "gsm8k":
        return [{"role": "user", "content": row["question"]}, {"role": "assistant", "content": gsm8k_parts(row["answer"])}]
    if fmt == "mmlu":
        letters = "ABCDEFGHIJ"
        choices = "\n".join(f"{letters[i]}. {c}" for i, c in enumerate(row["choices"]))
        question = f"{row['question']}\n\n{choices}\n\nAnswer with the letter of the correct choice."
        return [{"role": "user", "content": question}, {"role": "assistant", "content": letters[int(row["answer"])]}]
    raise ValueError(f"unknown format {fmt!r}")


def gsm8k_parts(answer: str) -> list[dict[str, str]]:
    """A GSM8K answer with its `<<expr=result>>` annotations as calculator calls (python + python_output)."""
    parts: list[dict[str, str]] = []
    text = answer.replace("####", "Answer:")
    while "<<" in text and ">>" in text.split("<<", 1)[1]:
        before, rest = text.split("<<", 1)
        call, text = rest.split(">>", 1)
        expr, _, result = call.partition("=")
        if before:
            parts.append({"type": "text", "text": before})
        parts.append({"type": "python", "text": expr})
        parts.append({"type": "python_output", "text": result})
    if text:
        parts.append({"type": "text", "text": text})
    return parts


def split_validation(conversations: list[Conversation], name: str, seed: int, fraction: float,
                     minimum: int, maximum: int) -> tuple[list[Conversation], list[Conversation]]:
    """(train, val): a seeded share held out (at least `minimum`, at most `maximum`, always one left to train)."""
    count = min(maximum, max(minimum, round(fraction * len(conversations))), len(conversations) - 1)
    order = list(range(len(conversations)))
    random.Random(f"{seed}:val:{name}").shuffle(order)
    held = set(order[: max(count, 0)])
    train = [c for i, c in enumerate(conversations) if i not in held]
    val = [conversations[i] for i in sorted(held)]
    return train, val


def stage_entries(mix: Any, stage: str) -> tuple[Any, str]:
    """(the sources a stage trains on, the key they are listed under): `sft: null` means mid's, and every
    generated type the stage does not name joins at `generated_epochs` (so a new type needs no mix file)."""
    own = mix.get(stage)
    entries, listed = (own, stage) if own is not None or stage == "mid" else (mix.get("mid"), "mid")
    extra = mix.get("generated_epochs")
    if entries is None or extra is None:
        return entries, listed
    named = {e["name"] for e in source_list(entries)}
    return [*source_list(entries), *({"name": k, "epochs": extra} for k in TYPES if k not in named)], listed


def load_mix(cfg: DictConfig, stage: str, data_dir: Path) -> list[SourceData]:
    """The sources of `mix.<stage>`, loaded and split into train and validation."""
    from lanbot.core.identity import slug

    entries, listed = stage_entries(cfg.mix, stage)
    sources = parse_sources(entries, f"mix.{listed} (mix={cfg.mix.name})")
    val = cfg.train.val
    loaded = []
    for src in sources:
        corpus = cfg.get("corpus") or {}
        conversations = load_source(src, data_dir, slug(cfg.identity.name), float(corpus.get("val_fraction", 0.02)))
        train, held = split_validation(conversations, src.name, int(cfg.seed), float(val.fraction),
                                       int(val.min_conversations), int(val.max_conversations))
        loaded.append(SourceData(src, train, held))
    return loaded


def draw_counts(sources: list[SourceData]) -> dict[str, int]:
    """Conversations each source contributes to one pass of the mixture."""
    counts = {s.name: round(float(s.source.epochs) * len(s.train)) for s in sources if s.source.epochs is not None}
    weighted = [s for s in sources if s.source.weight is not None]
    total_weight = sum(float(s.source.weight) for s in weighted)
    budget = sum(len(s.train) for s in weighted)  # one pass's worth, shared out by weight
    for s in weighted:
        counts[s.name] = round(budget * float(s.source.weight) / total_weight) if total_weight else 0
    return counts


def mixture(sources: list[SourceData], seed: int, epoch: int = 0) -> list[tuple[int, Conversation]]:
    """One pass of the mixture, shuffled: (source index, conversation) pairs; `epoch` reseeds it."""
    counts = draw_counts(sources)
    rng = random.Random(f"{seed}:mix:{epoch}")
    drawn: list[tuple[int, Conversation]] = []
    for index, s in enumerate(sources):
        want, n = counts[s.name], len(s.train)
        whole, rest = divmod(want, n) if n else (0, 0)
        picks = list(range(n)) * whole + rng.sample(range(n), rest)
        drawn.extend((index, s.train[i]) for i in picks)
    rng.shuffle(drawn)
    return drawn


def conversation_text(conversation: Conversation) -> str:
    """The plain text of a conversation (every message and part), for training the tokenizer."""
    chunks = []
    for message in conversation:
        content = message["content"]
        chunks.extend([content] if isinstance(content, str) else [p.get("text", "") for p in content])
    return "\n".join(chunks)
