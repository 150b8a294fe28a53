"""Render conversations and pack them, whole, into training rows (best-fit packing, padding masked).

Every row holds `sequence_len + 1` tokens and starts at a conversation's start; a conversation is never
cut: one longer than the row is skipped and counted. Rows are seeded and reproducible; under DDP rank r
takes rows r, r + world, ... so the ranks see different data.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from lanbot.training.chat_format import system_prompt, with_system
from lanbot.training.tokenizer import Tokenizer, render_conversation

PAD_TARGET = -1  # targets the loss ignores (padding and untrained tokens)


@dataclass
class Doc:
    ids: list[int]
    mask: list[int]
    source: int


@dataclass
class Packed:
    """Rows of (ids, mask) plus what the packing saw."""

    rows: list[tuple[list[int], list[int], Counter]] = field(default_factory=list)
    skipped: Counter = field(default_factory=Counter)


def render_all(tok: Tokenizer, items: list[tuple[int, list]], system_prompts: Sequence[str] = ()) -> list[Doc]:
    """(source index, conversation) pairs rendered to token ids and loss masks; with `system_prompts` (forms of
    chat_format.SYSTEM_FORMS) the k-th conversation gets the (k mod n)-th form's system message."""
    texts = [system_prompt(form, tok.default_system) for form in system_prompts] if tok.chat.system else []
    return [Doc(*render_conversation(tok, with_system(conv, texts[k % len(texts)]) if texts else conv), source=index)
            for k, (index, conv) in enumerate(items)]


def pack_rows(docs: list[Doc], row_len: int, pad_id: int) -> Packed:
    """Best-fit packing: each row takes the largest remaining conversations that still fit, then padding."""
    packed = Packed()
    fitting = []
    for doc in docs:
        if len(doc.ids) > row_len:
            packed.skipped[doc.source] += 1
        else:
            fitting.append(doc)
    remaining = sorted(fitting, key=lambda d: len(d.ids), reverse=True)
    while remaining:
        ids: list[int] = []
        mask: list[int] = []
        sources: Counter = Counter()
        first = remaining.pop(0)  # the longest left opens the row
        ids += first.ids
        mask += first.mask
        sources[first.source] += 1
        i = 0
        while i < len(remaining) and len(ids) < row_len:
            if len(remaining[i].ids) <= row_len - len(ids):
                doc = remaining.pop(i)
                ids += doc.ids
                mask += doc.mask
                sources[doc.source] += 1
            else:
                i += 1
        pad = row_len - len(ids)
        packed.rows.append((ids + [pad_id] * pad, mask + [0] * pad, sources))
    return packed


def shuffled_rows(packed: Packed, seed: int) -> list[tuple[list[int], list[int], Counter]]:
    rows = list(packed.rows)
    random.Random(f"{seed}:rows").shuffle(rows)
    return rows


def to_batch(rows: list[tuple[list[int], list[int], Counter]], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """(inputs, targets) of shape (B, T); targets are -1 where the mask is 0."""
    ids = torch.tensor([r[0] for r in rows], dtype=torch.long)
    mask = torch.tensor([r[1] for r in rows], dtype=torch.bool)
    inputs = ids[:, :-1]
    targets = ids[:, 1:].masked_fill(~mask[:, 1:], PAD_TARGET)
    return inputs.to(device), targets.to(device)
