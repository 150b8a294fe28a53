"""A loopback stand-in for the Hugging Face Hub's upload endpoints, for tests.

It speaks what huggingface_hub 2.x sends for `create_repo` and `create_commit` (read from its source:
hf_api.py, _commit_api.py): POST /api/repos/create, POST /api/validate-yaml (the README.md metadata
check), POST /api/{type}s/{repo}/preupload/{rev} (every file answered "regular", so its bytes come inline)
and POST /api/{type}s/{repo}/commit/{rev} (ndjson: a header line, then one base64 `file` or a `deletedFile`
line each).
For downloads (`snapshot_download`, and `datasets.load_dataset` of a repo) it serves GET
/api/{type}s/{repo}/revision/{rev} (repo info: the commit sha), GET /api/{type}s/{repo}/tree/{rev}[/{folder}]
(a folder's files and folders, `?recursive=true` everything below) and HEAD/GET /[{type}s/]{repo}/resolve/{rev}/{path}
(X-Repo-Commit and ETag headers, then the bytes); a private repo answers only the right token.
It checks the bearer token, keeps each repo's files per commit, and records every request as it arrived.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote

import yaml

_REPO_API = re.compile(r"^/api/(models|datasets|spaces)/([^/]+/[^/]+)/(preupload|commit)/([^/?]+)")
_INFO_API = re.compile(r"^/api/(models|datasets|spaces)/([^/]+/[^/]+)/(revision|tree)/([^/?]+)/?([^?]*)")
_RESOLVE = re.compile(r"^/(?:(datasets|spaces)/)?([^/]+/[^/]+)/resolve/([^/]+)/([^?]+)")
EMPTY_COMMIT = "0" * 40  # the first commit of a new repo (the Hub's holds .gitattributes; this one nothing)


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]  # names in lower case
    body: bytes


@dataclass
class Repo:
    repo_type: str
    private: bool | None
    files: dict[str, bytes] = field(default_factory=dict)
    commits: list[dict] = field(default_factory=list)
    snapshots: dict[str, dict[str, bytes]] = field(default_factory=dict)  # commit oid -> files at that commit
    refs: dict[str, str] = field(default_factory=dict)  # branch -> commit oid

    def __post_init__(self) -> None:  # a new repo on the Hub already has a (here empty) first commit on main
        self.snapshots.setdefault(EMPTY_COMMIT, {})
        self.refs.setdefault("main", EMPTY_COMMIT)

    def resolve(self, revision: str) -> str | None:
        """The commit oid of a branch name or of a commit oid; None if unknown."""
        return self.refs.get(revision) or (revision if revision in self.snapshots else None)


def _tree(files: dict[str, bytes], folder: str, recursive: bool) -> list[dict]:
    """The Hub's tree listing of `folder`: its files and folders (with `recursive`, everything below it)."""
    prefix = f"{folder}/" if folder else ""
    entries: dict[str, dict] = {}
    for name, data in sorted(files.items()):
        if not name.startswith(prefix):
            continue
        parts = name[len(prefix):].split("/")
        for depth in range(1, len(parts)):
            if depth > 1 and not recursive:
                break
            path = prefix + "/".join(parts[:depth])
            entries.setdefault(path, {"type": "directory", "path": path, "oid": "0" * 40, "size": 0})
        if recursive or len(parts) == 1:
            entries[name] = {"type": "file", "path": name, "size": len(data), "oid": hashlib.sha1(data).hexdigest()}
    return list(entries.values())


