"""lanbot's one base error: anything a user can cause and fix, with a message that says how.

Every app turns a LanbotError into one line on stderr and exit code 2 (lanbot.core.app); anything else
is a bug and keeps its traceback.
"""

from __future__ import annotations


class LanbotError(Exception):
    """A problem the user can fix: bad input, a missing file or checkpoint, a refused request.

    Subclasses also derive from the builtin that fits (ValueError, FileNotFoundError, ...), so callers
    that catch those keep working.
    """
