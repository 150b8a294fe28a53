"""Benchmark `python -m lanbot.generate` with the template backend, and print the figures.

    .venv/bin/python scripts/bench_generate.py            # all figures (about a minute)
    .venv/bin/python scripts/bench_generate.py --quick    # throughput and one wall-clock run of each logger

1. throughput on one core, start-up excluded: conversations/s of the whole hot path (write, validate,
   dedup, JSON line flushed to disk), and of the template writer alone. Target >= 2,000/s.
2. wall clock of the full `data=all` run (1,800 conversations), start-up included, as a user runs it,
   with logger=wandb (offline) and logger=none. Target <= 5 s.
3. peak memory for 1,800 and for 50,000 conversations: the CLI's peak RSS (os.wait4) and the Python heap
   peak of the run (tracemalloc). Streamed writes keep it flat.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from rich.console import Console  # noqa: E402

from lanbot.core.config import compose_config  # noqa: E402
from lanbot.core.conversation import TYPES  # noqa: E402
from lanbot.core.identity import to_identity  # noqa: E402
from lanbot.generation.datafolder import DataFolder  # noqa: E402
from lanbot.generation.generate_data import generate  # noqa: E402
from lanbot.generation.personas import load_personas  # noqa: E402
from lanbot.generation.template.backend import write_with_templates  # noqa: E402
from lanbot.generation.template.writer import TemplateWriter  # noqa: E402

ENV = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true", "PYTHONPATH": str(REPO)}


def throughput(per_type: int) -> tuple[float, float]:
    """(hot path conversations/s, writer-only conversations/s) on one core (the CPUs are given back after)."""
    cpus = os.sched_getaffinity(0) if hasattr(os, "sched_setaffinity") else None
    if cpus:
        os.sched_setaffinity(0, {min(cpus)})
    try:
        return _throughput(per_type)
    finally:
        if cpus:  # the wall-clock runs that follow are a user's runs: every core, as the machine has them
            os.sched_setaffinity(0, cpus)


def _throughput(per_type: int) -> tuple[float, float]:
    cfg = compose_config(["logger=none"])
    identity = to_identity(cfg.identity)
    personas = load_personas(cfg.personas, 42, per_type * len(TYPES))
    writer = TemplateWriter(identity, personas, seed=42)
    for kind in TYPES:  # warm the caches: start-up is not part of this figure
        writer.write(kind, 0)
    start = time.perf_counter()
    for kind in TYPES:
        for i in range(per_type):
            writer.write(kind, i)
    writer_rate = per_type * len(TYPES) / (time.perf_counter() - start)
    with tempfile.TemporaryDirectory() as tmp, DataFolder(Path(tmp), list(TYPES)) as folder:
        start = time.perf_counter()
        write_with_templates(identity, personas, 42, folder, dict.fromkeys(TYPES, per_type), 5)
        hot_rate = per_type * len(TYPES) / (time.perf_counter() - start)
    return hot_rate, writer_rate


def cli_run(root: Path, *overrides: str) -> tuple[float, float]:
    """(wall seconds, peak RSS MiB) of one `python -m lanbot.generate` run, start-up included."""
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "lanbot.generate", f"paths.root={root}", *overrides],
                            cwd=REPO, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"generate failed: {proc.stderr.read().decode()[-2000:]}")
    return wall, usage.ru_maxrss / 1024


def heap_peak(per_type: int) -> float:
    """Peak Python heap (MiB, tracemalloc) of an in-process run of `per_type` conversations of each type."""
    with tempfile.TemporaryDirectory() as tmp:
        cfg = compose_config([f"paths.root={tmp}", "logger=none", f"data.count={per_type}"])
        tracemalloc.start()
        generate(cfg, Path(tmp) / "run", console=Console(file=io.StringIO()))
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer repeats, no 50,000 run")
    parser.add_argument("--repeats", type=int, default=3, help="wall-clock runs of each logger (median shown)")
    args = parser.parse_args()
    repeats = 1 if args.quick else args.repeats

    hot, writer = throughput(500 if args.quick else 2000)
    print(f"throughput, one core, start-up excluded: {hot:,.0f} conversations/s (write+validate+dedup+disk), "
          f"template writer alone {writer:,.0f}/s   [target >= 2,000/s]")

    with tempfile.TemporaryDirectory() as tmp:
        for logger in ("wandb", "none"):
            walls = []
            for i in range(repeats):
                root = Path(tmp) / f"{logger}{i}"
                walls.append(cli_run(root, f"logger={logger}")[0])
            print(f"data=all (1,800 conversations), start-up included, logger={logger}: "
                  f"median {statistics.median(walls):.2f} s wall (runs: {', '.join(f'{w:.2f}' for w in walls)})"
                  "   [target <= 5 s]")
        counts = [("1,800", None)] if args.quick else [("1,800", None), ("50,000", "data.count=8334")]
        for i, (label, override) in enumerate(counts):
            wall, rss = cli_run(Path(tmp) / f"mem{i}", "logger=none", *([override] if override else []))
            print(f"peak memory, {label} conversations (CLI, logger=none): {rss:.0f} MiB RSS, {wall:.2f} s wall")
    for label, per_type in [("1,800", 300)] + ([] if args.quick else [("50,000", 8334)]):
        print(f"peak Python heap (tracemalloc), {label} conversations: {heap_peak(per_type):.1f} MiB")


if __name__ == "__main__":
    main()
