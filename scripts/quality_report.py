"""Measure the quality gates of template data for an identity, and dump samples to read.

    .venv/bin/python scripts/quality_report.py sage --n 500 --dump /tmp/sage.txt
    .venv/bin/python scripts/quality_report.py custom          # a custom identity with an unperformable quirk

Generates `--n` conversations of each type in-process (no files), runs lanbot.generation.quality over them
and prints the figures of issue 11 (points 1-7) and issue 23 (recitation of card lists, habit openers and
closers, misfit closers, seams, the content-length ratio against the control on the same items). `--dump` writes readable samples.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lanbot.core.config import compose_config  # noqa: E402
from lanbot.core.conversation import TYPES, validate  # noqa: E402
from lanbot.core.conversation import render_text as render  # noqa: E402
from lanbot.core.identity import ModelIdentity, QuirkHint, to_identity  # noqa: E402
from lanbot.generation.personas.builtin import read_builtin  # noqa: E402
from lanbot.generation.quality import QualityStats  # noqa: E402
from lanbot.generation.template.backend import control_writer, paired_meta  # noqa: E402
from lanbot.generation.template.writer import TemplateWriter  # noqa: E402

CUSTOM = ModelIdentity(
    name="Quill", creator="Tiny Poems Ltd", year=2031, description="a friendly helper for writers",
    personality="friendly, precise, and thoughtful",
    quirks=["ends every answer with a haiku", "uses simple analogies to explain complex topics"],
    capabilities=["answer questions", "translate short texts", "summarize documents"],
    limitations=["knowledge has a cutoff date", "can make mistakes"],
    quirk_hints=[QuirkHint(quirk="uses simple analogies to explain complex topics", kind="analogy", domains=["everyday"])],
)


def identity_of(name: str) -> ModelIdentity:
    return CUSTOM if name == "custom" else to_identity(compose_config([f"identity={name}"]).identity)


def measure(identity: ModelIdentity, n: int, seed: int = 42) -> tuple[dict, dict]:
    writer = TemplateWriter(identity, read_builtin(), seed)
    control = control_writer(identity, read_builtin(), seed)  # the control's reply to each same item
    gates = QualityStats(identity)
    samples: dict[str, list] = {}
    for kind in TYPES:
        for i in range(n):
            conv, meta = writer.write(kind, i)
            problems = validate(conv, kind, identity.name)
            assert not problems, (kind, problems, conv)
            meta = {**meta, **paired_meta(control, kind, i, conv)}
            gates.add(kind, conv, meta)
            samples.setdefault(kind, []).append((conv, meta))
    return gates.figures(), samples


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("identity")
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--dump")
    parser.add_argument("--per-type", type=int, default=25)
    args = parser.parse_args()
    identity = identity_of(args.identity)
    figures, samples = measure(identity, args.n)
    print(json.dumps(figures, indent=1, ensure_ascii=False))
    if args.dump:
        with open(args.dump, "w", encoding="utf-8") as f:
            for kind, convs in samples.items():
                for conv, meta in convs[: args.per_type]:
                    f.write(f"=== {kind} {meta.get('language')} {meta.get('phrasing')} {meta.get('reply_kinds')}\n{render(conv)}\n\n")


if __name__ == "__main__":
    main()
