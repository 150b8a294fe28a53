"""The Hugging Face Hub, through huggingface_hub: repo ids, the token, downloads and one-commit uploads.

The training app calls `download_checkpoint("hf://user/repo[@rev]")` for `train.init_from=hf://...` and
`download_data("user/repo")` for `data.from_hub=user/repo` (lanbot.sharing.hub_dataset turns the repo's
parquet rows back into a data folder); both go through `snapshot_download` and its cache, so
`HF_HUB_OFFLINE=1` serves them from the cache without a network. `lanbot.upload` calls `push_files`. The
token comes from `HF_TOKEN` (environment or `.env`) or `hf auth login`; it is handed to huggingface_hub in
memory only and never written anywhere by lanbot.

Environment read at call time: HF_TOKEN, HF_ENDPOINT, HF_HUB_OFFLINE, HF_HUB_CACHE / HF_HOME.
"""

from __future__ import annotations

import contextlib
import fnmatch
import importlib
import os
import re
from pathlib import Path
from typing import Any

from huggingface_hub import (
    CommitOperationAdd,
    CommitOperationDelete,
    HfApi,
    get_hf_file_metadata,
    get_token,
    hf_hub_url,
    snapshot_download,
)
from huggingface_hub.utils import (  # .utils has them in 0.23 ... 2.x; .errors not before 0.25
    HfHubHTTPError,
    LocalEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from lanbot.core.errors import LanbotError
from lanbot.core.layout import (
    CONFIG_FILE,
    HUB_PREFIX,
    MODEL_FILE,
    TOKENIZER_FILE,
    data_from_hub,
    hub_data_dir,
    hub_data_file,
    is_hub_address,
    weights_file,
)
from lanbot.sharing import hub_dataset


def _transport_errors() -> tuple[type[BaseException], ...]:
    """No-connection / timeout errors of every HTTP client huggingface_hub has used, whichever are installed:
    requests (0.x), httpx (1.x), httpx2 (2.x)."""
    found: list[type[BaseException]] = []
    for module, name in (("requests", "RequestException"), ("httpx", "HTTPError"), ("httpx2", "HTTPError")):
        with contextlib.suppress(ImportError, AttributeError):
            found.append(getattr(importlib.import_module(module), name))
    return tuple(found) or (OSError,)


TransportError = _transport_errors()

# namespace/name: letters, digits, '-', '_', '.'; no '--' or '..'; at most 96 characters (the Hub's rules)
_REPO_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*")
LOGIN_HELP = (
    "log in once with `hf auth login` (`huggingface-cli login` with huggingface_hub < 0.34; the token is kept "
    "by huggingface_hub), or set HF_TOKEN=hf_... "
    "in the environment or in .env; make a token with write access at https://huggingface.co/settings/tokens"
)
CHECKPOINT_FILES = (MODEL_FILE, TOKENIZER_FILE)  # what a checkpoint cannot do without


class HubError(LanbotError, RuntimeError):
    """A Hub operation that cannot go ahead; the message says why and what to do."""


def validate_repo_id(repo_id: object, what: str = "repo id") -> str:
    """`repo_id` if it is `namespace/name` as the Hub accepts it, else HubError saying the form."""
    text = "" if repo_id is None else str(repo_id).strip()
    if not text:
        raise HubError(f"{what} is not set: give it as namespace/name, e.g. {what}=your-user/sage-data")
    if (
        not _REPO_ID.fullmatch(text)
        or len(text) > 96
        or "--" in text
        or ".." in text
        or text.endswith((".git", "."))
    ):
        raise HubError(
            f"invalid {what} {text!r}: expected 'namespace/name' (e.g. your-user/sage-data), letters, "
            "digits, '-', '_' and '.', no '--' or '..', at most 96 characters"
        )
    return text


def parse_hf_uri(uri: str) -> tuple[str, str | None]:
    """'hf://user/repo@rev' -> ('user/repo', 'rev'); the revision is None when not given."""
    if not is_hub_address(uri):
        raise HubError(f"not a Hub address: {uri!r}; expected {HUB_PREFIX}namespace/name[@revision]")
    repo, _, revision = uri[len(HUB_PREFIX) :].partition("@")
    if _ and not revision:
        raise HubError(f"empty revision in {uri!r}; write hf://namespace/name@branch-tag-or-commit")
    return validate_repo_id(repo, what=f"repo id in {uri!r}"), revision or None


def hub_token(required: bool) -> str | None:
    """The token: HF_TOKEN from the environment or ./.env, else huggingface_hub's login; None if neither.

    With `required`, a missing token raises HubError saying how to log in.
    """
    token = os.environ.get("HF_TOKEN") or _dotenv_token() or get_token()
    if required and not token:
        raise HubError(f"no Hugging Face token found: {LOGIN_HELP}")
    return token or None


def _dotenv_token() -> str | None:
    from lanbot.core.secrets import dotenv

    return dotenv().get("HF_TOKEN") or None


DEFAULT_ENDPOINT = "https://huggingface.co"


def endpoint() -> str:
    """HF_ENDPOINT as it is now (unset or empty: huggingface.co), passed to every call: huggingface_hub reads it
    once at import, where an empty one makes every URL relative."""
    value = (os.environ.get("HF_ENDPOINT") or "").strip().rstrip("/")
    if not value:
        return DEFAULT_ENDPOINT
    if not re.fullmatch(r"https?://[^\s/]+(/[^\s]*)?", value):
        raise HubError(f"HF_ENDPOINT={value!r} is not a Hub address: give http(s)://host[:port] "
                       f"(e.g. {DEFAULT_ENDPOINT}), or unset it")
    return value


def offline() -> bool:
    """Whether HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE) is set to a true value now."""
    value = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or ""
    return value.strip().upper() in {"1", "ON", "YES", "TRUE"}


def cache_dir() -> str | None:
    """The Hub cache from HF_HUB_CACHE or HF_HOME as they are now; None = huggingface_hub's default."""
    if os.environ.get("HF_HUB_CACHE"):
        return os.environ["HF_HUB_CACHE"]
    if os.environ.get("HF_HOME"):
        return str(Path(os.environ["HF_HOME"]) / "hub")
    return None


def safe_repo_path(name: object) -> bool:
    """A repo file name that stays inside the folder it is written to: relative, no `..`, no backslash, no
    control or wildcard characters (lanbot's repos hold none), at most 255 bytes a part."""
    text = str(name)
    parts = text.split("/")
    return (bool(text) and not text.startswith("/") and not re.search(r"[\\\x00-\x1f*?\[\]]", text)
            and all(p not in ("", ".", "..") and len(p.encode("utf-8")) <= 255 for p in parts))


def check_file_answers(repo_id: str, repo_type: str, commit: str, names: list[str], where: str) -> None:
    """Each file's ETag and commit as the Hub answers them, checked before the download: huggingface_hub (2.4)
    names the cache's blob after the ETag unchecked, so `../..` there would write outside the cache. One HEAD
    request per file (a lanbot repo holds about ten)."""
    token = hub_token(required=False) or False
    for name in names:
        meta = get_hf_file_metadata(hf_hub_url(repo_id, name, repo_type=repo_type, revision=commit,
                                               endpoint=endpoint()), token=token, endpoint=endpoint())
        etag, answered = str(meta.etag or ""), str(meta.commit_hash or "")
        if not re.fullmatch(r"[0-9a-f]{40}|[0-9a-f]{64}", etag) or not re.fullmatch(r"[0-9a-f]{40}", answered):
            raise HubError(f"{where}: the Hub answered {name} with ETag {etag[:80]!r} and commit {answered[:80]!r}, "
                           "which could be written outside the Hub cache; nothing was downloaded. Check "
                           f"HF_ENDPOINT ({endpoint()}) and the repo")


def snapshot(repo_id: str, repo_type: str, revision: str | None = None) -> Path:
    """The local folder of a repo at a revision, downloaded into (or, offline, read from) the Hub cache."""
    repo_id = validate_repo_id(repo_id)
    where = f"{repo_type} repo {repo_id}" + (f"@{revision}" if revision else "")
    try:
        names = None
        if not offline():  # the listing checked first: a hostile answer must not name a path outside the cache
            info = HfApi(endpoint=endpoint(), token=hub_token(required=False) or False).repo_info(
                repo_id, repo_type=repo_type, revision=revision or "main")  # snapshot_download's default too
            names = [s.rfilename for s in (info.siblings or [])]
            bad = [n for n in names if not safe_repo_path(n)]
            if bad or not re.fullmatch(r"[0-9a-f]{40}", str(info.sha or "")):
                raise HubError(f"{where}: the Hub's listing names {repr(bad[0]) if bad else f'commit {info.sha!r}'}, "
                               "which could be written outside the Hub cache; nothing was downloaded. Check "
                               f"HF_ENDPOINT ({endpoint()}) and the repo")
            check_file_answers(repo_id, repo_type, info.sha, names, where)
        folder = snapshot_download(
            repo_id,
            repo_type=repo_type,
            revision=revision,
            cache_dir=cache_dir(),
            local_files_only=offline(),
            endpoint=endpoint(),
            token=hub_token(required=False) or False,
            allow_patterns=names,  # exactly the names checked (none holds a wildcard)
        )
    except LocalEntryNotFoundError as exc:
        raise HubError(
            f"{where} is not in the Hub cache ({cache_dir() or 'the default cache'}) and the Hub cannot be "
            "reached" + (" (HF_HUB_OFFLINE is set)" if offline() else "")
            + ": run the same command once online (HF_HUB_OFFLINE=0) to fill the cache"
        ) from exc
    except RevisionNotFoundError as exc:
        raise HubError(f"{where}: no such revision (a branch, tag or commit of the repo)") from exc
    except RepositoryNotFoundError as exc:
        raise HubError(f"{where} not found, or private and your token cannot read it ({LOGIN_HELP})") from exc
    except HfHubHTTPError as exc:
        raise HubError(f"{where}: the Hub answered {exc}") from exc
    except (*TransportError, OSError, ValueError) as exc:  # no connection, a bad answer, a file name refused
        raise HubError(f"{where}: cannot download from {endpoint()} ({type(exc).__name__}: "
                       f"{' '.join(str(exc).split())[:200]})") from exc
    # the commit says exactly which data / weights a run used, whatever the branch holds later
    print(f"[hub] {where}: commit {Path(folder).name}{' (offline, from the cache)' if offline() else ''}")
    return Path(folder)


def download_checkpoint(uri: str) -> Path:
    """The folder of a checkpoint pushed with `lanbot.upload upload.what=checkpoint`, from hf://user/repo[@rev]."""
    repo_id, revision = parse_hf_uri(uri)
    folder = snapshot(repo_id, "model", revision)
    missing = [name for name in CHECKPOINT_FILES if not (folder / name).is_file()  # or model.pt, pushed before
               and not (name == MODEL_FILE and weights_file(folder) is not None)]
    if missing:
        raise HubError(
            f"{uri} is not a lanbot checkpoint: {', '.join(missing)} missing in {folder}; push one with "
            "`python -m lanbot.upload upload.what=checkpoint upload.repo_id=...`"
        )
    return folder


def download_data(repo_id: str, revision: str | None = None, root: str | Path = "outputs") -> Path:
    """The data folder pushed with `lanbot.upload`, from the dataset repo `user/repo` (or `user/repo@revision`,
    as `data.from_hub` may give it). A repo of parquet rows (what lanbot.upload pushes) becomes a data folder
    under `<root>/hub/` (made once per commit); an older lanbot's repo of JSONL files is one as it is."""
    if revision is None and "@" in str(repo_id):
        repo_id, revision = parse_hf_uri(f"{HUB_PREFIX}{repo_id}")
    folder = snapshot(repo_id, "dataset", revision)
    if hub_dataset.hub_files(folder):
        try:
            return hub_dataset.to_data_folder(folder, hub_data_dir(root, validate_repo_id(repo_id), folder.name))
        except ValueError as exc:
            raise HubError(f"dataset repo {repo_id} ({folder}): {exc}") from None
    if not any(folder.glob("*_conversations.jsonl")):
        raise HubError(
            f"dataset repo {repo_id} holds no {hub_data_file('<type>')} nor *_conversations.jsonl (looked in "
            f"{folder}); push a data folder with `python -m lanbot.upload identity=<name> upload.repo_id=...`"
        )
    return folder


def data_dir(cfg: Any, checkpoint: str | Path | None = None) -> Path:
    """The identity's data folder: `paths.data_dir`, or the local copy of `data.from_hub` where that is set,
    here or in `checkpoint`'s own config (a model trained from the Hub is evaluated on that same data)."""
    from_hub = data_from_hub(cfg)
    if not from_hub and checkpoint is not None and (Path(checkpoint) / CONFIG_FILE).is_file():
        from omegaconf import OmegaConf

        from_hub = OmegaConf.select(OmegaConf.load(Path(checkpoint) / CONFIG_FILE), "data.from_hub", default=None)
    if from_hub:
        try:
            return Path(download_data(str(from_hub), root=Path(cfg.paths.root)))
        except HubError as exc:
            raise HubError(f"data.from_hub={from_hub}: {exc}") from None
    return Path(cfg.paths.data_dir)


def push_files(
    repo_id: str,
    repo_type: str,
    files: dict[str, Path | bytes],
    *,
    private: bool,
    message: str,
    revision: str | None = None,
    replaces: tuple[str, ...] = (),
) -> dict:
    """Create the repo if missing (private as asked), then commit every file in ONE commit.

    `files` maps the path in the repo to a local file or to bytes. Files already in the repo that match a
    glob of `replaces` and are not in `files` are deleted in that same commit (an earlier upload's files
    that this one no longer has). The Hub applies a commit whole or not at all, so a failure leaves nothing
    half-uploaded. Returns {"url", "commit", "files", "deleted"}.
    """
    repo_id = validate_repo_id(repo_id)
    token = hub_token(required=True)
    if offline():
        raise HubError("HF_HUB_OFFLINE is set: an upload needs the network; unset it (or set HF_HUB_OFFLINE=0)")
    api = HfApi(endpoint=endpoint(), token=token)
    operations: list[CommitOperationAdd | CommitOperationDelete] = [
        CommitOperationAdd(path_in_repo=path, path_or_fileobj=src) for path, src in files.items()]
    deleted: list[str] = []
    try:
        url = api.create_repo(repo_id, repo_type=repo_type, private=private, exist_ok=True)
        if replaces:
            existing = api.list_repo_files(repo_id, repo_type=repo_type, revision=revision)
            deleted = sorted(path for path in existing
                             if path not in files and any(fnmatch.fnmatch(path, glob) for glob in replaces))
            operations += [CommitOperationDelete(path_in_repo=path) for path in deleted]
        info = api.create_commit(
            repo_id, operations, commit_message=message, repo_type=repo_type, revision=revision
        )
    except HfHubHTTPError as exc:
        status = getattr(exc.response, "status_code", None)
        if status in (401, 403):
            raise HubError(
                f"the Hub refused the token for {repo_type} repo {repo_id} (HTTP {status}): it needs write "
                f"access to that namespace; {LOGIN_HELP}"
            ) from exc
        raise HubError(f"upload to {repo_type} repo {repo_id} failed, nothing was committed: {exc}") from exc
    except TransportError as exc:
        where = endpoint()
        raise HubError(
            f"cannot reach the Hub at {where} ({type(exc).__name__}: {exc}); nothing was committed"
        ) from exc
    return {"url": str(url), "commit": info.oid, "commit_url": info.commit_url, "files": sorted(files),
            "deleted": deleted}
