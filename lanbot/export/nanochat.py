"""Hand an identity's data or model to nanochat: `python -m lanbot.export.nanochat identity=sage`.

    python -m lanbot.export.nanochat identity=sage                      # the data, CustomJSON
    python -m lanbot.export.nanochat identity=sage export.types=[identity,reasoning]
    python -m lanbot.export.nanochat identity=sage model=d20 export.checkpoint=sft export.model_tag=sage

Writes identity_conversations.jsonl in the form of nanochat's CustomJSON (nanochat up to 2026-07-03 and its forks),
or with `export.checkpoint=sft|mid|<folder>` the model as a nanochat checkpoint, saying which nanochat commits
load it. The work is lanbot.sharing.nanochat_export (with nanochat_checkpoint, nanochat_tokenizer and
nanochat_versions), not this package: lanbot.train imports nanochat checkpoints with the same converters
(`train.init_from=nanochat:<folder>`), so the nanochat formats live in one place, lanbot.sharing, both ways.
"""

from __future__ import annotations

from lanbot.core.app import run_app
from lanbot.sharing.nanochat_export import export_app


def main() -> None:
    run_app("export.nanochat", export_app)


if __name__ == "__main__":
    main()
