"""The run's log file keeps its console: every line an app writes to stdout or stderr (print, rich consoles, the
one-line errors) also goes, secrets masked and colours stripped, to the file handlers of Hydra's job logging
(`<run folder>/<app>.log` by default; `hydra/job_logging=none` writes none).

Lines, not writes: a line is logged once it ends, so a print split over several writes stays one record. A
progress bar's redraws never reach the file; its final state does, as one line (`core/progress.py`).
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TextIO

# Terminal control sequences rich writes at a terminal: colours and styles (CSI ... m), cursor moves and erases
# (CSI ... A/K/...), hyperlinks and titles (OSC ... BEL or ST); none of them belongs in a text file.
ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]")
MAX_PENDING = 64 * 1024  # a line without an end (a bar drawn with \r) is logged in pieces this long, not held whole


class _Tee:
    """A text stream that writes to `stream` and logs each finished line to `logger` (errors at ERROR)."""

    def __init__(self, stream: TextIO, logger: logging.Logger) -> None:
        self.stream, self.target, self.logger = stream, stream, logger  # target: stream, or a live bar's proxy
        self.pending = ""
        self.logging = False  # a handler's own error report (logging.handleError writes to stderr) is not logged again

    def write(self, text: str) -> int:
        self.target.write(text)
        if not self.logging:
            self.logging = True
            try:
                self.log_text(text)
            finally:
                self.logging = False
        return len(text)  # all of it taken (rich's FileProxy, a bar's target, returns what it still holds)

    def log_text(self, text: str) -> None:
        """Log `text`'s finished lines (the rest waits for its end), without writing it to the console."""
        *lines, self.pending = (self.pending + text).split("\n")
        if len(self.pending) > MAX_PENDING:
            lines, self.pending = [*lines, self.pending], ""
        for line in lines:
            self.log_line(line)

    def log_line(self, line: str) -> None:
        from lanbot.core.secrets import redact

        line = ANSI.sub("", line).rstrip("\r").rsplit("\r", 1)[-1].rstrip()  # \r-redrawn: what was left on screen
        if line:
            level = logging.ERROR if line.startswith("error lanbot.") else logging.INFO
            self.logger.log(level, redact(line))

    def flush(self) -> None:
        self.target.flush()

    def close_line(self) -> None:
        """Log what is left of an unfinished line (the job ends)."""
        if self.pending:
            line, self.pending = self.pending, ""
            self.log_line(line)

    def __getattr__(self, name: str) -> Any:  # isatty, fileno (input() keeps readline), encoding, buffer, ...
        return getattr(self.stream, name)


def _file_handlers() -> list[logging.Handler]:
    """The file handlers Hydra's job logging put on the root logger for this job (its console handler is left
    out: the console already has the line)."""
    return [h for h in logging.getLogger().handlers if isinstance(h, logging.FileHandler)]


@contextmanager
def console_log(app: str) -> Iterator[None]:
    """While the job runs, sys.stdout and sys.stderr also write to the job log's files, as logger `lanbot.<app>`."""
    handlers = _file_handlers()
    if not handlers:
        yield
        return
    logger = logging.getLogger(f"lanbot.{app}.console")  # its own logger: the root would echo to the console
    logger.handlers, logger.propagate, logger.level = handlers, False, logging.INFO
    out, err = sys.stdout, sys.stderr
    _tees[:] = [_Tee(out, logger), _Tee(err, logger)]  # stderr at INFO too: generate's progress lines go there
    sys.stdout, sys.stderr = _tees
    try:
        yield
    finally:
        for tee in _tees:
            tee.close_line()
        sys.stdout, sys.stderr = out, err
        _tees.clear()
        logger.handlers = []


_tees: list[_Tee] = []  # stdout's and stderr's while a job runs


def active_tees() -> list[_Tee]:
    """The job's tees (stdout's first), or none outside a job: a progress bar draws past them (core/progress.py)."""
    return list(_tees)
