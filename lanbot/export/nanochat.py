"""Hand an identity's data or model to nanochat: `python -m lanbot.export.nanochat identity=sage`.

Writes identity_conversations.jsonl in nanochat's CustomJSON form, or with `export.checkpoint=sft|mid|<folder>`
the model as a nanochat checkpoint (the work is lanbot.sharing.nanochat and lanbot.sharing.nanochat_checkpoint).
"""

from __future__ import annotations

from lanbot.core.app import run_app
from lanbot.sharing.nanochat import export_app


def main() -> None:
    run_app("export.nanochat", export_app)


if __name__ == "__main__":
    main()
