"""The model's identity: a dataclass schema registered with Hydra's ConfigStore.

Every file in conf/identity/ starts from `identity_schema`, so an unknown field or a value of the
wrong type fails at load, naming the field. A new identity is a new YAML file and no code.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Any

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
        """The identity's folder name (`identity_slug`)."""
        return identity_slug(self.name)


def slug(text: str) -> str:
    """'LanBot' -> 'lanbot', 'My Bot 2' -> 'my-bot-2' (score names, tags; an identity's folder: `identity_slug`)."""
    return re.sub(r"[^a-z0-9]+", "-", str(text).lower()).strip("-") or "unnamed"


PLAIN_NAME = re.compile(r"[A-Za-z0-9]+(?:[ -][A-Za-z0-9]+)*")  # what `slug` keeps whole, but for the case
MAX_SLUG = 48


def identity_slug(name: str) -> str:
    """The identity's folder name: `slug(name)` for a plain ASCII name ('Sage' -> 'sage', 'My Bot' -> 'my-bot');
    else the readable part plus 8 hex of the name's sha256, so names the slug would lose or merge get folders
    of their own ('Zoë' -> 'zo-1a2b3c4d' beside 'Zo' -> 'zo'; '🤖', '' and '...' -> 'unnamed-<digest>').

    What is left shared (case, a space for a hyphen: 'SAGE' and 'Sage') is refused by the owner checks
    (lanbot.generation.datafolder, the checkpoint's meta.json), which name both identities.
    """
    text = str(name)
    readable = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    if PLAIN_NAME.fullmatch(text) and len(readable) <= MAX_SLUG:
        return readable
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()[:8]
    return f"{readable[:MAX_SLUG].rstrip('-') or 'unnamed'}-{digest}"


class IdentityError(LanbotError, ValueError):
    """An identity that does not fit the schema; the message names the field."""


# Bounded input: what one identity may hold (a 10 MB description would be copied into every conversation)
MAX_FILE_BYTES = 64 * 1024
MAX_CHARS = {"name": 64, "creator": 200, "description": 2000, "personality": 1000}
MAX_ITEMS, MAX_ITEM_CHARS = 50, 500  # quirks, capabilities, limitations, quirk_hints and their phrase lists
# resolvers an identity file may use: lanbot's own, which read nothing outside the config
SAFE_RESOLVERS = frozenset({"slug", "identity_slug"})
_RESOLVER_CALL = re.compile(r"\$\{\s*([A-Za-z_][\w.]*)\s*:")
_PLAIN_REF = re.compile(r"\$\{\s*([A-Za-z_][\w.]*)\s*\}")


def check_file(path: Any) -> None:
    """An identity file within MAX_FILE_BYTES and UTF-8, or IdentityError naming it (and the line)."""
    from pathlib import Path

    path = Path(path)
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise IdentityError(f"{path}: {size:,} bytes, more than the {MAX_FILE_BYTES:,} an identity file may hold; "
                            "shorten its fields (a description is a sentence or two)")
    data = path.read_bytes()
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise IdentityError(f"{path}, line {line}: not UTF-8 (byte 0x{data[exc.start]:02x} at offset {exc.start}); "
                            "save the file as UTF-8") from None


def check_limits(identity: ModelIdentity) -> None:
    """Every field within its size limit, or IdentityError naming the field, its size and the limit."""
    for key, limit in MAX_CHARS.items():
        value = str(getattr(identity, key))
        if len(value) > limit:
            raise IdentityError(f"identity.{key} has {len(value):,} characters, more than the {limit:,} allowed; "
                                "shorten it")
    lists: dict[str, list] = {k: getattr(identity, k) for k in ("quirks", "capabilities", "limitations")}
    lists["quirk_hints"] = identity.quirk_hints
    for i, hint in enumerate(identity.quirk_hints):
        lists[f"quirk_hints[{i}].phrases"], lists[f"quirk_hints[{i}].domains"] = hint.phrases, hint.domains
    for key, items in lists.items():
        if len(items) > MAX_ITEMS:
            raise IdentityError(f"identity.{key} has {len(items)} entries, more than the {MAX_ITEMS} allowed")
        for j, item in enumerate(items):
            if isinstance(item, str) and len(item) > MAX_ITEM_CHARS:
                raise IdentityError(f"identity.{key}[{j}] has {len(item):,} characters, more than the "
                                    f"{MAX_ITEM_CHARS} allowed; shorten it")


