"""Push an identity's data folder, or a run's checkpoint, to the Hugging Face Hub with a generated card.

A data folder goes up as a Hub dataset: one parquet file of rows per type (lanbot.sharing.hub_dataset) with
a card that declares one config per type plus `all`; a checkpoint as its model.safetensors and text files.

    python -m lanbot.upload identity=sage upload.repo_id=you/sage-data              # dataset repo
    python -m lanbot.upload identity=sage upload.what=checkpoint upload.repo_id=you/sage-d4
    python -m lanbot.upload identity=sage upload.repo_id=you/sage-data upload.dry_run=true

Everything is checked locally first (repo id, folder, files, JSON lines); then the repo is created if
missing (private unless upload.private=false) and every file plus README.md goes up in ONE commit, which
the Hub applies whole or not at all. Only after it succeeds is `upload.json` written to the run folder.
The token comes from HF_TOKEN or `hf auth login` (see lanbot.sharing.hub) and is never written anywhere.
The folder is held with a shared lock from planning to the commit (lanbot.core.lock): a retrain or a generate
writing it refuses the upload, naming that run, so a commit never holds new weights beside an old card.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from lanbot.core.conversation import (
    ARGUMENT_FORMS,
    SYSTEM_POLICIES,
    TYPES,
    BadLine,
    policy_system_message,
    read_jsonl,
)
from lanbot.core.errors import LanbotError
from lanbot.core.files import write_json_atomic
from lanbot.core.identity import slug, to_identity
from lanbot.core.layout import (
    CHECKPOINT_REQUIRED,
    COMBINED_FILE,
    CONFIG_FILE,
    EVAL_FILE,
    HUB_DATA_DIR,
    LEGACY_MODEL_FILE,
    META_FILE,
    MODEL_FILE,
    OPTIMIZER_FILE,
    STATS_FILE,
    SUMMARY_FILE,
    UPLOAD_RECORD,
    CheckpointMeta,
    conversations_file,
    find_checkpoint,
    hub_data_file,
    meta_file,
    weights_file,
)
from lanbot.core.lock import reading
from lanbot.core.secrets import find_secret_in_bytes, find_secret_in_file, known_secrets, leak_error
from lanbot.sharing import cards, hub, hub_dataset
from lanbot.sharing.portable import portable_config, portable_json

# a data upload stands for every data file in the repo: its parquet files, and an older lanbot's JSONL
DATA_REPLACES = (f"{HUB_DATA_DIR}/*.parquet", conversations_file("*"), meta_file("*"))


class UploadError(LanbotError, RuntimeError):
    """Bad input for an upload, found before anything is sent."""


@dataclass
class UploadPlan:
    """What goes where: repo, its type, and each path in the repo with its local source (or bytes)."""

    repo_id: str
    repo_type: str
    files: dict[str, Path | bytes]
    private: bool
    message: str
    revision: str | None = None
    notes: dict[str, str] = field(default_factory=dict)  # where a file given as bytes comes from, for describe
    replaces: tuple[str, ...] = ()  # globs of the repo's files this upload stands for (stale ones are deleted)


def _count_lines(path: Path) -> int:
    """Conversations in a JSONL file; a line that is not a JSON list raises UploadError naming file:line."""
    n = 0
    try:
        for number, value in read_jsonl(path):
            if not isinstance(value, list):
                raise UploadError(f"{path}:{number}: a conversation must be a JSON list of messages")
            n += 1
    except BadLine as exc:
        raise UploadError(f"{exc}; fix or regenerate the file") from exc
    return n


def _read_json(path: Path) -> dict:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise UploadError(f"{path}: not valid JSON ({exc.msg})") from exc
    if not isinstance(value, dict):
        raise UploadError(f"{path}: expected a JSON object")
    return value


def _message(cfg: DictConfig, default: str) -> str:
    return cfg.upload.get("commit_message") or default


def plan_data_upload(cfg: DictConfig, folder: Path | None = None) -> UploadPlan:
    """The identity's data folder (or upload.path) as a dataset-repo commit with its card."""
    repo_id = hub.validate_repo_id(cfg.upload.repo_id, "upload.repo_id")
    identity = to_identity(cfg.identity)
    folder = folder or Path(cfg.upload.path or cfg.paths.data_dir)
    if not folder.is_dir():
        raise UploadError(
            f"no data folder at {folder}: make it with `python -m lanbot.generate identity={slug(identity.name)}` "
            "or point upload.path at one"
        )
    for required in (COMBINED_FILE, STATS_FILE):
        if not (folder / required).is_file():
            raise UploadError(
                f"{folder} has no {required}: the generation did not finish; run "
                f"`python -m lanbot.generate identity={slug(identity.name)}` again to complete it"
            )
    policy = str(cfg.upload.get("system_message", "empty"))
    if policy not in SYSTEM_POLICIES:
        raise UploadError(f"upload.system_message={policy!r}: choose {' or '.join(SYSTEM_POLICIES)}")
    arguments = str(cfg.upload.get("tool_arguments", "object"))
    if arguments not in ARGUMENT_FORMS:
        raise UploadError(f"upload.tool_arguments={arguments!r}: choose {' or '.join(ARGUMENT_FORMS)}")
    system = policy_system_message(policy, identity.name)
    tables = {}
    for kind in (k for k in TYPES if (folder / conversations_file(k)).is_file()):
        try:
            tables[kind] = hub_dataset.rows(folder, kind, identity.name, system, arguments)
        except ValueError as exc:  # names the file and line
            raise UploadError(f"{exc}; fix or regenerate the file") from None
    counts = {kind: table.num_rows for kind, table in tables.items()}
    if not counts:
        raise UploadError(f"{folder} holds no <type>_conversations.jsonl file")
    combined = _count_lines(folder / COMBINED_FILE)
    if combined != sum(counts.values()):
        raise UploadError(
            f"{folder / COMBINED_FILE} has {combined} conversations but the type files {sum(counts.values())}: "
            "the folder was changed after generation; rerun `python -m lanbot.generate` to rebuild it"
        )
    stats = _read_json(folder / STATS_FILE)
    card = cards.dataset_card(identity, repo_id, counts, stats, str(cfg.upload.license),
                              hub_dataset.card_configs(list(counts)), system, arguments)
    files: dict[str, Path | bytes] = {hub_data_file(kind): hub_dataset.parquet_bytes(tables[kind]) for kind in counts}
    notes = {hub_data_file(kind): f"(rows of {folder / conversations_file(kind)})" for kind in counts}
    files[STATS_FILE] = folder / STATS_FILE
    files["README.md"] = card.encode("utf-8")
    total = sum(counts.values())
    return UploadPlan(
        repo_id, "dataset", files, bool(cfg.upload.private),
        _message(cfg, f"lanbot: {identity.name} data, {total} conversations"), cfg.upload.get("revision"), notes,
        DATA_REPLACES,
    )


