"""Composing lanbot's one config tree, for apps and for tests.

Apps use `@hydra.main(config_path=CONFIG_PATH, ...)`; tests and tools call `compose_config`.
"""

from __future__ import annotations

import hashlib
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


def short_dirname(name: str, limit: int = MAX_DIRNAME) -> str:
    """`name` if short enough, else its head and a digest of the whole (the `dirname` resolver of sweep folders);
    a secret typed into an override never becomes part of a folder's name."""
    from lanbot.core.secrets import MASK, redact

    name = redact(name).replace(MASK, "masked")  # a path without glob characters
    if len(name.encode("utf-8")) <= limit:
        return name
    digest = hashlib.sha1(name.encode("utf-8")).hexdigest()[:8]
    return name.encode("utf-8")[: limit - 9].decode("utf-8", "ignore") + "~" + digest


if not OmegaConf.has_resolver("dirname"):
    OmegaConf.register_new_resolver("dirname", short_dirname)


def compose_config(overrides: list[str] | None = None, config_name: str = "config") -> DictConfig:
    """The composed config for `overrides`, as an app would see it (without Hydra's own node)."""
    with initialize_config_dir(config_dir=CONFIG_PATH, version_base="1.3"):
        return compose(config_name=config_name, overrides=list(overrides or []))


def to_plain(cfg: DictConfig) -> dict:
    """The resolved config as plain Python, for wandb and dumps (it never holds secrets)."""
    return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]
