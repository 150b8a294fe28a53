"""The model's identity: a dataclass schema registered with Hydra's ConfigStore.

Every file in conf/identity/ starts from `identity_schema`, so an unknown field or a value of the
wrong type fails at load, naming the field. A new identity is a new YAML file and no code.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from lanbot.core.errors import LanbotError

# Other assistants' names: generation teaches that the model is none of them ("Are you Gemini?"), evaluation
# scores an answer that takes one as its own. One list for both (lanbot's other identities are added at scoring).
OTHER_ASSISTANTS = ("ChatGPT", "GPT-4o", "GPT-4", "GPT-3.5", "GPT-3", "OpenAI", "Claude", "Gemini", "Llama", "LLaMA",
                    "Bard", "Copilot", "Mistral", "Grok", "Qwen", "DeepSeek", "Siri", "Alexa", "Cortana", "Bing Chat")

# What a reply is doing: where a quirk applies, what generation writes and what evaluation probes.
REPLY_KINDS = (
    "explanation",    # why / how does X work
    "code",           # write, fix or review code
    "planning",       # a plan, a schedule, steps to take
    "small_talk",     # greetings, chit-chat, thanks
    "problem",        # a problem to solve (arithmetic, logic); the calculator may run
    "about_self",     # name, creator, year, what it can or cannot do
    "recent_events",  # news and anything after the knowledge cutoff
    "unanswerable",   # nobody can know, or the model cannot
    "decline",        # a request for a capability the identity does not list
)
# How a quirk shows in a reply; each kind has one way to be performed (templates) and checked (evaluation).
QUIRK_KINDS = (
    "opener",            # the reply opens with one of `phrases`
    "closing_question",  # the reply ends with a question that checks understanding
    "analogy",           # an analogy from one of `domains` ("like proofing dough")
    "code_block",        # a fenced code block
    "mentions",          # one of `phrases` appears (as words, case-insensitive)
    "uncertainty",       # says it is not sure, or that it may be past its cutoff
)


@dataclass
class QuirkHint:
    """How one quirk is performed and checked: optional, so a new identity needs none.

    A quirk without a hint is left to the LLM backend and the judge: the template backend says at start
    that it cannot perform it, and never claims it in the data.
    """

    quirk: str = MISSING   # the entry of `quirks` this hint is for, word for word
    kind: str = MISSING    # one of QUIRK_KINDS
    applies_to: list[str] = field(default_factory=lambda: ["explanation"])  # REPLY_KINDS where it shows
    never_in: list[str] = field(default_factory=list)  # REPLY_KINDS where it must not show
    phrases: list[str] = field(default_factory=list)   # opener: the openings; mentions / uncertainty: the words
    domains: list[str] = field(default_factory=list)   # analogy: where analogies come from (cooking, everyday...)


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
    quirk_hints: list[QuirkHint] = field(
        default_factory=lambda: [
            QuirkHint(quirk="uses simple analogies to explain complex topics", kind="analogy", domains=["everyday"]),
            QuirkHint(
                quirk="admits uncertainty honestly", kind="uncertainty",
                applies_to=["recent_events", "unanswerable"], phrases=["not sure", "don't know", "cutoff"],
            ),
        ]
    )

    @property
    def slug(self) -> str:
        """The identity's folder name: its name, lower case, non-alphanumerics as '-'."""
        return slug(self.name)


def slug(text: str) -> str:
    """'LanBot' -> 'lanbot', 'My Bot 2' -> 'my-bot-2'."""
    return re.sub(r"[^a-z0-9]+", "-", str(text).lower()).strip("-") or "unnamed"


class IdentityError(LanbotError, ValueError):
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
        identity = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(ModelIdentity), data))
    except OmegaConfBaseException as exc:
        raise IdentityError(f"bad field identity.{exc.full_key}: {str(exc).splitlines()[0].rstrip('.')}") from None
    check_hints(identity)
    return identity


def check_hints(identity: ModelIdentity) -> None:
    """Each quirk hint names a listed quirk, a known kind and known reply kinds (IdentityError names the fix)."""
    for i, hint in enumerate(identity.quirk_hints):
        where = f"identity.quirk_hints[{i}]"
        if hint.quirk not in identity.quirks:
            raise IdentityError(
                f"{where}.quirk {hint.quirk!r} is not one of identity.quirks; copy the quirk word for word, "
                "or drop the hint (identity.quirk_hints=[] drops them all)")
        if hint.kind not in QUIRK_KINDS:
            raise IdentityError(f"{where}.kind {hint.kind!r} is not one of {', '.join(QUIRK_KINDS)}")
        for key in ("applies_to", "never_in"):
            bad = [k for k in getattr(hint, key) if k not in REPLY_KINDS]
            if bad:
                raise IdentityError(f"{where}.{key} has {bad}; reply kinds are {', '.join(REPLY_KINDS)}")


def register() -> None:
    """Register the schema (group `identity`, name `identity_schema`) and lanbot's resolvers."""
    ConfigStore.instance().store(group="identity", name="identity_schema", node=ModelIdentity)
    if not OmegaConf.has_resolver("slug"):
        OmegaConf.register_new_resolver("slug", slug)


register()
