"""stats.json: what an identity's data folder holds, computed from the files on disk.

    stats = compute_stats(Path(cfg.paths.data_dir), ["identity", "tool_use"], extra={"seconds": 1.2})

Counts per type, turns and length distributions, distinct-1/distinct-2 of the assistant's text (unique
word unigrams/bigrams over all of them: 1.0 = no word ever repeats), the share of distinct first replies,
calculator calls, and from the meta sidecars the languages, openings and personas used. `extra` (the
run's own figures: duplicates and invalid dropped, seconds, backend, model, seed) is merged in. It streams
the files and keeps distinct items as 8-byte hashes (exact up to 64-bit hash collisions), so memory stays
nearly flat; a resumed run's stats cover every conversation in the folder.
"""

from __future__ import annotations

import json
from array import array
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lanbot.core.conversation import assistant_text, normalise, tool_calls
from lanbot.core.files import write_json_atomic
from lanbot.core.identity import ModelIdentity
from lanbot.core.layout import STATS_FILE, conversations_file, meta_file
from lanbot.generation.quality import QualityStats

QUANTILES = (0.1, 0.5, 0.9)
LENGTH_BIN = 100  # characters per bucket of the assistant-length histogram


class _Distinct:
    """An exact count of distinct items, kept as a sorted array of their 64-bit hashes (8 bytes each)."""

    FLUSH = 1 << 16

    def __init__(self) -> None:
        self.seen = np.empty(0, dtype=np.int64)
        self.pending = array("q")

    def update(self, hashes: Iterable[int]) -> None:
        self.pending.extend(hashes)
        if len(self.pending) >= self.FLUSH:
            self._flush()

    def _flush(self) -> None:
        if self.pending:
            self.seen = np.union1d(self.seen, np.frombuffer(self.pending, dtype=np.int64))
            self.pending = array("q")

    def __len__(self) -> int:
        self._flush()
        return int(self.seen.size)


class _Lengths:
    """A distribution of non-negative ints kept as value counts, so memory does not grow with the data."""

    def __init__(self) -> None:
        self.counts: Counter[int] = Counter()

    def add(self, value: int) -> None:
        self.counts[value] += 1

    def summary(self) -> dict[str, float]:
        n = sum(self.counts.values())
        if not n:
            return {"n": 0}
        ordered = sorted(self.counts.items())
        out: dict[str, float] = {"n": n, "min": ordered[0][0], "max": ordered[-1][0],
                                 "mean": round(sum(v * c for v, c in ordered) / n, 2)}
        for q in QUANTILES:
            rank, seen = q * (n - 1), 0
            for value, count in ordered:
                seen += count
                if seen > rank:
                    out[f"p{int(q * 100)}"] = value
                    break
        return out


