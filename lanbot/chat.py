"""Talk to a trained checkpoint: `python -m lanbot.chat identity=sage`; the calculator runs when it calls it.

    python -m lanbot.chat identity=sage                                # a conversation: /clear, /quit
    python -m lanbot.chat identity=sage chat.prompt="Who made you?"   # one reply, then exit
    python -m lanbot.chat chat.checkpoint=outputs/checkpoints/sage/default/tiny/mid
"""

from __future__ import annotations

from lanbot.core.app import run_app
from lanbot.evaluation.chat import chat_app


def main() -> None:
    run_app("chat", chat_app)


if __name__ == "__main__":
    main()
