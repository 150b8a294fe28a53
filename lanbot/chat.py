"""Talk to a trained checkpoint: `python -m lanbot.chat identity=sage`; the calculator runs when it calls it.

    python -m lanbot.chat identity=sage                                # a conversation: /clear, /quit
    python -m lanbot.chat identity=sage chat.prompt="Who made you?"   # one reply, then exit
    python -m lanbot.chat chat.checkpoint=outputs/checkpoints/sage/default/tiny/mid

The work is lanbot.evaluation.chat_session, not a `chat` package of its own: talking to a checkpoint is the
evaluation's engine, checkpoint lookup and calculator loop (lanbot.evaluation.engine, inference), one module
beside them.
"""

from __future__ import annotations

from lanbot.core.app import run_app
from lanbot.evaluation.chat_session import chat_app


def main() -> None:
    run_app("chat", chat_app)


if __name__ == "__main__":
    main()
