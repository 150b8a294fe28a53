"""Progress bars of long loops (pretraining steps, evaluation probes, generation): rich's bars with done/total,
elapsed time and ETA on a terminal; nothing in a log, where the caller prints its own lines (a bar redrawn into a
file is noise).

`Bars` is the one Progress every app uses: while a job's console goes to its log file as well
(`core/console_log.py`), a bar draws straight on the terminal, what the app prints meanwhile goes above it and
into the log, and the log gets the bar's end state as one line instead of its redraws.
"""

from __future__ import annotations

import time
from typing import Any

from rich.console import Console
from rich.progress import Progress

from lanbot.core.console_log import active_tees


class Bars(Progress):
    """rich's Progress, drawn past the run log's tee (above); the same arguments as Progress."""

    def __init__(self, *columns: Any, console: Console | None = None, **kwargs: Any) -> None:
        self._tees = active_tees()
        if self._tees and (console is None or console.file in self._tees):
            tee = self._tees[0] if console is None else console.file  # stdout's, or stderr's for a stderr console
            console = Console(file=tee.stream)  # the terminal itself: its redraws skip the log
            kwargs.update(redirect_stdout=False, redirect_stderr=False)  # the tees go through the bar instead
        super().__init__(*columns, console=console, **kwargs)
        self._routed, self._started_at = False, time.monotonic()

    def start(self) -> None:
        from rich.file_proxy import FileProxy

        super().start()
        if self._tees and not self.disable and self.console.is_terminal and not self._routed:
            for tee in self._tees:  # a print while the bar is drawn: above it on screen, and in the log
                tee.target = FileProxy(self.console, tee.stream)
            self._routed = True

    def stop(self) -> None:
        if self._routed:
            for tee in self._tees:
                tee.target.flush()
                tee.target = tee.stream
            self._routed = False
            super().stop()
            self._tees[0].log_text(self.summary() + "\n")
            return
        super().stop()

    def summary(self) -> str:
        """The bars' end state in one line: `probes 120/120 (83 s)`, each task, then any status line."""
        parts = [f"{task.description.strip()} {task.completed:,.0f}/{task.total:,.0f}" if task.total is not None
                 else f"{task.description.strip()} {task.completed:,.0f}" for task in self.tasks]
        status = getattr(self, "status", "")
        return (", ".join(parts) + f" ({time.monotonic() - self._started_at:.0f} s)"
                + (f"; {status}" if status else ""))


def progress_bar(description: str, total: int, done: int = 0) -> Any:
    """A started, transient rich Progress with one task (`progress.task_ids[0]`); None where stdout is no terminal."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    progress = Bars(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    TimeRemainingColumn(), transient=True)
    if not progress.console.is_terminal:
        return None
    progress.add_task(description, total=total, completed=done)
    progress.start()
    return progress
