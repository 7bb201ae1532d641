"""One transient rich progress bar on stderr; when disabled nothing at all is printed."""
from __future__ import annotations

import contextlib
from typing import Callable, Iterator


@contextlib.contextmanager
def progress_bar(description: str, total: int | None = None, enabled: bool = True,
                 unit: str = "") -> Iterator[Callable[..., None]]:
    """Yield ``advance(n=1)``; ``total=None`` shows a spinner with a running count.

    (rich's own ``disable=True`` still prints a newline when stopped, so a disabled bar is
    never built.)
    """
    if not enabled:
        yield lambda n=1: None
        return
    from rich.console import Console
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn,
                               TimeRemainingColumn)

    if total is None:
        columns = (SpinnerColumn(), TextColumn("{task.description}: {task.completed:,}" + (f" {unit}" if unit else "")))
    else:
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, transient=True, console=Console(stderr=True)) as bar:
        task = bar.add_task(description, total=total)
        yield lambda n=1: bar.advance(task, n)
