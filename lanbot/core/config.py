"""Composing lanbot's one config tree, for apps and for tests.

Apps use `@hydra.main(config_path=CONFIG_PATH, ...)`; tests and tools call `compose_config`.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf

import lanbot.core.identity  # noqa: F401  (registers the identity schema and the `slug` resolver)
import lanbot.core.schemas  # noqa: F401  (registers the backend, mix and train schemas)

# The config tree ships inside the package (lanbot/conf: in a checkout a link to the top-level conf/, in a wheel
# the files themselves), so `pip install .` and a wheel find it as an editable install does.
CONF_DIR = (Path(__file__).resolve().parents[1] / "conf").resolve()
CONFIG_PATH = str(CONF_DIR)
MAX_DIRNAME = 120  # a sweep job's folder name stays well under the 255 bytes a file name may have
MAX_CLAIMS = 1000  # `<name>-2` ... `<name>-1000`: far more runs than can start within one second


def short_dirname(name: str, limit: int = MAX_DIRNAME) -> str:
    """`name` if short enough, else its head and a digest of the whole (the `dirname` resolver of sweep folders);
    a secret typed into an override never becomes part of a folder's name."""
    from lanbot.core.secrets import redact

    name = redact(name, "masked")  # a path without glob characters
    if len(name.encode("utf-8")) <= limit:
        return name
    digest = hashlib.sha1(name.encode("utf-8")).hexdigest()[:8]
    return name.encode("utf-8")[: limit - 9].decode("utf-8", "ignore") + "~" + digest


def claim_dir(path: str) -> str:
    """`path`, or `path-2`, `path-3`, ...: the first that this process creates itself (the `claim_dir` resolver of
    run and sweep folders). mkdir is atomic, so two apps started in the same second never share a folder.

    Registered with use_cache: a run resolves its folder once, and Hydra copies that cache into every sweep job.
    A folder that cannot be made for another reason (no permission, no space) is returned as it is, for Hydra's
    own mkdir to report."""
    try:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    except OSError:
        return path
    for n in range(1, MAX_CLAIMS + 1):
        candidate = path if n == 1 else f"{path}-{n}"
        try:
            os.mkdir(candidate)
        except FileExistsError:
            continue
        except OSError:
            return candidate
        return candidate
    return f"{path}-{os.getpid()}"


if not OmegaConf.has_resolver("dirname"):
    OmegaConf.register_new_resolver("dirname", short_dirname)
if not OmegaConf.has_resolver("claim_dir"):
    OmegaConf.register_new_resolver("claim_dir", claim_dir, use_cache=True)


def compose_config(overrides: list[str] | None = None, config_name: str = "config") -> DictConfig:
    """The composed config for `overrides`, as an app would see it (without Hydra's own node)."""
    with initialize_config_dir(config_dir=CONFIG_PATH, version_base="1.3"):
        return compose(config_name=config_name, overrides=list(overrides or []))


def to_plain(cfg: DictConfig) -> dict:
    """The resolved config as plain Python, for wandb and dumps (it never holds secrets)."""
    return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]
