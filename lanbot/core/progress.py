"""The progress bar of long loops (pretraining steps, evaluation probes): rich's bar with done/total, elapsed
time and ETA on a terminal; nothing in a log, where the caller prints its own lines (a bar redrawn into a file
is noise)."""

from __future__ import annotations

from typing import Any


def progress_bar(description: str, total: int, done: int = 0) -> Any:
    """A started, transient rich Progress with one task (`progress.task_ids[0]`); None where stdout is no terminal."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    console = Console()
    if not console.is_terminal:
        return None
    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                        TimeRemainingColumn(), console=console, transient=True)
    progress.add_task(description, total=total, completed=done)
    progress.start()
    return progress