def newest_checkpoint(cfg: DictConfig, stage: str) -> Path:
    """The identity's newest checkpoint of `stage` (lanbot.core.layout.find_checkpoint)."""
    try:
        return find_checkpoint(cfg, stage=stage)
    except FileNotFoundError as exc:  # the message names the train command that makes one
        raise UploadError(f"{exc} (or point upload.path at a checkpoint folder)") from exc


def _run_file(folder: Path, meta: CheckpointMeta, name: str) -> Path | None:
    """`name` beside the checkpoint (eval.json is written there), else in the folder of the run that wrote it."""
    candidates = [folder / name] + ([Path(meta.run_dir) / name] if meta.run_dir else [])
    return next((path for path in candidates if path.is_file()), None)


def plan_checkpoint_upload(cfg: DictConfig, folder: Path | None = None) -> UploadPlan:
    """A checkpoint folder (upload.path, else the identity's newest) as a model-repo commit with its card."""
    repo_id = hub.validate_repo_id(cfg.upload.repo_id, "upload.repo_id")
    folder = folder or upload_folder(cfg)
    if not folder.is_dir():
        raise UploadError(f"no checkpoint folder at {folder}: check upload.path")
    weights = weights_file(folder)  # model.safetensors, or an older checkpoint's model.pt
    missing = [name for name in CHECKPOINT_REQUIRED
               if not (folder / name).is_file() and not (name == MODEL_FILE and weights is not None)]
    if missing:
        raise UploadError(
            f"checkpoint {folder} is incomplete, {', '.join(missing)} missing: a lanbot checkpoint holds "
            f"{', '.join(CHECKPOINT_REQUIRED)}; train it again or point upload.path at a complete one"
        )
    meta = CheckpointMeta.from_dict(_read_json(folder / META_FILE))
    run_cfg = OmegaConf.load(folder / CONFIG_FILE)
    try:
        identity = to_identity(run_cfg.identity if "identity" in run_cfg else cfg.identity)
    except TypeError as exc:
        raise UploadError(f"{folder / CONFIG_FILE}: its identity does not fit the schema ({exc})") from exc
    mix = OmegaConf.to_container(run_cfg.mix, resolve=False) if "mix" in run_cfg else None
    scores_path = _run_file(folder, meta, EVAL_FILE)
    scores = _read_json(scores_path) if scores_path else None
    summary_path = _run_file(folder, meta, SUMMARY_FILE)
    summary = _read_json(summary_path) if summary_path else {}
    figures = {k: v for k, v in summary.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    data_source = OmegaConf.select(run_cfg, "data.from_hub", default=None)
    card = cards.model_card(identity, repo_id, {**figures, **meta.to_dict()}, mix, scores, str(cfg.upload.license), data_source)
    files: dict[str, Path | bytes] = {name: folder / name for name in CHECKPOINT_REQUIRED}
    notes: dict[str, str] = {}
    if weights is not None and weights.name != MODEL_FILE:  # an older model.pt goes up as model.safetensors
        from lanbot.training.checkpoint import weights_as_safetensors

        files[MODEL_FILE] = weights_as_safetensors(weights)
        notes[MODEL_FILE] = f"({weights}, as safetensors)"
    # the text files go as portable copies: no local folder names (see lanbot.sharing.portable)
    files[CONFIG_FILE] = portable_config(run_cfg)
    files[META_FILE] = portable_json(meta.to_dict())
    if cfg.upload.include_optimizer and (folder / OPTIMIZER_FILE).is_file():
        files[OPTIMIZER_FILE] = folder / OPTIMIZER_FILE
    if scores_path is not None:
        files[EVAL_FILE] = portable_json(scores)
    files["README.md"] = card.encode("utf-8")
    return UploadPlan(
        repo_id, "model", files, bool(cfg.upload.private),
        _message(cfg, f"lanbot: {identity.name} {meta.get('stage', '')} checkpoint, step {meta.get('step', '?')}"),
        cfg.upload.get("revision"), notes, (LEGACY_MODEL_FILE,),
    )


def upload_folder(cfg: DictConfig) -> Path:
    """The folder `upload.what` sends: upload.path, else the identity's data folder or newest checkpoint."""
    what = cfg.upload.what
    if what == "data":
        return Path(cfg.upload.path or cfg.paths.data_dir)
    if what == "checkpoint":
        hub.validate_repo_id(cfg.upload.repo_id, "upload.repo_id")  # a bad repo id first, as before
        return Path(cfg.upload.path) if cfg.upload.path else newest_checkpoint(cfg, str(cfg.upload.stage))
    raise UploadError(f"upload.what={what!r}: choose data or checkpoint")


def plan_upload(cfg: DictConfig, folder: Path | None = None) -> UploadPlan:
    what = cfg.upload.what
    if what == "data":
        return plan_data_upload(cfg, folder)
    if what == "checkpoint":
        return plan_checkpoint_upload(cfg, folder)
    raise UploadError(f"upload.what={what!r}: choose data or checkpoint")


def describe(plan: UploadPlan) -> str:
    """What would go where, one file a line."""
    where = f"{'dataset' if plan.repo_type == 'dataset' else 'model'} repo {plan.repo_id}"
    lines = [f"{where} ({'private' if plan.private else 'public'}), one commit: {plan.message!r}"]
    for path, source in plan.files.items():
        size = len(source) if isinstance(source, bytes) else source.stat().st_size
        if not isinstance(source, bytes):
            origin = str(source)
        else:
            origin = plan.notes.get(path) or ("(generated card)" if path == "README.md"
                                              else "(the local file, less its local paths)")
        lines.append(f"  {path:<44} {size:>12,d} B  <- {origin}")
    if plan.replaces:
        lines.append(f"  and, in the same commit, deletes any other repo file matching {', '.join(plan.replaces)}")
    return "\n".join(lines)


def check_no_secrets(plan: UploadPlan) -> None:
    """Every file of the plan (the cards and configs made here, the files read from disk) is free of the values
    of known secrets, or SecretLeakError names the variable and the file; nothing is sent."""
    found = known_secrets()
    for path, source in plan.files.items():
        name = (find_secret_in_bytes(source, found) if isinstance(source, bytes)
                else find_secret_in_file(source, found))
        if name is not None:
            origin = "a file lanbot made for the upload" if isinstance(source, bytes) else str(source)
            raise leak_error(name, f"{path} ({origin}) to {plan.repo_id}", action="upload")


def upload(cfg: DictConfig, run_dir: Path | None = None) -> dict:
    """Plan, then (unless upload.dry_run) push in one commit and record it in <run_dir>/upload.json."""
    if not cfg.upload.dry_run:
        hub.hub_token(required=True)  # a missing token stops here, before any work
    folder = upload_folder(cfg)
    what = "data folder" if cfg.upload.what == "data" else "checkpoint folder"
    with reading(folder, what):  # from planning to the pushed commit: no retrain or generate changes it meanwhile
        return _upload(cfg, folder, run_dir)


def _upload(cfg: DictConfig, folder: Path, run_dir: Path | None) -> dict:
    plan = plan_upload(cfg, folder)
    check_no_secrets(plan)
    print(describe(plan))
    if cfg.upload.dry_run:
        print("dry run: nothing was sent")
        return {"dry_run": True, "repo_id": plan.repo_id, "repo_type": plan.repo_type, "files": sorted(plan.files)}
    result = hub.push_files(
        plan.repo_id, plan.repo_type, plan.files, private=plan.private, message=plan.message, revision=plan.revision,
        replaces=plan.replaces,
    )
    result.update(repo_id=plan.repo_id, repo_type=plan.repo_type)
    if run_dir is not None:
        write_json_atomic(Path(run_dir) / UPLOAD_RECORD, result)
    if result["deleted"]:
        print(f"deleted {len(result['deleted'])} files an earlier upload left: {', '.join(result['deleted'])}")
    print(f"uploaded {len(plan.files)} files in commit {result['commit']}: {result['url']}")
    return result


def upload_app(cfg: DictConfig, run_dir: Path) -> dict:
    """`python -m lanbot.upload`: a data folder or a checkpoint to the Hub (`upload.what`)."""
    import logging

    logging.getLogger("httpx2").setLevel(logging.WARNING)  # one INFO line per request otherwise
    return upload(cfg, run_dir)
