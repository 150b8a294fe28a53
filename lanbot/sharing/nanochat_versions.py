"""Which nanochat reads what lanbot writes for it: the one owner of those facts, for the export's messages.

nanochat (karpathy/nanochat) has no releases, so a version is a commit and its date (UTC). Each line
below was checked by loading lanbot's exports with that commit's own checkpoint manager
(tests/test_nanochat_interop.py does it against any checkout named by NANOCHAT_DIR):

    3a5e0bc 2025-10-13  first commit: the late-2025 GPT, vocabulary rows unpadded
    fe5aed9 2025-10-21  CustomJSON: midtraining and SFT read <base dir>/identity_conversations.jsonl
    f1bf69d 2025-12-09  vocabulary rows padded to a multiple of 64; unpadded rows no longer load
    aa530cd 2026-01-11  resid/x0 scalars, filled in as identity for checkpoints without them (2ff7d51 to
                        8203efa, Jan 11-16, need FA3 kernels, then a file they lack: no CPU runs them)
    e3f58b8 2026-01-16  value embeddings: from here nanochat's GPT needs parameters the late-2025 one lacks
    1ddaad1 2026-01-31  midtraining removed (no mid_checkpoints)
    6ed7d1d 2026-03-09  rotary base fixed at 100000 (was 10000), not a config field
    a825e63 2026-03-14  smear, backout, queries and keys x1.2 after the QK norm: the 2026 GPT of today
    950a1dc 2026-07-03  CustomJSON deleted: nanochat's SFT reads no identity file since
    92d63d4 2026-07-03  the newest commit checked

Why a late-2025 model cannot be written so that today's nanochat computes it: the 2026 extras have
identity values (smear and backout 0, resid 1, x0 0, value embeddings 0), but the rotary base and the
x1.2 (attention scores x1.44) are constants in its forward, the scale applied after a QK norm without
parameters, so no weights undo them (measured: logits off by 0.84, std 0.70, with both in place; 2e-6
with both removed from nanochat, for a test model).
"""

from __future__ import annotations

NEWEST_CHECKED = "92d63d4, 2026-07-03"
PAD = 64  # nanochat pads its vocabulary rows to a multiple of 64 since f1bf69d
DATES = {"3a5e0bc": "2025-10-13", "f1bf69d": "2025-12-09", "e3f58b8": "2026-01-16", "a825e63": "2026-03-14"}
CUSTOMJSON_COMMITS = "from 2025-10-21 (fe5aed9) up to 2026-07-03 (before 950a1dc, which deleted it)"
CUSTOMJSON_READERS = f"nanochat's CustomJSON: nanochat {CUSTOMJSON_COMMITS}, and its forks"


def model_commits(architecture: str, vocab_size: int, rows: int) -> tuple[str, str | None] | None:
    """(since, until): nanochat's checkpoint manager loads an export of `architecture` with `rows` vocabulary rows
    from commit `since` on and no longer from commit `until` (None: still today); None when no nanochat does."""
    nanochat_rows = -(-vocab_size // PAD) * PAD
    if architecture == "nanochat-2026":
        return ("a825e63", None) if rows == nanochat_rows else None
    if rows == vocab_size == nanochat_rows:
        return "3a5e0bc", "e3f58b8"
    if rows == nanochat_rows:
        return "f1bf69d", "e3f58b8"
    if rows == vocab_size:
        return "3a5e0bc", "f1bf69d"
    return None


def model_window(architecture: str, vocab_size: int, rows: int) -> str | None:
    """model_commits in words, for the export's message and its meta file."""
    commits = model_commits(architecture, vocab_size, rows)
    if commits is None:
        return None
    since, until = commits
    end = f"to today (checked at {NEWEST_CHECKED})" if until is None else f"up to {DATES[until]} (before {until})"
    return f"nanochat from {DATES[since]} ({since}) {end}"


def model_not_today(architecture: str) -> str | None:
    """Why today's nanochat does not load an export of `architecture`, and the way to one it does; None if it does."""
    if architecture == "nanochat-2026":
        return None
    return ("today's nanochat cannot: since 2026-01-16 (e3f58b8) its GPT needs value embeddings, and since "
            "March 2026 its rotary base is fixed at 100000 (this model's: 10000) and it scales queries and keys "
            "by 1.2 after the parameter-free QK norm, so no weights make it compute this model. For today's "
            "nanochat, train from one of its 2026 bases: train.init_from=nanochat:<base dir>/base_checkpoints/<tag>")