def compute_stats(folder_root: Path, kinds: Sequence[str], extra: dict[str, Any],
                  identity: ModelIdentity | None = None) -> dict[str, Any]:
    """Compute the figures of `kinds` in `folder_root`, merge `extra`, write stats.json atomically, return it.

    With `identity`, the quality gates (lanbot.generation.quality) run over every conversation too and land
    under "quality": top-sentence share, distinct masked sentences, self-BLEU, quirk rates, recitation.
    """
    root = Path(folder_root)
    gates = QualityStats(identity) if identity is not None else None
    unigrams, bigrams, firsts_all = _Distinct(), _Distinct(), _Distinct()
    n_words = n_pairs = 0
    turns_all, chars_all = Counter(), _Lengths()
    per_type: dict[str, dict[str, Any]] = {}
    languages: Counter[str] = Counter()
    openings: Counter[str] = Counter()
    personas: set[str] = set()
    phrasings: set[str] = set()
    spent: Counter[str] = Counter()
    cost_known = True
    for kind in kinds:
        turns, chars, calls, firsts, n = Counter(), _Lengths(), 0, _Distinct(), 0
        path = root / conversations_file(kind)
        meta_path = root / meta_file(kind)
        if path.exists():
            side = meta_path.open(encoding="utf-8") if gates is not None and meta_path.exists() else None
            with path.open(encoding="utf-8") as f:
                for line in f:
                    conv = json.loads(line)
                    if gates is not None:  # the sidecar is aligned line for line (lanbot.generation.datafolder)
                        side_line = side.readline() if side is not None else ""
                        gates.add(kind, conv, json.loads(side_line) if side_line.strip() else None)
                    n += 1
                    turns[len(conv) // 2] += 1
                    text = assistant_text(conv)
                    chars.add(len(text))
                    words = text.lower().split()
                    n_words += len(words)
                    n_pairs += max(0, len(words) - 1)
                    unigrams.update(map(hash, words))
                    bigrams.update(map(hash, zip(words, words[1:], strict=False)))
                    calls += len(tool_calls(conv))
                    first = hash(normalise(conv[1:2]))
                    firsts.update((first,))
                    firsts_all.update((first,))
            if side is not None:
                side.close()
        if meta_path.exists():
            with meta_path.open(encoding="utf-8") as f:
                for line in f:
                    meta = json.loads(line)
                    languages[str(meta.get("language") or "unknown")] += 1
                    if meta.get("opening"):
                        openings[str(meta["opening"])] += 1
                    if meta.get("persona") is not None:
                        personas.add(str(meta["persona"]))
                    if meta.get("phrasing") is not None:
                        phrasings.add(f"{kind}:{meta['phrasing']}")
                    if isinstance(meta.get("spent"), dict):  # what an LLM backend spent (lanbot.generation.llm.writer)
                        spent.update({k: v for k, v in meta["spent"].items() if k != "cost_usd" and v})
                        cost = meta["spent"].get("cost_usd")
                        cost_known = cost_known and cost is not None
                        spent["cost_usd"] += cost or 0
        turns_all.update(turns)
        chars_all.counts.update(chars.counts)
        per_type[kind] = {
            "count": n,
            "turns": {str(k): v for k, v in sorted(turns.items())},
            "assistant_chars": chars.summary(),
            "unique_first_replies": round(len(firsts) / n, 4) if n else None,
            "calculator_calls": calls,
        }
    total = sum(t["count"] for t in per_type.values())
    buckets = Counter()
    for value, count in chars_all.counts.items():
        buckets[value // LENGTH_BIN * LENGTH_BIN] += count
    stats: dict[str, Any] = {
        "counts": {k: t["count"] for k, t in per_type.items()},
        "total": total,
        "turns": {str(k): v for k, v in sorted(turns_all.items())},
        "multi_turn_share": round(sum(v for k, v in turns_all.items() if k >= 2) / total, 4) if total else None,
        "assistant_chars": chars_all.summary(),
        "assistant_chars_histogram": {str(k): v for k, v in sorted(buckets.items())},
        "distinct_1": round(len(unigrams) / n_words, 4) if n_words else None,
        "distinct_2": round(len(bigrams) / n_pairs, 4) if n_pairs else None,
        "unique_first_replies": round(len(firsts_all) / total, 4) if total else None,
        "languages": dict(languages.most_common()),
        "openings": dict(openings.most_common()),
        "personas_used": len(personas),
        "phrasings_used": len(phrasings),
        "per_type": per_type,
        **extra,
    }
    if gates is not None:
        stats["quality"] = {**gates.figures(), **(extra.get("quality") or {})}
    if spent or "spent_unrecorded" in extra:  # every run on this folder, killed and resumed ones included
        late = extra.get("spent_unrecorded") or {}
        spent.update({k: v for k, v in late.items() if k != "cost_usd" and v})
        cost_known = cost_known and ("cost_usd" not in late or late["cost_usd"] is not None)
        spent["cost_usd"] += late.get("cost_usd") or 0
        stats["folder_spent"] = {
            "requests": spent["requests"], "tokens_prompt": spent["tokens_prompt"],
            "tokens_completion": spent["tokens_completion"],
            "tokens_total": spent["tokens_prompt"] + spent["tokens_completion"],
            "cost_usd": round(spent["cost_usd"], 6) if cost_known else None,
        }
    write_json_atomic(root / STATS_FILE, stats)
    return stats
