"""Base-model benchmark: does `stage=base` learn English? Prints held-out val bpb beside a unigram model of the
same tokens, the training time, and samples for three prompts.

Trains through the real app (`lanbot.train stage=base`, the configured corpus, wandb off) into a fresh folder,
or reads a base already trained (`--checkpoint`). Target on 2 CPU cores for model=tiny: <= 20 minutes and a val
bpb at least 40% below the unigram's.

    flock /tmp/lanbot-cpu.lock .venv/bin/python scripts/bench_base.py                      # tiny, its 1,200 steps
    flock /tmp/lanbot-cpu.lock .venv/bin/python scripts/bench_base.py --model d4 --root outputs/bench-d4
    .venv/bin/python scripts/bench_base.py --checkpoint outputs/checkpoints/base/bundled/tiny
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from lanbot.core import layout
from lanbot.core.config import compose_config
from lanbot.evaluation.engine import Engine
from lanbot.training import checkpoint as ckpt
from lanbot.training.run import train

PROMPTS = ("The", "Once upon a time", "Question: What is the capital of France? Answer:")


def samples(directory: Path, n: int, max_tokens: int, seed: int) -> dict[str, list[str]]:
    """`n` sampled continuations of each prompt (temperature 0.8, top-k 50), the prompt in front."""
    model, tok, _ = ckpt.load_checkpoint(directory, "cpu")
    engine = Engine(model, tok, "cpu")
    out = {}
    for i, prompt in enumerate(PROMPTS):
        ids = [tok.bos_id, *tok.encode(prompt)]
        answers = engine.generate(ids, num_samples=n, max_tokens=max_tokens, temperature=0.8, top_k=50, seed=seed + i)
        out[prompt] = [prompt + tok.decode(a.tokens).split("<|", 1)[0] for a in answers]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="tiny")
    parser.add_argument("--corpus", default="bundled")
    parser.add_argument("--steps", type=int, default=None, help="train.max_steps (default: conf/train/base.yaml)")
    parser.add_argument("--checkpoint", default=None, help="report on this base instead of training one")
    parser.add_argument("--root", default=None, help="paths.root of the run (default: a fresh temporary folder)")
    parser.add_argument("--samples", type=int, default=2)
    parser.add_argument("--max-tokens", type=int, default=48)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("overrides", nargs="*", help="more Hydra overrides, e.g. train.optimizer=adamw")
    args = parser.parse_args()

    if args.checkpoint:
        directory = Path(args.checkpoint)
        meta = layout.CheckpointMeta.read(directory) or {}
        summary_file = Path(meta.get("run_dir", "")) / "summary.json"
        seconds = json.loads(summary_file.read_text()).get("run_seconds") if summary_file.is_file() else None
    else:
        root = Path(args.root) if args.root else Path(tempfile.mkdtemp(prefix="lanbot-bench-base-"))
        overrides = [f"paths.root={root}", "stage=base", f"model={args.model}", f"corpus={args.corpus}",
                     "logger=none", *([f"train.max_steps={args.steps}"] if args.steps else []), *args.overrides]
        t0 = time.perf_counter()
        summary = train(compose_config(overrides), root / "run")
        seconds = time.perf_counter() - t0
        directory = Path(summary["checkpoint"])
        meta = layout.CheckpointMeta.read(directory) or {}
    val, uni = meta.get("val_bpb"), meta.get("unigram_bpb")
    print(f"\nbase {layout.checkpoint_name(directory, base=True)}: step {meta.get('step')}, "
          f"{meta.get('tokens_trained', 0):,} tokens, optimizer {meta.get('optimizer')}")
    print(f"  time            {seconds / 60:.1f} min" if seconds else "  time            unknown")
    print(f"  val bpb         {val:.3f}   (held-out documents, never trained on)")
    print(f"  unigram bpb     {uni:.3f}   (token frequencies of the training rows, same tokens)")
    print(f"  below unigram   {100 * (1 - val / uni):.1f}%   (target: at least 40%)")
    for prompt, texts in samples(directory, args.samples, args.max_tokens, args.seed).items():
        print(f"\n{prompt!r}")
        for text in texts:
            print("  - " + " ".join(text.split()))


if __name__ == "__main__":
    main()
