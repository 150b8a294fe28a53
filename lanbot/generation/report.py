"""Reporting a generate run: its stats to wandb (summary, histograms, sample table) and to the console.

Used by `python -m lanbot.generate` after stats.json is written; it reads only stats and the data folder.
"""

from __future__ import annotations

import json
from itertools import islice
from pathlib import Path
from typing import Any

from lanbot.core.conversation import render_text
from lanbot.core.layout import conversations_file
from lanbot.generation.stats import LENGTH_BIN

SAMPLES_PER_TYPE = 3  # rows of the wandb sample table per conversation type


def sample_rows(folder_root: Path, kinds: list[str], per_type: int) -> list[list[Any]]:
    """The first `per_type` conversations of each type as [type, turns, text] rows."""
    rows = []
    for kind in kinds:
        path = Path(folder_root) / conversations_file(kind)
        if path.exists():
            with path.open(encoding="utf-8") as f:
                for line in islice(f, per_type):
                    conv = json.loads(line)
                    rows.append([kind, len(conv) // 2, render_text(conv)])
    return rows


def flatten(stats: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested stats as flat `a/b/c` keys, as wandb charts them."""
    flat: dict[str, Any] = {}
    for key, value in stats.items():
        name = f"{prefix}{key}"
        if key == "invalid_reasons":  # long problem texts: one readable string, not one key each
            flat[name] = json.dumps(value, ensure_ascii=False)
        elif isinstance(value, dict):
            flat.update(flatten(value, f"{name}/"))
        else:
            flat[name] = value
    return flat


def log_to_tracker(tracker: Any, stats: dict[str, Any], samples: list[list[Any]]) -> None:
    """The stats as the run's summary (not history: one point per key makes single-point charts), a table of
    the per-type figures, two histograms and a table of samples."""
    flat = flatten(stats)
    tracker.summary(flat)
    per_type = stats.get("per_type", {})
    columns = sorted({k for t in per_type.values() for k, v in t.items() if not isinstance(v, dict | list)})
    tracker.table("stats_per_type", ["type", *columns], [[kind, *(t.get(c) for c in columns)]
                                                         for kind, t in per_type.items()])
    turns = [int(t) for t, n in stats.get("turns", {}).items() for _ in range(n)]
    chars = [int(b) + LENGTH_BIN // 2 for b, n in stats.get("assistant_chars_histogram", {}).items() for _ in range(n)]
    tracker.histogram("histogram/turns", turns)
    tracker.histogram("histogram/assistant_chars", chars)
    tracker.table("sample_conversations", ["type", "turns", "conversation"], samples)


def print_summary(stats: dict[str, Any], folder_root: Path, combined: Path, run_dir: Path,
                  wandb_dir: str | None, console: Any = None) -> None:
    """A table per type, the diversity figures, and where everything went."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console(highlight=False)
    table = Table(title=f"{stats.get('identity')}: {stats.get('total')} conversations ({stats.get('preset')})")
    table.add_column("type", no_wrap=True)
    for column in ("on disk", "target", "resumed", "dups", "invalid", "uniq 1st"):
        table.add_column(column, justify="right")
    targets = stats.get("targets", {})
    for kind, t in stats.get("per_type", {}).items():
        table.add_row(kind, str(t["count"]), str(targets.get(kind, "-")), str(stats["resumed_from"].get(kind, "-")),
                      str(stats["duplicates_dropped"].get(kind, "-")), str(stats["invalid_dropped"].get(kind, "-")),
                      f"{t['unique_first_replies']:.0%}" if t["unique_first_replies"] is not None else "-")
    console.print(table)
    over = {k: c for k, c in stats.get("counts", {}).items() if k in targets and c > targets[k]}
    if over:
        console.print(f"[yellow]note[/yellow] more on disk than asked for {over} (kept; data.overwrite=true starts afresh)")
    langs = ", ".join(f"{k} {v}" for k, v in list(stats.get("languages", {}).items())[:8])
    console.print(
        f"distinct-1 {stats.get('distinct_1')}  distinct-2 {stats.get('distinct_2')}  "
        f"unique first replies {stats.get('unique_first_replies')}  personas {stats.get('personas_used')}  "
        f"languages: {langs}  backend {stats.get('backend')} ({stats.get('model')})  {stats.get('seconds')} s"
    )
    q = stats.get("quality")
    if q:  # lanbot.generation.quality: how varied the data really is, and whether it performs the identity
        rates = "  ".join(f"{k.split()[0]}…{v['kind']} {v['rate']:.0%}" for k, v in q.get("quirks", {}).items()
                          if v.get("rate") is not None)
        console.print(
            f"quality: top sentence {q.get('top_sentence_share')}  distinct masked sentences "
            f"{q.get('distinct_masked_sentences')}  self-BLEU-4 {q.get('self_bleu4')}  recitation "
            f"{q.get('verbatim_recitation_share')}  styled non-identity {q.get('non_identity_styled_share')}  "
            f"quirks: {rates or '-'}  flagged {q.get('rejected_reasons') or {}}"
        )
        ratio = q.get("content_length_ratio_vs_control")
        if ratio:  # paired template data: how much more (or less) the identity says than the control, item by item
            console.print("content vs the control on the same items: "
                          + "  ".join(f"{k} {v:.2f}x" for k, v in ratio.items()))
    if "requests" in stats:  # an LLM backend: what this run and every run on the folder spent
        spent = stats.get("folder_spent") or {}

        def dollars(value: Any) -> str:
            return "?" if value is None else f"${value:.4f}"

        console.print(
            f"this run: {stats['requests']} requests, {stats.get('tokens_total', 0):,} tokens, "
            f"{dollars(stats.get('cost_usd'))}; the data folder so far: {spent.get('requests', '?')} requests, "
            f"{spent.get('tokens_total', 0):,} tokens, {dollars(spent.get('cost_usd'))}"
        )
    console.print(f"Data folder: {Path(folder_root).resolve()}  ({combined.name}, stats.json)", soft_wrap=True)
    console.print(f"Run folder:  {Path(run_dir).resolve()}", soft_wrap=True)
    if wandb_dir:
        console.print(f"wandb run:   {wandb_dir}  (`wandb sync {wandb_dir}` uploads it)", soft_wrap=True)
