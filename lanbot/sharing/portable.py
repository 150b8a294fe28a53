"""A checkpoint's text files as they should look off this machine: no local folder names.

A checkpoint's config.yaml holds the resolved `paths.*` (often absolute), meta.json the run folder and
eval.json the checkpoint folder. An upload sends portable copies instead: `paths` takes lanbot's
default layout (`outputs/...`), the run and checkpoint folders are left out, and any other absolute path
is written relative to the working folder or, under the home folder, as `~/...`. Nothing that training,
evaluation or a card reads from a downloaded checkpoint depends on those values.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from lanbot.core.identity import slug

LOCAL_ONLY = ("run_dir", "checkpoint")  # meta.json's run folder, eval.json's checkpoint folder


def portable_path(text: str, cwd: Path | None = None, home: Path | None = None) -> str:
    """An absolute path relative to `cwd`, else as `~/...` under `home`; anything else unchanged."""
    if not os.path.isabs(text):
        return text
    path = Path(text)
    for base, prefix in ((cwd or Path.cwd(), ""), (home or Path.home(), "~")):
        if path.is_relative_to(base):
            rest = path.relative_to(base).as_posix()
            return f"{prefix}/{rest}".strip("/") if prefix else (rest or ".")
    return text


def _walk(value: Any, cwd: Path | None, home: Path | None) -> Any:
    if isinstance(value, dict):
        return {k: _walk(v, cwd, home) for k, v in value.items()}
    if isinstance(value, list):
        return [_walk(v, cwd, home) for v in value]
    if isinstance(value, str):
        return portable_path(value, cwd, home)
    return value


def portable_json(value: dict[str, Any], cwd: Path | None = None, home: Path | None = None) -> bytes:
    """meta.json or eval.json, as read, without the local folders (LOCAL_ONLY left out, other paths made relative)."""
    kept = {k: v for k, v in value.items() if k not in LOCAL_ONLY}
    return (json.dumps(_walk(kept, cwd, home), indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def portable_config(cfg: DictConfig, cwd: Path | None = None, home: Path | None = None) -> bytes:
    """A checkpoint's config.yaml, as loaded, with lanbot's default `paths` and no other absolute local path."""
    value = _walk(OmegaConf.to_container(cfg, resolve=False), cwd, home)
    if "paths" in cfg:
        name = OmegaConf.select(cfg, "identity.name", default=None)
        value["paths"] = {"root": "outputs", "data_dir": f"outputs/data/{slug(name) if name else 'default'}",
                          "checkpoints": "outputs/checkpoints"}
    return OmegaConf.to_yaml(OmegaConf.create(value)).encode("utf-8")