def check_interpolations(node: DictConfig | ListConfig) -> None:
    """Refuse resolvers in the identity that read outside the config (`${oc.env:KEY}`, `${oc.decode:...}`,
    custom ones): their values would be copied into data, checkpoints, wandb and cards. References to other
    keys (`${name}`) are followed, so a key that reads the environment is refused as well."""
    root = node._get_root() if isinstance(node, DictConfig | ListConfig) else None
    raw_root = OmegaConf.to_container(root, resolve=False) if root is not None else {}
    raw = OmegaConf.to_container(node, resolve=False)
    prefix = node._get_full_key(None) or "identity" if isinstance(node, DictConfig | ListConfig) else "identity"
    for where, text in _strings(raw, str(prefix)):
        problem = _unsafe(text, raw_root, set())
        if problem:
            raise IdentityError(
                f"{where}: `{text[:80]}` {problem}; identity fields may not read the environment or call resolvers "
                f"other than {', '.join(sorted(SAFE_RESOLVERS))}: write the value itself (a secret has no place "
                "in an identity: it would be copied into the data, the checkpoint, wandb and the Hub cards)")


def _strings(value: Any, where: str) -> list[tuple[str, str]]:
    if isinstance(value, str):
        return [(where, value)] if "${" in value else []
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in _strings(v, f"{where}.{k}")]
    if isinstance(value, list):
        return [s for i, v in enumerate(value) for s in _strings(v, f"{where}[{i}]")]
    return []


def _unsafe(text: str, raw_root: Any, seen: set[str]) -> str | None:
    for name in _RESOLVER_CALL.findall(text):
        if name not in SAFE_RESOLVERS:
            return f"calls the resolver {name}" + (" (it reads the environment)" if name == "oc.env" else "")
    for key in _PLAIN_REF.findall(text):
        if key in seen or len(seen) > 20:
            continue
        target: Any = raw_root
        for part in key.split("."):
            target = target.get(part) if isinstance(target, dict) else None
        for _, inner in _strings(target, key):
            problem = _unsafe(inner, raw_root, {*seen, key})
            if problem:
                return f"refers to {key}, which {problem}"
    return None


def to_identity(node: DictConfig | ListConfig | dict) -> ModelIdentity:
    """The identity node of a composed config as a plain ModelIdentity, checked against the schema.

    Files in conf/identity/ are checked by Hydra already; this also catches one that left out
    `defaults: [identity_schema, _self_]`, and raises IdentityError naming the bad field.
    """
    if isinstance(node, DictConfig | ListConfig):
        check_interpolations(node)
    data = OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig | ListConfig) else node
    if not isinstance(data, dict):
        raise IdentityError(f"the identity must be a mapping of fields (name: ..., creator: ...), not {data!r}")
    try:
        identity = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(ModelIdentity), data))
    except OmegaConfBaseException as exc:
        raise IdentityError(f"bad field identity.{exc.full_key}: {str(exc).splitlines()[0].rstrip('.')}") from None
    check_limits(identity)
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


# A card that agrees with itself (issue 23): a skill the description or personality names must be covered by a
# capability and denied by no limitation, or the data says "I'm a practical coding assistant" in one reply and
# "writing code isn't one of my skills" in the next. skill: (words that name it in prose, words of a capability
# that covers it; the same stems the template writer reads capabilities by, lanbot.generation.template.style.TASKS).
SKILLS = {
    "coding": (r"\b(?:cod(?:e|es|ing)|coder|program(?:s|ming|mer)?|software|developer|debug\w*)\b",
               ("code", "coding", "program", "debug", "software", "script")),
    "translation": (r"\btranslat\w*", ("translat",)),
    "summaries": (r"\bsummar(?:y|ies|i[sz]\w*)\b", ("summar",)),
    "math": (r"\b(?:math\w*|calculat\w*|arithmetic|numbers?)\b", ("math", "calcul", "arithmetic", "number")),
    "poetry": (r"\b(?:poe(?:m|ms|try|t|ts))\b", ("poem", "poetry", "verse")),
    "teaching": (r"\b(?:teach\w*|tutor\w*|explain\w*)\b",
                 ("explain", "teach", "tutorial", "step-by-step", "answer questions", "questions")),
}
_SKILL_WORDS = {k: re.compile(p, re.I) for k, (p, _) in SKILLS.items()}
# A limitation that denies a skill: a negation before the skill's word ("can't write code", "no translation").
_DENIES = re.compile(r"\b(?:not|no|never|cannot|can't|can not|don't|doesn't|unable|without)\b", re.I)


