"""The error of a generate run that cannot go on: one owner, below the backends that raise it and the contract
that chooses them (so neither imports the other)."""

from __future__ import annotations

from lanbot.core.errors import LanbotError


class GenerationError(LanbotError, RuntimeError):
    """A generate run that cannot go on; the message says what is wrong and how to fix it."""
