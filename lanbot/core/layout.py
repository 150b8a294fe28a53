"""The on-disk layout, owned here once: where each step reads and writes, and what its files are called.

Under `paths.root` (outputs/ by default):
    data/<identity>/                     <type>_conversations.jsonl, <type>_meta.jsonl, all_conversations.jsonl, stats.json,
                                         identity.json (whose folder it is)
    checkpoints/base/<corpus>/<model>/   the base every identity starts from: the same files, plus
                                         unigram.safetensors
    checkpoints/<identity>/<mix>/<model>/<stage>/
                                         model.safetensors, optimizer.pt, tokenizer.json, config.yaml, meta.json,
                                         eval.json, eval.partial.jsonl while an evaluation runs or was stopped
                                         (an older lanbot's model.pt / unigram.pt are still read)
    hub/datasets--<ns>--<name>/<commit>/ a Hub dataset repo's parquet rows as a data folder (data.from_hub)
    runs/<date>/<time>_<app>/            .hydra/, metrics.jsonl, summary.json, eval.json, wandb/ (`-2`, `-3`... after
                                         the name when another run started in the same second: config.claim_dir)
    multirun/<date>/<time>_<app>/<n>_<choices>/   the same, one folder per sweep job

A folder being written or read (a data folder, a checkpoint folder) has its lock file beside it:
`.<folder>.lock` (lanbot.core.lock: exclusive for generate and train's output, shared for what reads it). `<identity>` is `identity_slug(identity.name)`, unique per name.

A dataset repo that `lanbot.upload` pushes holds data/<type>-00000-of-00001.parquet (one row per
conversation, lanbot.sharing.hub_dataset), stats.json and README.md; an older lanbot pushed the data
folder's JSONL files as they are.

Every module asks here for a path or a file name; `CheckpointMeta` is meta.json, which writes and reads itself.
"""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lanbot.core.errors import LanbotError
from lanbot.core.identity import identity_slug

# the data folder
COMBINED_FILE = "all_conversations.jsonl"  # every type interleaved; what training reads by default
STATS_FILE = "stats.json"
OWNER_FILE = "identity.json"  # {"name": ...}: the identity whose data the folder holds
# a checkpoint folder
MODEL_FILE = "model.safetensors"  # the weights: safetensors, so loading a checkpoint never unpickles
LEGACY_MODEL_FILE = "model.pt"  # the weights as an older lanbot saved them (torch.save); read with weights_only
OPTIMIZER_FILE = "optimizer.pt"  # torch.save; only resuming a run reads it (weights_only)
TOKENIZER_FILE = "tokenizer.json"
CHAT_FORMAT_FILE = "chat_format.json"  # beside tokenizer.json for a model not in nanochat's format: its format and template
CONFIG_FILE = "config.yaml"  # the resolved config of the run that wrote it
META_FILE = "meta.json"
UNIGRAM_FILE = "unigram.safetensors"  # a base's token counts of its training rows (the unigram floor of val bpb)
LEGACY_UNIGRAM_FILE = "unigram.pt"  # the same, as an older lanbot saved them
EVAL_FILE = "eval.json"  # also in the run folder of the evaluation
EVAL_PARTIAL_FILE = "eval.partial.jsonl"  # the answers of an evaluation still running or stopped (lanbot.evaluation.partial)
CHECKPOINT_REQUIRED = (MODEL_FILE, TOKENIZER_FILE, CONFIG_FILE, META_FILE)
# a run folder
HYDRA_CONFIG = Path(".hydra") / "config.yaml"
METRICS_FILE = "metrics.jsonl"
SUMMARY_FILE = "summary.json"
ERROR_FILE = "error.txt"  # a sweep job that stopped on something to fix: its one line, for the sweep and compare
RUN_FILES = (METRICS_FILE, SUMMARY_FILE, EVAL_FILE, ERROR_FILE)  # .hydra/config.yaml and one of these: a run
REPORT_FILE = "report.md"  # lanbot.compare's report
UPLOAD_RECORD = "upload.json"  # what lanbot.upload pushed, in its run folder


class CheckpointError(LanbotError, FileNotFoundError):
    """A checkpoint that is missing or unreadable: the message names the command that makes it."""


# what to do about a checkpoint whose files are damaged (truncated, overwritten, hand-edited)
DAMAGED_FIX = ("move that checkpoint folder away and train it again with the lanbot.train command that made it, "
               "or point at another checkpoint")


def weights_file(directory: str | Path) -> Path | None:
    """A checkpoint's weights: model.safetensors, else an older checkpoint's model.pt; None if neither is there."""
    for name in (MODEL_FILE, LEGACY_MODEL_FILE):
        if (Path(directory) / name).is_file():
            return Path(directory) / name
    return None


def conversations_file(kind: str) -> str:
    """`identity` -> identity_conversations.jsonl (nanochat's CustomJSON: one JSON list of messages a line)."""
    return f"{kind}_conversations.jsonl"