def check_consistent(identity: ModelIdentity) -> None:
    """The card agrees with itself, or IdentityError naming the field, the skill and the two fixes.

    The rule, kept small so it explains itself: a skill named in `description` or `personality` (SKILLS) needs a
    capability containing one of its words, and no limitation may deny it (a negation and one of its words) while
    the description, personality or a capability claims it.
    """
    caps = [c.lower() for c in identity.capabilities]
    for key in ("description", "personality"):
        text = str(getattr(identity, key))
        for skill, (_, cover) in SKILLS.items():
            said = _SKILL_WORDS[skill].search(text)
            if said and not any(w in c for c in caps for w in cover):
                raise IdentityError(
                    f"identity.{key} {text!r} says {said.group(0)!r} ({skill}), but no entry of identity.capabilities "
                    f"{identity.capabilities} covers it; add a capability with one of the words {', '.join(cover)} "
                    f"(say '{_EXAMPLE_CAP[skill]}'), or take {said.group(0)!r} out of identity.{key}")
    for j, limitation in enumerate(identity.limitations):
        if not _DENIES.search(limitation):
            continue
        for skill, (_, cover) in SKILLS.items():
            if not any(w in limitation.lower() for w in cover) and not _SKILL_WORDS[skill].search(limitation):
                continue
            claims = [f"identity.{k}" for k in ("description", "personality") if _SKILL_WORDS[skill].search(str(getattr(identity, k)))]
            claims += [f"identity.capabilities[{i}]" for i, c in enumerate(caps) if any(w in c for w in cover)]
            if claims:
                raise IdentityError(
                    f"identity.limitations[{j}] {limitation!r} denies {skill}, which {' and '.join(claims)} "
                    f"claim{'s' if len(claims) == 1 else ''}; drop that limitation, or take {skill} out of "
                    f"{' and '.join(claims)}")


_EXAMPLE_CAP = {"coding": "write and debug code", "translation": "translate text", "summaries": "summarize documents",
                "math": "do math calculations", "poetry": "write short poems", "teaching": "explain complex topics simply"}


def drop_unlisted_hints(node: DictConfig, overrides: list[str]) -> list[str]:
    """After `identity.quirks=[...]` on the command line (and no override of `identity.quirk_hints`), drop the
    hints of quirks no longer listed; returns the quirks whose hints were dropped (the caller says so).

    Without it, overriding the quirks of an identity with hints fails on the file's own hints until the user
    adds `identity.quirk_hints=[]`, which drops the hints of the quirks kept as well. A hint in a file that names
    an unlisted quirk is still an error (check_hints): there it is a typo to fix, not a stale hint.
    """
    keys = {o.split("=", 1)[0].lstrip("+~") for o in overrides}
    if "identity.quirks" not in keys or any(k.startswith("identity.quirk_hints") for k in keys):
        return []
    hints = node.get("quirk_hints") if isinstance(node, DictConfig) else None
    if not hints:
        return []
    quirks = list(node.get("quirks") or [])
    kept = [h for h in hints if h.get("quirk") in quirks]
    dropped = [str(h.get("quirk")) for h in hints if h.get("quirk") not in quirks]
    if dropped:
        node.quirk_hints = kept
    return dropped


def register() -> None:
    """Register the schema (group `identity`, name `identity_schema`) and lanbot's resolvers."""
    ConfigStore.instance().store(group="identity", name="identity_schema", node=ModelIdentity)
    if not OmegaConf.has_resolver("slug"):
        OmegaConf.register_new_resolver("slug", slug)
    if not OmegaConf.has_resolver("identity_slug"):
        OmegaConf.register_new_resolver("identity_slug", identity_slug)


register()
