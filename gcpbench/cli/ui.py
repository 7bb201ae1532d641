"""What the command line shows besides its results: rich progress bars on stderr and which log
lines reach the user (``--quiet`` / ``--verbose``). The training bars are in
:mod:`gcpbench.cli.train_bars` (they need the trainer's reporter, which imports torch)."""
from __future__ import annotations

import contextlib
import logging
import os
import sys
from typing import Any, Iterator

from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn,
                           TimeRemainingColumn)

from gcpbench import progress


PIPED_WIDTH = 160  # columns of tables written to a file or pipe (rich would use 80)


def stdout_console(**options: Any) -> Console:
    """The console for results on stdout: the terminal's width, or ``PIPED_WIDTH`` columns when
    stdout is a file or pipe (a job log, CI) and ``COLUMNS`` is unset, so tables stay unwrapped."""
    piped = not sys.stdout.isatty() and "COLUMNS" not in os.environ
    return Console(width=PIPED_WIDTH if piped else None, **options)


@contextlib.contextmanager
def rich_bar(description: str, total: int | None, unit: str) -> Iterator[progress.Advance]:
    """One transient rich bar on stderr (``total=None``: a spinner with a running count).

    (rich's own ``disable=True`` still prints a newline when stopped, so a disabled bar is
    never built: :func:`gcpbench.progress.progress_bar` does not call this then.)
    """
    if total is None:
        columns = (SpinnerColumn(), TextColumn("{task.description}: {task.completed:,}" + (f" {unit}" if unit else "")))
    else:
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, transient=True, console=Console(stderr=True)) as bar:
        task = bar.add_task(description, total=total)
        yield lambda n=1: bar.advance(task, n)


def quiet_now() -> bool:
    """Whether info lines are hidden (``--quiet``, global or the command's)."""
    return not logging.getLogger("gcpbench").isEnabledFor(logging.INFO)


def configure(quiet: bool = False, verbose: bool = False) -> None:
    """The global ``--quiet`` (warnings and errors only, no bars) / ``--verbose`` (debug lines too)."""
    level = logging.WARNING if quiet else logging.DEBUG if verbose else logging.INFO
    logging.getLogger("gcpbench").setLevel(level)
    progress.install(None if quiet else rich_bar)