def meta_file(kind: str) -> str:
    """`identity` -> identity_meta.jsonl: one line per conversation (persona, language, spend, ...)."""
    return f"{kind}_meta.jsonl"


def lock_file(directory: str | Path) -> Path:
    """`.<name>.lock` beside `directory`: it outlives the folder's swap by rename (an atomic checkpoint save)."""
    directory = Path(directory).absolute()
    return directory.parent / f".{directory.name}.lock"


HUB_DATA_DIR = "data"  # a dataset repo's folder of parquet files


def hub_data_file(kind: str) -> str:
    """`identity` -> data/identity-00000-of-00001.parquet: a type's rows in a dataset repo (the Hub's shard naming)."""
    return f"{HUB_DATA_DIR}/{kind}-00000-of-00001.parquet"


HUB_DATA_PATTERN = re.compile(r"^(?P<kind>.+)-(?P<shard>\d{5})-of-(?P<shards>\d{5})\.parquet$")  # a file of data/


def hub_data_dir(root: str | Path, repo_id: str, commit: str) -> Path:
    """`<root>/hub/datasets--<ns>--<name>/<commit>`: the data folder made from a dataset repo's parquet rows at
    one commit (made once; offline runs reuse it, as they reuse huggingface_hub's snapshot)."""
    return Path(root) / "hub" / f"datasets--{repo_id.replace('/', '--')}" / commit


HUB_PREFIX = "hf://"  # a checkpoint on the Hub: train.init_from=hf://namespace/name[@revision]


def is_hub_address(source: object) -> bool:
    """Whether `source` (a `train.init_from`) names a Hub repo, `hf://namespace/name[@revision]`, not a folder."""
    return isinstance(source, str) and source.startswith(HUB_PREFIX)


def data_from_hub(cfg: Any) -> str | None:
    """`data.from_hub`, the dataset repo a run trains on instead of `paths.data_dir`; None where it has none."""
    data = cfg.get("data")
    value = data.get("from_hub") if data is not None else None
    return str(value) if value else None


def base_dir(cfg: Any) -> Path:
    """`<paths.checkpoints>/base/<corpus.name>/<model.name>`: one base per corpus and model, shared by every identity."""
    return Path(cfg.paths.checkpoints) / "base" / str(cfg.corpus.name) / str(cfg.model.name)


def base_command(cfg: Any) -> str:
    """The command that pretrains the configured corpus and model's base."""
    return f"python -m lanbot.train stage=base corpus={cfg.corpus.name} model={cfg.model.name}{carried_overrides()}"


CARRIED_KEYS = ("paths.", "hydra.searchpath")  # where files are read and written, and where identities are found


def carried_overrides() -> str:
    """The running command's own overrides that a suggested command must keep, so that copying it reads and
    writes where this one did (`paths.root=/scratch/me`, a `hydra.searchpath` holding the identity), each quoted
    for the shell, with a leading space; empty outside a Hydra app."""
    import shlex

    try:
        from hydra.core.hydra_config import HydraConfig

        overrides = HydraConfig.get().overrides
        given = [*overrides.task, *overrides.hydra]  # hydra.* overrides are kept apart from the task's
    except ValueError:  # no Hydra app running (a config composed by lanbot.core.config)
        return ""
    kept = [o for o in given if o.lstrip("+~").split("=", 1)[0].startswith(CARRIED_KEYS)]
    return "".join(" " + shlex.quote(o) for o in kept)


def checkpoint_dir(cfg: Any, stage: str | None = None) -> Path:
    """`<paths.checkpoints>/<identity slug>/<mix.name>/<model.name>/<stage>` (stage=base: `base_dir`)."""
    if (stage or str(cfg.stage)) == "base":
        return base_dir(cfg)
    return (Path(cfg.paths.checkpoints) / identity_slug(cfg.identity.name) / str(cfg.mix.name) / str(cfg.model.name)
            / (stage or str(cfg.stage)))


def checkpoint_name(directory: str | Path, base: bool = False) -> str:
    """`<identity>/<mix>/<model>/<stage>`: the last four parts of a checkpoint folder, as people name it
    (a base: `base/<corpus>/<model>`)."""
    return "/".join(Path(directory).parts[-3 if base else -4:])


def train_command(cfg: Any, stage: str) -> str:
    """The command that makes the checkpoint of `stage` for this identity, mix and model."""
    if stage == "base":
        return base_command(cfg)
    return (f"python -m lanbot.train stage={stage} identity={identity_choice(cfg)} "
            f"mix={cfg.mix.name} model={cfg.model.name}{carried_overrides()}")


