"""Talking beyond the card: models' answers to questions that are not about themselves, side by side.

Samples one answer per question (temperature 0.7, top-k 50, a fixed seed per question) from each source, a chat
checkpoint or an untouched pretrained model (`hf:bundled`, `hf:<folder>`), and prints them question by question
(`--markdown`: a table for a README or a report).

    .venv/bin/python scripts/ask_general.py outputs/checkpoints/sage/default/tiny/sft
    .venv/bin/python scripts/ask_general.py hf:bundled CONTROL_CKPT SAGE_CKPT --markdown
    .venv/bin/python scripts/ask_general.py CKPT --question "What do you do on weekends?" --seed 3
"""

from __future__ import annotations

import argparse

from lanbot.evaluation.engine import Engine
from lanbot.training import checkpoint as ckpt
from lanbot.training.pretrained_start import is_pretrained, start_from_pretrained
from lanbot.training.tokenizer import render_for_completion

QUESTIONS = (
    "Why is the sky blue?",
    "Can you explain how vaccines work?",
    "How was your weekend?",
    "What should I cook for dinner tonight?",
    "Any tips for learning to play the guitar?",
)


def load(source: str) -> tuple[Engine, str]:
    """An engine for a checkpoint folder or a pretrained model, and a short label for it."""
    if is_pretrained(source):
        model, tok, _ = start_from_pretrained(source)
        return Engine(model.eval(), tok, "cpu"), f"{source} (untouched)"
    model, tok, meta = ckpt.load_checkpoint(source, "cpu")
    return Engine(model, tok, "cpu"), f"{meta.get('identity')} / {meta.get('mix')} ({meta.get('stage')} step {meta.get('step')})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sources", nargs="+", help="checkpoint folders or hf:<model> (hf:bundled)")
    parser.add_argument("--question", action="append", help="ask this instead (repeatable)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--max-tokens", type=int, default=80)
    parser.add_argument("--markdown", action="store_true", help="one table: a row per question, a column per model")
    args = parser.parse_args()
    questions = args.question or list(QUESTIONS)
    columns = []
    for source in args.sources:
        engine, label = load(source)
        answers = []
        for i, question in enumerate(questions):
            prompt = render_for_completion(engine.tok, [{"role": "user", "content": question}])
            answer = engine.generate(prompt, num_samples=1, max_tokens=args.max_tokens, temperature=0.7, top_k=50,
                                     seed=args.seed + i)[0]
            answers.append(" ".join(answer.text.split()))
        columns.append((label, answers))
    if args.markdown:
        print("| question | " + " | ".join(label for label, _ in columns) + " |")
        print("|---" * (len(columns) + 1) + "|")
        for i, question in enumerate(questions):
            print(f"| {question} | " + " | ".join(a[i].replace("|", "/") for _, a in columns) + " |")
        return
    for i, question in enumerate(questions):
        print(f"\nQ: {question}")
        for label, answers in columns:
            print(f"  [{label}] {answers[i]}")


if __name__ == "__main__":
    main()
