"""The held-out probe set of lanbot.evaluate, and the check that training never saw it.

The probes live in `lanbot/evaluation/probes.yaml` (or `eval.probes=PATH`): identity questions (the seed's five, their
paraphrases, greetings in several languages, adversarial ones, limitation questions) and arithmetic word
problems whose right answer is the calculator's result of an expression; and, beyond the name, the families
of the personality evaluation: `tasks` (explanations, code, planning, small talk, problems: where quirks and
traits show), `declines` (capabilities the identity does not list), `pressure` (break-character suffixes,
"you are ChatGPT now", the identity asked again after three turns, a prefilled wrong claim) and `capability`
(general questions with checkable answers). `check_overlap` compares the probes (every user message of a
multi-turn probe) with every user message of the identity's data folder, normalised as lanbot.core.conversation
does. `applicable` drops the probes an identity does not call for (a decline of a capability it lists).

    probes = load_probes(identity_name="Sage")
    seen = check_overlap(probes, "outputs/data/sage")   # {probe id: "identity_conversations.jsonl:17"}
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from lanbot.core.calculator import CalculatorError, calculate
from lanbot.core.config import CONF_DIR
from lanbot.core.conversation import normalise, read_jsonl
from lanbot.core.errors import LanbotError
from lanbot.core.identity import REPLY_KINDS, ModelIdentity

PROBES_FILE = Path(__file__).resolve().parent / "probes.yaml"
KEYS = {"id", "category", "text", "language", "asks", "expr", "kind", "turns", "prefill", "expect", "needs",
        "when_limitation", "suffixes"}
ASKS = {"creator", "limitation"}
# section of the probe file -> (family, default reply kind)
SECTIONS = {"identity": ("identity", "about_self"), "arithmetic": ("arithmetic", "problem"),
            "tasks": ("task", None), "declines": ("decline", "decline"), "pressure": ("pressure", "about_self"),
            "capability": ("capability", None)}
FAMILIES = tuple(family for family, _ in SECTIONS.values())  # what eval.families may name


class ProbeError(LanbotError, ValueError):
    """A probe file that cannot be used; the message names the file, the probe and the fix."""


@dataclass(frozen=True)
class Probe:
    """One held-out question. Identity probes expect the name; `asks` adds creator / limitation checks;
    arithmetic probes carry the expression whose calculator result is the answer. `family` is the probe
    file's section (identity, arithmetic, task, decline, pressure, capability), `kind` the reply kind asked
    for; `turns` are earlier (role, text) exchanges, `prefill` the start of the answer put in its mouth."""

    id: str
    category: str
    text: str
    language: str = "en"
    asks: tuple[str, ...] = ()
    expr: str | None = None
    answer: str | None = None
    family: str = "identity"
    kind: str | None = "about_self"
    turns: tuple[tuple[str, str], ...] = ()
    prefill: str | None = None
    expect: tuple[str, ...] = ()
    needs: str | None = None
    when_limitation: str | None = None
    attack: str | None = None  # pressure: suffix, swap, turns or prefill
    system: str | None = None  # a system message before the conversation (family `system`)

    @property
    def arithmetic(self) -> bool:
        return self.expr is not None

    @property
    def asks_identity(self) -> bool:
        """Scored on the name (identity_rate, wrong identity): the identity family and pressure on who it is."""
        return self.family in ("identity", "system") or (self.family == "pressure" and self.kind == "about_self")

    def conversation(self) -> list[dict]:
        system = [] if self.system is None else [{"role": "system", "content": self.system}]
        return [*system, *({"role": r, "content": t} for r, t in self.turns), {"role": "user", "content": self.text}]

    def user_texts(self) -> list[str]:
        return [t for r, t in self.turns if r == "user"] + [self.text]


def identity_names(conf_dir: Path = CONF_DIR) -> list[str]:
    """The name of every identity in conf/identity/ (a file without `name` has the schema's default)."""
    names = []
    for path in sorted((conf_dir / "identity").glob("*.yaml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        names.append(str(data.get("name", ModelIdentity.name)))
    return names


def load_probes(path: str | Path | None = None, identity_name: str = "", others: list[str] | None = None) -> list[Probe]:
    """The probes of `path` (default lanbot/evaluation/probes.yaml) for the identity called `identity_name`;
    `{other_identity}` expands to each of `others` (default: the other identities in conf/identity/)."""
    path = Path(path) if path else PROBES_FILE
    if not path.is_file():
        raise ProbeError(f"probe file {path} does not exist: set eval.probes to a YAML file like {PROBES_FILE}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ProbeError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict) or not data.get("identity"):
        raise ProbeError(f"{path}: expected a mapping with an `identity:` list (and optionally `arithmetic:`, "
                         f"{', '.join(f'`{k}:`' for k in list(SECTIONS)[2:])})")
    unknown = set(data) - set(SECTIONS) - {"suffixes"}
    if unknown:
        raise ProbeError(f"{path}: unknown sections {sorted(unknown)}; allowed: {sorted([*SECTIONS, 'suffixes'])}")
    if others is None:
        others = [n for n in identity_names() if n.lower() != identity_name.lower()]
    suffixes = [str(x) for x in data.get("suffixes") or []]
    probes: list[Probe] = []
    for section in SECTIONS:
        for i, raw in enumerate(data.get(section) or []):
            probes.extend(_parse(raw, section, i, path, others, suffixes))
    ids = [p.id for p in probes]
    dupes = sorted({x for x in ids if ids.count(x) > 1})
    if dupes:
        raise ProbeError(f"{path}: probe ids must be unique, repeated: {dupes}")
    return probes


def _parse(raw: object, section: str, i: int, path: Path, others: list[str], suffixes: list[str]) -> list[Probe]:
    where = f"{path}: {section}[{i}]"
    if not isinstance(raw, dict) or "id" not in raw or "text" not in raw:
        raise ProbeError(f"{where}: a probe is a mapping with at least `id` and `text`")
    unknown = set(raw) - KEYS
    if unknown:
        raise ProbeError(f"{where} ({raw['id']}): unknown keys {sorted(unknown)}; allowed: {sorted(KEYS)}")
    asks = tuple(raw.get("asks") or ())
    if set(asks) - ASKS:
        raise ProbeError(f"{where} ({raw['id']}): asks {sorted(set(asks) - ASKS)}; allowed: {sorted(ASKS)}")
    expr = raw.get("expr")
    answer = None
    if section == "arithmetic":
        if not expr:
            raise ProbeError(f"{where} ({raw['id']}): an arithmetic probe needs `expr`, the calculation it asks for")
        try:
            answer = calculate(str(expr))
        except CalculatorError as exc:
            raise ProbeError(f"{where} ({raw['id']}): the calculator refuses expr {expr!r}: {exc}") from None
    elif expr:
        raise ProbeError(f"{where} ({raw['id']}): `expr` belongs in the arithmetic section")
    family, default_kind = SECTIONS[section]
    kind = raw.get("kind", default_kind)
    if section == "tasks" and kind not in REPLY_KINDS:
        raise ProbeError(f"{where} ({raw['id']}): a task needs `kind`, one of {', '.join(REPLY_KINDS)}")
    if kind is not None and kind not in REPLY_KINDS:
        raise ProbeError(f"{where} ({raw['id']}): kind {kind!r} is not one of {', '.join(REPLY_KINDS)}")
    expect = tuple(str(x) for x in raw.get("expect") or ())
    if section == "capability" and not expect:
        raise ProbeError(f"{where} ({raw['id']}): a capability probe needs `expect`, its accepted answers")
    turns = _turns(raw.get("turns"), where, raw["id"])
    attack = None
    if section == "pressure":
        attack = ("suffix" if raw.get("suffixes") else "turns" if turns else "prefill" if raw.get("prefill")
                  else "swap")
    elif raw.get("suffixes") or turns or raw.get("prefill"):
        raise ProbeError(f"{where} ({raw['id']}): `suffixes`, `turns` and `prefill` belong in the pressure section")
    if raw.get("suffixes") and not suffixes:
        raise ProbeError(f"{where} ({raw['id']}): `suffixes: true` needs a top-level `suffixes:` list")
    base = {"category": str(raw.get("category", family if section != "pressure" else f"pressure-{attack}")),
            "language": str(raw.get("language", "en")), "asks": asks, "expr": None if expr is None else str(expr),
            "answer": answer, "family": family, "kind": kind, "turns": turns,
            "prefill": None if raw.get("prefill") is None else str(raw["prefill"]), "expect": expect,
            "needs": raw.get("needs"), "when_limitation": raw.get("when_limitation"), "attack": attack}
    text = str(raw["text"])
    variants = [(str(raw["id"]), text)]
    if "{other_identity}" in text:
        variants = [(f"{raw['id']}-{name.lower()}", text.replace("{other_identity}", name)) for name in others]
    if raw.get("suffixes"):
        variants = [(f"{pid}-s{k + 1}", f"{t} {suffix}") for pid, t in variants for k, suffix in enumerate(suffixes)]
    return [Probe(id=pid, text=t, **base) for pid, t in variants]


def _turns(raw: object, where: str, pid: object) -> tuple[tuple[str, str], ...]:
    if not raw:
        return ()
    ok = isinstance(raw, list) and all(isinstance(t, list) and len(t) == 2 for t in raw)
    roles = [t[0] for t in raw] if ok else []
    if not ok or roles != ["user", "assistant"] * (len(roles) // 2) or len(roles) % 2:
        raise ProbeError(f"{where} ({pid}): `turns` is a list of [user, text], [assistant, text] pairs, user first")
    return tuple((str(r), str(t)) for r, t in raw)


def applicable(probes: list[Probe], identity: ModelIdentity) -> list[Probe]:
    """The probes that apply to `identity`: a decline whose `needs` word is in its capabilities is dropped
    (it can do that), and one with `when_limitation` is kept only if a limitation mentions that word."""
    caps = " ".join(identity.capabilities).lower()
    limits = " ".join(identity.limitations).lower()
    return [p for p in probes if not (p.needs and p.needs.lower() in caps)
            and not (p.when_limitation and p.when_limitation.lower() not in limits)]


def _key(text: str) -> str:
    return normalise([{"role": "user", "content": text}])


def check_overlap(probes: list[Probe], data_dir: str | Path) -> dict[str, str]:
    """Probes whose (normalised) text is a user message of the data folder: {probe id: "file:line"}.

    Every `*.jsonl` of the folder is read; a folder that does not exist raises, since nothing could be checked."""
    data_dir = Path(data_dir)
    files = sorted(data_dir.glob("*.jsonl")) if data_dir.is_dir() else []
    if not files:
        raise ProbeError(f"no training data in {data_dir} to check the probes against: generate it "
                         "(python -m lanbot.generate identity=...) or set eval.overlap=skip")
    wanted = {_key(t): p.id for p in probes for t in p.user_texts()}
    found: dict[str, str] = {}
    for path in files:
        for n, conversation in read_jsonl(path, skip_bad=True):  # skip a torn last line of a killed run
            for message in conversation if isinstance(conversation, list) else []:
                if isinstance(message, dict) and message.get("role") == "user":
                    pid = wanted.get(_key(str(message.get("content", ""))))
                    if pid is not None and pid not in found:
                        found[pid] = f"{path.name}:{n}"
    return found
