"""Decode speed with and without the KV cache, and the wall time of a full evaluation.

    .venv/bin/python scripts/bench_decode.py                       # d4 and tiny, 256 new tokens, batch 1
    .venv/bin/python scripts/bench_decode.py --models d4 --batch 1 5 --new-tokens 256
    .venv/bin/python scripts/bench_decode.py --eval-checkpoint outputs/checkpoints/lanbot/default/tiny/sft

Decoding runs through lanbot.evaluation.engine.Engine (greedy, 256 new tokens after a 32-token prompt) on a randomly
initialised GPT of each `conf/model/<name>.yaml` shape: with the cache each step feeds one token; without
it every step recomputes the whole sequence. A model that would stop early is kept going by banning the
stop tokens, so both paths decode exactly `--new-tokens` tokens. The evaluation timing runs lanbot.evaluate's
sampling and scoring (no wandb) on a trained checkpoint, with the configured eval settings.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch
from omegaconf import OmegaConf

from lanbot.core.config import CONF_DIR, compose_config
from lanbot.core.device import detect_device
from lanbot.evaluation.engine import Engine
from lanbot.training.model import GPT, GPTConfig
from lanbot.training.tokenizer import Tokenizer

TEXTS = ["Hello, I am a small model; 2 + 2 = 4 and the sky is blue."] * 8


class NoStop(torch.nn.Module):
    """Wraps a GPT so that the special tokens never win: every answer runs to max_tokens."""

    def __init__(self, model: GPT, banned: list[int]) -> None:
        super().__init__()
        self.model, self.config, self.rotary_len = model, model.config, model.rotary_len
        self.banned = torch.tensor(banned)

    def forward(self, idx, targets=None, kv_cache=None):
        logits = self.model(idx, kv_cache=kv_cache)
        logits[..., self.banned.to(logits.device)] = -1e9
        return logits


def decode_rate(engine: Engine, prompt: list[int], new_tokens: int, batch: int, use_cache: bool, repeats: int) -> float:
    """Median new tokens per second (all rows together) over `repeats` runs, after one warm-up."""
    times = []
    for i in range(repeats + 1):
        t0 = time.perf_counter()
        answers = engine.generate(prompt, num_samples=batch, max_tokens=new_tokens, temperature=0.0, use_cache=use_cache)
        if engine.device.type == "cuda":
            torch.cuda.synchronize()
        assert all(len(a.tokens) == new_tokens for a in answers)
        if i:
            times.append(time.perf_counter() - t0)
    return batch * new_tokens / statistics.median(times)


def bench_decode(models: list[str], batches: list[int], new_tokens: int, repeats: int, device: torch.device) -> None:
    tok = Tokenizer.train(TEXTS, vocab_size=300)
    banned = [tok.special_id(s) for s in Tokenizer.SPECIALS]
    print(f"decode, {new_tokens} new tokens after a 32-token prompt, greedy, device {device}, "
          f"{torch.get_num_threads()} threads, median of {repeats}")
    print(f"{'model':<6} {'params':>8} {'batch':>5} {'cache tok/s':>12} {'no cache tok/s':>15} {'speed-up':>9}")
    for name in models:
        fields = OmegaConf.to_container(OmegaConf.load(CONF_DIR / "model" / f"{name}.yaml"))
        torch.manual_seed(0)
        gpt = GPT(GPTConfig.from_mapping(fields))
        gpt.init_weights()
        gpt.to(device).eval()
        engine = Engine(NoStop(gpt, banned), tok, device)
        prompt = torch.randint(len(banned), tok.vocab_size, (32,), generator=torch.Generator().manual_seed(0)).tolist()
        for batch in batches:
            cached = decode_rate(engine, prompt, new_tokens, batch, True, repeats)
            full = decode_rate(engine, prompt, new_tokens, batch, False, repeats)
            print(f"{name:<6} {gpt.num_params() / 1e6:>7.1f}M {batch:>5} {cached:>12,.0f} {full:>15,.0f} "
                  f"{cached / full:>8.1f}x", flush=True)


def bench_eval(checkpoint: Path, overrides: list[str]) -> None:
    from lanbot.core.identity import slug, to_identity
    from lanbot.evaluation.evaluate_checkpoint import probes_for, sample_answers, score_answers
    from lanbot.evaluation.inference import load_engine

    meta = OmegaConf.load(checkpoint / "config.yaml")
    cfg = compose_config([f"identity={slug(meta.identity.name)}", f"paths.root={meta.paths.root}", *overrides])
    t0 = time.perf_counter()
    engine, _ = load_engine(cfg, checkpoint, str(cfg.eval.device))
    identity = to_identity(cfg.identity)
    probes, others, seen = probes_for(cfg, identity)
    t1 = time.perf_counter()
    answers = sample_answers(engine, probes, cfg.eval)
    t2 = time.perf_counter()
    result = score_answers(probes, answers, identity, others, seen)
    t3 = time.perf_counter()
    tokens = sum(len(a.tokens) for group in answers.values() for a in group)
    n = sum(len(group) for group in answers.values())
    print(f"\nfull evaluation of {checkpoint} ({len(probes)} probes x {cfg.eval.samples} samples = {n} answers, "
          f"max {cfg.eval.max_tokens} tokens, device {engine.device}):")
    print(f"  load + probe check {t1 - t0:.1f} s, sampling {t2 - t1:.1f} s ({tokens:,} tokens, "
          f"{tokens / (t2 - t1):,.0f} tok/s), scoring {t3 - t2:.2f} s, total {t3 - t0:.1f} s; "
          f"identity_rate {result['scores']['identity_rate']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["d4", "tiny"])
    parser.add_argument("--batch", nargs="+", type=int, default=[1])
    parser.add_argument("--new-tokens", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--eval-checkpoint", type=Path, default=None, help="a trained checkpoint folder to evaluate")
    parser.add_argument("--eval-overrides", nargs="*", default=[], help="config overrides, e.g. eval.samples=8")
    parser.add_argument("--skip-decode", action="store_true")
    args = parser.parse_args()
    if not args.skip_decode:
        bench_decode(args.models, args.batch, args.new_tokens, args.repeats, detect_device(args.device))
    if args.eval_checkpoint is not None:
        bench_eval(args.eval_checkpoint, [f"eval.device={args.device}", *args.eval_overrides])


if __name__ == "__main__":
    main()
