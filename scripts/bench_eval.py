"""Wall time of a full evaluation: every probe family, `eval.samples` answers each (5 by default), on a
trained model=tiny checkpoint, on this machine's CPU (2 threads unless --threads says otherwise).

    flock /tmp/lanbot-cpu.lock .venv/bin/python scripts/bench_eval.py --checkpoint outputs/checkpoints/sage/default/tiny/sft
    .venv/bin/python scripts/bench_eval.py --checkpoint ... --identity sage --samples 5 --threads 2

It runs lanbot.evaluation.evaluate_checkpoint.evaluate_run as the app does (overlap check, sampling, rule checks, eval.json;
no wandb, no judge), once, and prints the total against the 60 s target; then, per family, the probes, the
answers and the sampling time of a second pass (sampling is where the time goes).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections import Counter
from pathlib import Path

import torch

from lanbot.core.config import compose_config
from lanbot.core.identity import to_identity
from lanbot.evaluation.evaluate_checkpoint import evaluate_run, probes_for, sample_answers
from lanbot.evaluation.inference import load_engine

TARGET_S = 60.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True, help="a model=tiny checkpoint folder (model.safetensors, meta.json)")
    parser.add_argument("--identity", default=None, help="conf/identity name (default: the checkpoint's)")
    parser.add_argument("--samples", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("overrides", nargs="*", help="further Hydra overrides, e.g. paths.root=outputs/fig")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    checkpoint = Path(args.checkpoint)
    meta = json.loads((checkpoint / "meta.json").read_text())
    identity = args.identity or meta["identity_slug"]
    cfg = compose_config([f"identity={identity}", "logger=none", "eval.device=cpu", f"eval.samples={args.samples}",
                          "eval.judge=null", *args.overrides])
    with tempfile.TemporaryDirectory() as run_dir:
        start = time.perf_counter()
        scores = evaluate_run(cfg, checkpoint, Path(run_dir))
        total = time.perf_counter() - start
    probes, _, _ = probes_for(cfg, to_identity(cfg.identity), checkpoint)
    engine, _ = load_engine(cfg, checkpoint, "cpu")
    print(f"\nfull evaluation of {checkpoint} ({meta.get('model')}, {len(probes)} probes x {args.samples} samples, "
          f"{args.threads} threads): {total:.1f} s (target <= {TARGET_S:.0f} s: {'met' if total <= TARGET_S else 'MISSED'})")
    print(f"{'family':<12} {'probes':>6} {'answers':>8} {'sampling s':>11}")
    counts = Counter(p.family for p in probes)
    for family in sorted(counts):
        chosen = [p for p in probes if p.family == family]
        t0 = time.perf_counter()
        sample_answers(engine, chosen, cfg.eval)
        print(f"{family:<12} {counts[family]:>6} {counts[family] * args.samples:>8} {time.perf_counter() - t0:>11.1f}")
    print(f"eval_seconds in eval.json: {scores['eval_seconds']}")


if __name__ == "__main__":
    main()
