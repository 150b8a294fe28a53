"""File modes for atomic writes: `tempfile.mkstemp` makes a file 0600; what lanbot writes reads like any file."""

from __future__ import annotations

import os


def plain_mode(path: str | os.PathLike) -> None:
    """Give `path` the mode a plain open() would have given it (0666 less the umask)."""
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(path, 0o666 & ~mask)