def identity_choice(cfg: Any) -> str:
    """What `identity=` takes for this identity: the config file Hydra composed (sage for conf/identity/sage.yaml),
    whose name need not be the folder's slug (`Zoë` lives in zo-c6a12698/); outside a Hydra app, the slug."""
    try:
        from hydra.core.hydra_config import HydraConfig

        choice = HydraConfig.get().runtime.choices.get("identity")
    except ValueError:  # no Hydra app running (a config composed by lanbot.core.config)
        choice = None
    return str(choice) if choice else identity_slug(cfg.identity.name)


def find_checkpoint(cfg: Any, stage: str = "sft") -> Path:
    """The configured identity/mix/model checkpoint of `stage` if it exists, else the identity's newest."""
    configured = checkpoint_dir(cfg, stage)
    if CheckpointMeta.read(configured) is not None:
        return configured
    root = Path(cfg.paths.checkpoints) / identity_slug(cfg.identity.name)
    found = [p.parent for p in root.glob(f"*/*/{stage}/{META_FILE}")] if root.exists() else []
    if not found:
        raise CheckpointError(f"no {stage} checkpoint for identity {cfg.identity.name!r} under {root}: "
                          f"train one with `{train_command(cfg, stage)}`")
    return max(found, key=lambda p: (p / META_FILE).stat().st_mtime)


@dataclass
class CheckpointMeta:
    """meta.json: what a checkpoint is, how far its run got, and the tokenizer it must be loaded with.

    `tokenizer_sha256` and `tokenizer_from` (the checkpoint whose run trained the tokenizer) make sure a
    model is never loaded with another checkpoint's tokenizer. Keys this version does not know are kept
    in `extra`, so a newer lanbot's meta.json reads and writes back unchanged.
    """

    stage: str
    step: int = 0
    finished: bool = False
    identity: str | None = None
    identity_slug: str | None = None
    mix: str | None = None
    model: str | None = None
    optimizer: str | None = None
    precision: str | None = None  # bf16 | fp32: what the training steps computed in (train.precision resolved)
    model_config: dict[str, Any] = field(default_factory=dict)
    tokenizer_sha256: str | None = None
    tokenizer_from: str | None = None
    val_loss: float | None = None
    val_bpb: float | None = None
    val_losses: dict[str, float] = field(default_factory=dict)
    run_dir: str | None = None
    # a mid or sft checkpoint: the base it grew from ({dir, name, corpus, val_bpb, tokenizer_sha256}), or None
    base: dict[str, Any] | None = None
    # a base: its corpus (name, kind, each part's package and licence), the unigram floor of its val bpb,
    # the tokens it trained on and where its loader stood per rank ({rank: [epoch, rows taken]}) to resume
    corpus: dict[str, Any] | None = None
    unigram_bpb: float | None = None
    tokens_trained: int | None = None
    loader: dict[str, list[int]] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The JSON object: the fields, then `extra` at the top level."""
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "extra"}
        return {**data, **self.extra}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CheckpointMeta:
        known = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        return cls(**{k: v for k, v in data.items() if k in known},
                   extra={k: v for k, v in data.items() if k not in known})

    def get(self, key: str, default: Any = None) -> Any:
        """meta.get("stage"): a field or an extra key, for code that reads meta.json as a mapping."""
        value = self.to_dict().get(key, default)
        return default if value is None else value

    def keys(self) -> list[str]:  # with __getitem__: `{**meta}` and dict(meta) give meta.json's object
        return list(self.to_dict())

    def __getitem__(self, key: str) -> Any:
        data = self.to_dict()
        if key not in data:
            raise KeyError(key)
        return data[key]

    def write(self, directory: str | Path) -> Path:
        """`<directory>/meta.json`, atomically."""
        from lanbot.core.files import write_text_atomic

        path = Path(directory) / META_FILE
        write_text_atomic(path, json.dumps(self.to_dict(), indent=2, default=str))
        return path

    @classmethod
    def read(cls, directory: str | Path) -> CheckpointMeta | None:
        """meta.json of a checkpoint folder, None where there is none (a kill between renames is repaired)."""
        directory = Path(directory)
        if directory.parent.exists():
            recover(directory)
        path = directory / META_FILE
        if not path.is_file():
            return None
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(data, dict):
                raise ValueError(f"a JSON {type(data).__name__}, not an object")
            meta = cls.from_dict(data)
            if not isinstance(meta.stage, str) or not isinstance(meta.step, int) or not isinstance(
                    meta.model_config, dict):
                raise ValueError("stage, step or model_config has the wrong type")
        except (ValueError, TypeError) as exc:  # bad JSON, bad UTF-8, a missing stage
            raise CheckpointError(f"{path}: not a readable meta.json ({str(exc).splitlines()[0][:200]}); "
                                  f"{DAMAGED_FIX}") from None
        return meta


def recover(directory: Path) -> None:
    """A kill between the two renames of an atomic checkpoint save leaves only `.<name>.old-*`: put it back."""
    if not directory.exists():
        olds = sorted(directory.parent.glob(f".{directory.name}.old-*"), key=lambda p: p.stat().st_mtime)
        if olds:
            olds[-1].rename(directory)
