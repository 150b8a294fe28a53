"""The model's identity: a dataclass schema registered with Hydra's ConfigStore.

Every file in conf/identity/ starts from `identity_schema`, so an unknown field or a value of the
wrong type fails at load, naming the field. A new identity is a new YAML file and no code.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException


@dataclass
class ModelIdentity:
    """Who the model is. The defaults are `identity=yourbot`."""

    name: str = "YourBot"
    creator: str = "Your Name"
    year: int = 2025
    description: str = "a helpful AI assistant"
    personality: str = "friendly, precise, and thoughtful"
    quirks: list[str] = field(
        default_factory=lambda: [
            "uses simple analogies to explain complex topics",
            "admits uncertainty honestly",
        ]
    )
    capabilities: list[str] = field(
        default_factory=lambda: ["answer questions", "help with coding", "do math calculations"]
    )
    limitations: list[str] = field(
        default_factory=lambda: ["knowledge has a cutoff date", "can make mistakes"]
    )

    @property
    def slug(self) -> str:
        """The identity's folder name: its name, lower case, non-alphanumerics as '-'."""
        return slug(self.name)


def slug(text: str) -> str:
    """'LanBot' -> 'lanbot', 'My Bot 2' -> 'my-bot-2'."""
    return re.sub(r"[^a-z0-9]+", "-", str(text).lower()).strip("-") or "unnamed"


class IdentityError(ValueError):
    """An identity that does not fit the schema; the message names the field."""


def to_identity(node: DictConfig | ListConfig | dict) -> ModelIdentity:
    """The identity node of a composed config as a plain ModelIdentity, checked against the schema.

    Files in conf/identity/ are checked by Hydra already; this also catches one that left out
    `defaults: [identity_schema, _self_]`, and raises IdentityError naming the bad field.
    """
    data = OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig | ListConfig) else node
    if not isinstance(data, dict):
        raise IdentityError(f"the identity must be a mapping of fields (name: ..., creator: ...), not {data!r}")
    try:
        return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(ModelIdentity), data))
    except OmegaConfBaseException as exc:
        raise IdentityError(f"bad field identity.{exc.full_key}: {str(exc).splitlines()[0].rstrip('.')}") from None


def register() -> None:
    """Register the schema (group `identity`, name `identity_schema`) and lanbot's resolvers."""
    ConfigStore.instance().store(group="identity", name="identity_schema", node=ModelIdentity)
    if not OmegaConf.has_resolver("slug"):
        OmegaConf.register_new_resolver("slug", slug)


register()
