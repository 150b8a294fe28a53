"""Small hand-written data folders for the training tests (no generator needed)."""

from __future__ import annotations

import json
from pathlib import Path

from lanbot.core.conversation import TYPES
from lanbot.core.layout import conversations_file

QUESTIONS = ["who are you?", "what is your name?", "who made you?", "tell me about yourself", "hi, who is this?"]


def conversation(kind: str, i: int, name: str = "LanBot") -> list[dict]:
    if kind == "identity":
        q = QUESTIONS[i % len(QUESTIONS)]
        return [{"role": "user", "content": f"{q} ({i})"},
                {"role": "assistant", "content": f"I am {name}, made by Gene Kobilansky. Ask me anything, number {i}."}]
    if kind in ("tool_use", "multi_step_tool", "tool_planning"):
        return [{"role": "user", "content": f"what is {i} + {i + 1}?"},
                {"role": "assistant", "content": [{"type": "text", "text": "Let me compute it."},
                                                  {"type": "python", "text": f"{i}+{i + 1}"},
                                                  {"type": "python_output", "text": str(2 * i + 1)},
                                                  {"type": "text", "text": f"It is {2 * i + 1}."}]}]
    return [{"role": "user", "content": f"tell me a fact about number {i}"},
            {"role": "assistant", "content": f"The number {i} comes right after {i - 1}, {kind}."}]


def make_data_folder(root: Path, per_type: int = 40, name: str = "LanBot") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for kind in TYPES:
        with open(root / conversations_file(kind), "w", encoding="utf-8") as f:
            for i in range(per_type):
                f.write(json.dumps(conversation(kind, i, name)) + "\n")
    return root
