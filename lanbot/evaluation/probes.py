"""The held-out probe set of lanbot.evaluate, and the check that training never saw it.

The probes live in `lanbot/evaluation/probes.yaml` (or `eval.probes=PATH`): identity questions (the seed's five, their
paraphrases, greetings in several languages, adversarial ones, limitation questions) and arithmetic word
problems whose right answer is the calculator's result of an expression. `check_overlap` compares the
probes with every user message of the identity's data folder, normalised as lanbot.core.conversation does.

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
from lanbot.core.identity import ModelIdentity

PROBES_FILE = Path(__file__).resolve().parent / "probes.yaml"
KEYS = {"id", "category", "text", "language", "asks", "expr"}
ASKS = {"creator", "limitation"}


class ProbeError(LanbotError, ValueError):
    """A probe file that cannot be used; the message names the file, the probe and the fix."""


@dataclass(frozen=True)
class Probe:
    """One held-out question. Identity probes expect the name; `asks` adds creator / limitation checks;
    arithmetic probes carry the expression whose calculator result is the answer."""

    id: str
    category: str
    text: str
    language: str = "en"
    asks: tuple[str, ...] = ()
    expr: str | None = None
    answer: str | None = None

    @property
    def arithmetic(self) -> bool:
        return self.expr is not None

    def conversation(self) -> list[dict]:
        return [{"role": "user", "content": self.text}]


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
        raise ProbeError(f"{path}: expected a mapping with an `identity:` list (and optionally `arithmetic:`)")
    if others is None:
        others = [n for n in identity_names() if n.lower() != identity_name.lower()]
    probes: list[Probe] = []
    for section in ("identity", "arithmetic"):
        for i, raw in enumerate(data.get(section) or []):
            probes.extend(_parse(raw, section, i, path, others))
    ids = [p.id for p in probes]
    dupes = sorted({x for x in ids if ids.count(x) > 1})
    if dupes:
        raise ProbeError(f"{path}: probe ids must be unique, repeated: {dupes}")
    return probes


def _parse(raw: object, section: str, i: int, path: Path, others: list[str]) -> list[Probe]:
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
    base = {"category": str(raw.get("category", section)), "language": str(raw.get("language", "en")),
            "asks": asks, "expr": None if expr is None else str(expr), "answer": answer}
    text = str(raw["text"])
    if "{other_identity}" not in text:
        return [Probe(id=str(raw["id"]), text=text, **base)]
    return [Probe(id=f"{raw['id']}-{name.lower()}", text=text.replace("{other_identity}", name), **base)
            for name in others]


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
    wanted = {_key(p.text): p.id for p in probes}
    found: dict[str, str] = {}
    for path in files:
        for n, conversation in read_jsonl(path, skip_bad=True):  # skip a torn last line of a killed run
            for message in conversation if isinstance(conversation, list) else []:
                if isinstance(message, dict) and message.get("role") == "user":
                    pid = wanted.get(_key(str(message.get("content", ""))))
                    if pid is not None and pid not in found:
                        found[pid] = f"{path.name}:{n}"
    return found
