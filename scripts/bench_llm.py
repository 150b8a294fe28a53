"""Benchmark of the LLM backend against the loopback OpenAI-compatible server (tests/llm_server.py).

    .venv/bin/python scripts/bench_llm.py                 # throughput + memory, prints the figures
    .venv/bin/python scripts/bench_llm.py --skip-memory

Throughput, side by side in one run, with 100 ms latency per request: lanbot's asyncio backend at
concurrency 32 and at concurrency 1, and the common recipe (a 4-thread pool of blocking openai requests).
Memory: peak RSS of a child process that writes 1,000 and then 10,000 conversations (flat = streamed).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("OPENAI_API_KEY", "sk-bench")

from llm_server import LLMServer  # noqa: E402

from lanbot.core.config import compose_config  # noqa: E402
from lanbot.core.conversation import validate  # noqa: E402
from lanbot.core.identity import to_identity  # noqa: E402
from lanbot.generation.datafolder import DataFolder  # noqa: E402
from lanbot.generation.llm.parse import parse_answer  # noqa: E402
from lanbot.generation.llm.prompt_book import PromptBook  # noqa: E402
from lanbot.generation.llm.writer import generate_with_llm  # noqa: E402
from lanbot.generation.personas import load_personas  # noqa: E402


def lanbot_run(base_url: str, root: Path, count: int, concurrency: int) -> float:
    """Conversations per second of generate_with_llm writing `count` identity conversations."""
    cfg = compose_config(["backend=openai", f"backend.base_url={base_url}", f"backend.concurrency={concurrency}",
                          f"paths.root={root}", "logger=none"])
    folder = DataFolder(Path(cfg.paths.data_dir), ["identity"])
    start = time.perf_counter()
    figures = generate_with_llm(cfg, to_identity(cfg.identity), folder, {"identity": count},
                                load_personas(cfg.personas, 0), None, show_progress=False)
    seconds = time.perf_counter() - start
    folder.close()
    assert figures["written"] == count, figures
    return count / seconds


def thread_pool_run(base_url: str, count: int, threads: int = 4) -> float:
    """The common recipe: blocking openai requests from a thread pool, parsed and validated the same way."""
    import random

    import openai

    cfg = compose_config([])
    identity = to_identity(cfg.identity)
    book, personas = PromptBook(), load_personas(cfg.personas, 0)
    client = openai.OpenAI(base_url=base_url, api_key="sk-bench", max_retries=3)

    def one(i: int) -> bool:
        rng = random.Random(i)
        messages, _ = book.compose(identity, "identity", personas[i % len(personas)], rng)
        reply = client.chat.completions.create(model="m", messages=messages, response_format={"type": "json_object"})
        conversation = parse_answer(reply.choices[0].message.content).conversation
        return not validate(conversation, "identity", identity.name)

    start = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        ok = sum(pool.map(one, range(count)))
    seconds = time.perf_counter() - start
    assert ok == count
    return count / seconds


def memory_child(base_url: str, count: int) -> None:
    """Run in a child: write `count` conversations, print the peak RSS in MiB."""
    with tempfile.TemporaryDirectory() as root:
        rate = lanbot_run(base_url, Path(root), count, 32)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"count": count, "peak_rss_mib": round(peak, 1), "per_s": round(rate, 1)}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--latency", type=float, default=0.1)
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--memory-child", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--base-url", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        return memory_child(args.base_url, args.memory_child)

    # The server runs in its own process, so that its threads do not share the client's interpreter.
    server = subprocess.Popen([sys.executable, str(REPO / "tests" / "llm_server.py"), str(args.latency)],
                              stdout=subprocess.PIPE, text=True)
    base_url = server.stdout.readline().strip()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            print(f"loopback server {base_url} (own process), {args.latency * 1000:.0f} ms latency per request")
            c32 = lanbot_run(base_url, Path(tmp) / "c32", 640, 32)
            print(f"lanbot asyncio, concurrency 32: {c32:8.1f} conversations/s")
            c1 = lanbot_run(base_url, Path(tmp) / "c1", 25, 1)
            print(f"lanbot asyncio, concurrency 1 : {c1:8.1f} conversations/s")
            pool = thread_pool_run(base_url, 100)
            print(f"4-thread pool, blocking       : {pool:8.1f} conversations/s")
            print(f"concurrency 32 / concurrency 1 = {c32 / c1:.1f}x (target >= 25x)")
            print(f"concurrency 32 / 4-thread pool = {c32 / pool:.1f}x (target >= 5x)")
    finally:
        server.terminate()
        server.wait()
    if args.skip_memory:
        return
    peaks = []
    with LLMServer() as fast:  # no latency: memory is about volume, not waiting
        for count in (1000, 10000):
            out = subprocess.run([sys.executable, __file__, "--memory-child", str(count), "--base-url", fast.base_url],
                                 capture_output=True, text=True, check=True).stdout
            row = json.loads(out.strip().splitlines()[-1])
            peaks.append(row["peak_rss_mib"])
            print(f"memory: {row['count']:>6} conversations -> peak RSS {row['peak_rss_mib']:.1f} MiB "
                  f"({row['per_s']:.0f} conversations/s, no latency)")
    # flat: 10x the conversations costs only the dedup keys (a few MiB), not the conversations themselves
    print(f"memory 10,000 vs 1,000 conversations: +{peaks[1] - peaks[0]:.1f} MiB "
          f"({peaks[1] / peaks[0]:.2f}x; target: flat, under 1.25x)")


if __name__ == "__main__":
    main()
