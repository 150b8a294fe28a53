"""Benchmark of the LLM path against a real local model: llama.cpp's server with the bundled SmolLM2-135M.

    flock /tmp/lanbot-cpu.lock .venv/bin/python scripts/bench_local_llm.py              # 6 types, 8 min
    .venv/bin/python scripts/bench_local_llm.py --count 5 --budget-s 300 --model /models/qwen2.5-3b.gguf

It runs the real app (`python -m lanbot.generate backend=local backend.serve=...`, data=all), stops it
with SIGINT when the time budget is spent (the clean stop: the figures are those of stats.json), and
prints conversations/s, the valid rate per type (valid answers / answers received), invalid answers by
reason and type, the response-format fallback the server needed, and tokens/s. The data quality gates
(issue 11) add their rejections here once they land. Needs the packages scripts/setup.sh installs.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from lanbot.generation.llm.local_server import missing  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=3, help="conversations wanted per type")
    parser.add_argument("--budget-s", type=float, default=480, help="stop (SIGINT) after this many seconds")
    parser.add_argument("--model", default="bundled", help="bundled, or the path of a .gguf")
    parser.add_argument("--out", default="", help="also write the figures to this JSON file")
    parser.add_argument("overrides", nargs="*", help="more Hydra overrides, e.g. backend.serve_threads=2")
    args = parser.parse_args()
    if args.model == "bundled" and (why := missing()):
        sys.exit(f"bench_local_llm: {why}")
    with tempfile.TemporaryDirectory() as root:
        cmd = [sys.executable, "-m", "lanbot.generate", "backend=local", f"backend.serve={args.model}",
               "data=all", f"data.count={args.count}", f"paths.root={root}", "logger=none",
               "backend.progress=false", "backend.max_failure_rate=1.0", *args.overrides]
        start = time.monotonic()
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                env={**os.environ, "WANDB_MODE": "offline"})
        try:
            out = proc.communicate(timeout=args.budget_s)[0]
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGINT)
            out = proc.communicate(timeout=120)[0]
        seconds = time.monotonic() - start
        stats_path = Path(root) / "data" / "lanbot" / "stats.json"
        if not stats_path.exists():
            sys.exit(f"bench_local_llm: no stats.json (exit {proc.returncode}):\n{out.decode()[-3000:]}")
        stats = json.loads(stats_path.read_text())
    report(stats, seconds, proc.returncode, args)


def report(stats: dict, seconds: float, code: int, args: argparse.Namespace) -> None:
    counts, invalid = stats["counts"], stats.get("invalid_dropped", {})
    llm_s = stats.get("llm_seconds") or seconds
    print(f"model {args.model}; {stats['total']} conversations in {llm_s:.0f} s of generation "
          f"({stats['total'] / llm_s:.3f} conversations/s; exit {code}, "
          f"{'stopped by the budget' if stats.get('interrupted') else 'finished'})")
    print(f"requests {stats['requests']}, tokens {stats['tokens_prompt']:,} prompt + {stats['tokens_completion']:,} "
          f"completion ({stats['tokens_completion'] / llm_s:.1f} completion tokens/s), timeouts {stats['timeouts']}, "
          f"failed conversations {stats['failures']}")
    print(f"response format: {stats['response_format']} (fallbacks: {stats['response_format_fallbacks'] or 'none'})")
    print(f"{'type':<16} {'valid':>5} {'invalid':>7} {'valid rate':>10}  invalid answers by reason")
    by_type = stats.get("invalid_reasons_by_type", {})
    for kind, n in counts.items():
        bad = invalid.get(kind, 0)
        rate = n / (n + bad) if n + bad else float("nan")
        reasons = ", ".join(f"{r} {c}" for r, c in sorted(by_type.get(kind, {}).items(), key=lambda x: -x[1]))
        print(f"{kind:<16} {n:>5} {bad:>7} {rate:>10.0%}  {reasons}")
    print(f"invalid answers by reason: {stats.get('invalid_reasons')}; repaired {stats.get('repaired')}")
    if args.out:
        Path(args.out).write_text(json.dumps({"seconds": seconds, "exit": code, **stats}, indent=1))


if __name__ == "__main__":
    main()
