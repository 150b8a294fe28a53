"""Composing lanbot's one config tree, for apps and for tests.

Apps use `@hydra.main(config_path=CONFIG_PATH, ...)`; tests and tools call `compose_config`.
"""

from __future__ import annotations

from pathlib import Path

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf

import lanbot.identity  # noqa: F401  (registers the identity schema and the `slug` resolver)

CONF_DIR = Path(__file__).resolve().parent.parent / "conf"
CONFIG_PATH = str(CONF_DIR)


def compose_config(overrides: list[str] | None = None, config_name: str = "config") -> DictConfig:
    """The composed config for `overrides`, as an app would see it (without Hydra's own node)."""
    with initialize_config_dir(config_dir=CONFIG_PATH, version_base="1.3"):
        return compose(config_name=config_name, overrides=list(overrides or []))


def to_plain(cfg: DictConfig) -> dict:
    """The resolved config as plain Python, for wandb and dumps (it never holds secrets)."""
    return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]
