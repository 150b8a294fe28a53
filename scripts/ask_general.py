"""Talking beyond the card: a checkpoint's answers to questions that are not about itself.

Samples one answer per question (temperature 0.7, top-k 50, a fixed seed) from a chat checkpoint and prints them,
so two checkpoints (say, the sft model before and after it had a base) can be read side by side.

    .venv/bin/python scripts/ask_general.py outputs/checkpoints/sage/default/tiny/sft
    .venv/bin/python scripts/ask_general.py CKPT --question "What do you do on weekends?" --seed 3
"""

from __future__ import annotations

import argparse

from lanbot.evaluation.engine import Engine
from lanbot.training import checkpoint as ckpt
from lanbot.training.tokenizer import render_for_completion

QUESTIONS = (
    "Why is the sky blue?",
    "Can you explain how vaccines work?",
    "How was your weekend?",
    "What should I cook for dinner tonight?",
    "Any tips for learning to play the guitar?",
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint")
    parser.add_argument("--question", action="append", help="ask this instead (repeatable)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--max-tokens", type=int, default=80)
    args = parser.parse_args()
    model, tok, meta = ckpt.load_checkpoint(args.checkpoint, "cpu")
    engine = Engine(model, tok, "cpu")
    print(f"{args.checkpoint} ({meta.get('stage')}, step {meta.get('step')}, base: "
          f"{(meta.get('base') or {}).get('name', 'none')})")
    for i, question in enumerate(args.question or QUESTIONS):
        prompt = render_for_completion(tok, [{"role": "user", "content": question}])
        answer = engine.generate(prompt, num_samples=1, max_tokens=args.max_tokens, temperature=0.7, top_k=50,
                                 seed=args.seed + i)[0]
        print(f"\nQ: {question}\nA: {' '.join(answer.text.split())}")


if __name__ == "__main__":
    main()
