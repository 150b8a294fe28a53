"""BOS-aligned best-fit packing of documents into pretraining rows (nanochat's base-model loader, rewritten).

Every row holds exactly `row_len` tokens and starts with `<|bos|>` at a document's start, so the model never
has to guess where a document began. A row is filled from a buffer of documents: the longest opens it, then
the largest that still fits, again and again; when none fits, the longest left is cut to fill the row
exactly (no padding) and its tail goes back to the buffer behind a fresh `<|bos|>` (nanochat drops the
tail; on a 23 M-character corpus every token counts). A document longer than a row is cut the same way.

    rows = pack_documents(token_docs, row_len=513, bos=tok.bos_id)   # an iterator of int32 arrays
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Iterable, Iterator

import numpy as np

MIN_TAIL = 8  # a tail shorter than this after a cut is not worth a row's BOS: dropped


def pack_documents(docs: Iterable[np.ndarray | list[int]], row_len: int, bos: int,
                   buffer_size: int = 1000) -> Iterator[np.ndarray]:
    """Rows of `row_len` tokens from documents (token ids without BOS), each row opening at a BOS."""
    if row_len < 2:
        raise ValueError(f"row_len={row_len}: a row needs at least 2 tokens")
    counter = itertools.count()  # breaks ties so arrays are never compared
    buffer: list[tuple[int, int, np.ndarray]] = []  # (length, tiebreak, ids) sorted by length
    source = iter(docs)
    exhausted = False

    def add(piece: np.ndarray) -> None:
        bisect.insort(buffer, (len(piece), next(counter), piece))

    def with_bos(ids: np.ndarray) -> np.ndarray:
        return np.concatenate([np.array([bos], dtype=np.int32), ids.astype(np.int32, copy=False)])

    def refill() -> None:
        nonlocal exhausted
        while not exhausted and len(buffer) < buffer_size:
            doc = next(source, None)
            if doc is None:
                exhausted = True
                break
            doc = np.asarray(doc, dtype=np.int32)
            if len(doc):
                add(with_bos(doc))

    while True:
        refill()
        parts: list[np.ndarray] = []
        room = row_len
        while room > 0:
            if not buffer:
                refill()
                if not buffer:  # the very end of a finite corpus: a short last row is dropped
                    return
            i = bisect.bisect_right(buffer, (room, float("inf"))) - 1  # the largest piece that fits
            if i >= 0:
                length, _, piece = buffer.pop(i)
                parts.append(piece)
                room -= length
                continue
            length, _, piece = buffer.pop()  # nothing fits: cut the longest to fill the row exactly
            parts.append(piece[:room])
            tail = piece[room:]
            if len(tail) >= MIN_TAIL:
                add(with_bos(tail))
            room = 0
        yield np.concatenate(parts)