class HubServer:
    """`with HubServer(token="hf_x") as hub:` then point huggingface_hub at `hub.url`."""

    def __init__(self, token: str, user: str = "tester", fail_commit: bool = False) -> None:
        self.token = token
        self.user = user
        self.fail_commit = fail_commit
        self.requests: list[Request] = []
        self.etag: str | None = None  # set: every file is answered with this ETag (a hostile server's)
        self.repos: dict[tuple[str, str], Repo] = {}
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)

    def __enter__(self) -> HubServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    def repo(self, repo_type: str, repo_id: str) -> Repo | None:
        return self.repos.get((repo_type, repo_id))

    def _handler(self):
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # quiet
                pass

            def _reply(self, status: int, payload: dict) -> None:
                body = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _error(self, status: int, code: str) -> None:
                self.send_response(status)
                self.send_header("X-Error-Code", code)
                self.send_header("Content-Length", "2")
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(b"{}")

            def do_GET(self) -> None:
                hub.requests.append(Request(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, b""))
                info, resolve = _INFO_API.match(self.path), _RESOLVE.match(self.path)
                if info:
                    kind, repo_id, what, revision, folder = info.groups()
                    repo_type = kind[:-1]
                elif resolve:
                    prefix, repo_id, revision, path = resolve.groups()
                    repo_type = prefix[:-1] if prefix else "model"
                else:
                    return self._reply(404, {"error": f"no route {self.path}"})
                repo = hub.repo(repo_type, repo_id)
                authorized = self.headers.get("Authorization") == f"Bearer {hub.token}"
                if repo is None or (repo.private and not authorized):
                    return self._error(401 if not authorized else 404, "RepoNotFound")
                oid = repo.resolve(unquote(revision))
                if oid is None:
                    return self._error(404, "RevisionNotFound")
                files = repo.snapshots[oid]
                if info and what == "revision":
                    siblings = [{"rfilename": name} for name in sorted(files)]
                    return self._reply(200, {"id": repo_id, "sha": oid, "private": bool(repo.private),
                                             "siblings": siblings, "xetEnabled": False, "downloads": 0, "likes": 0,
                                             "tags": []})
                if info:
                    return self._reply(200, _tree(files, unquote(folder).strip("/"), "recursive=true" in self.path.lower()))
                data = files.get(unquote(path))
                if data is None:
                    return self._error(404, "EntryNotFound")
                self.send_response(200)
                self.send_header("X-Repo-Commit", oid)
                self.send_header("ETag", f'"{hub.etag or hashlib.sha1(data).hexdigest()}"')  # hub.etag: hostile
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)
                return None

            do_HEAD = do_GET

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                hub.requests.append(Request("POST", self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                if self.headers.get("Authorization") != f"Bearer {hub.token}":
                    return self._reply(401, {"error": "Invalid credentials in Authorization header"})
                if self.path == "/api/repos/create":
                    return self._create(json.loads(body))
                if self.path == "/api/validate-yaml":
                    return self._validate_yaml(json.loads(body))
                match = _REPO_API.match(self.path)
                if not match:
                    return self._reply(404, {"error": f"no route {self.path}"})
                kind, repo_id, action, revision = match.groups()
                repo = hub.repo(kind[:-1], repo_id)
                if repo is None:
                    self.send_response(404)
                    self.send_header("X-Error-Code", "RepoNotFound")
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"{}")
                    return None
                if action == "preupload":
                    files = json.loads(body)["files"]
                    return self._reply(
                        200,
                        {"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False} for f in files]},
                    )
                return self._commit(repo, repo_id, revision, body)

            def _create(self, payload: dict) -> None:
                repo_type = payload.get("type") or "model"
                repo_id = f"{payload.get('organization') or hub.user}/{payload['name']}"
                prefix = "" if repo_type == "model" else f"{repo_type}s/"
                url = f"{hub.url}/{prefix}{repo_id}"
                if (repo_type, repo_id) in hub.repos:
                    return self._reply(409, {"error": "You already created this repo", "url": url})
                visibility = payload.get("visibility")
                hub.repos[(repo_type, repo_id)] = Repo(repo_type, None if visibility is None else visibility == "private")
                return self._reply(200, {"url": url, "name": repo_id})

            def _validate_yaml(self, payload: dict) -> None:
                content = payload["content"]
                if not content.startswith("---\n"):
                    return self._reply(200, {"errors": [], "warnings": [{"message": "empty or missing yaml metadata"}]})
                try:
                    meta = yaml.safe_load(content.split("---\n", 2)[1])
                except yaml.YAMLError as exc:
                    return self._reply(400, {"errors": [{"message": str(exc)}]})
                if not isinstance(meta, dict):
                    return self._reply(400, {"errors": [{"message": "metadata must be a mapping"}]})
                return self._reply(200, {"errors": [], "warnings": []})

            def _commit(self, repo: Repo, repo_id: str, revision: str, body: bytes) -> None:
                if hub.fail_commit:
                    return self._reply(500, {"error": "Internal Error - We're working hard to fix this"})
                lines = [json.loads(line) for line in body.decode().splitlines() if line.strip()]
                header, ops = lines[0], lines[1:]
                if header.get("key") != "header":
                    return self._reply(400, {"error": "first line must be the header"})
                staged = dict(repo.files)
                for op in ops:
                    if op["key"] == "deletedFile" and op["value"]["path"] in staged:
                        del staged[op["value"]["path"]]
                    elif op["key"] == "file" and op["value"].get("encoding") == "base64":
                        staged[op["value"]["path"]] = base64.b64decode(op["value"]["content"])
                    else:
                        return self._reply(400, {"error": f"unsupported operation {op['key']} {op['value'].get('path')}"})
                repo.files = staged  # applied whole, as the Hub does
                oid = hashlib.sha1(body).hexdigest()
                repo.commits.append({"oid": oid, "revision": revision, **header["value"]})
                repo.snapshots[oid] = dict(staged)
                repo.refs[unquote(revision)] = oid
                prefix = "" if repo.repo_type == "model" else f"{repo.repo_type}s/"
                return self._reply(
                    200,
                    {"commitUrl": f"{hub.url}/{prefix}{repo_id}/commit/{oid}", "commitOid": oid, "pullRequestUrl": None},
                )

        return Handler
