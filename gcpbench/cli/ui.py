"""What the command line shows besides its results: rich progress bars on stderr, the training
bars, and which log lines reach the user (``--quiet`` / ``--verbose``)."""
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
from gcpbench.records import EpochRecord
from gcpbench.train.progress import TrainReporter


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


def configure(quiet: bool = False, verbose: bool = False) -> None:
    """The global ``--quiet`` (warnings and errors only, no bars) / ``--verbose`` (debug lines too)."""
    level = logging.WARNING if quiet else logging.DEBUG if verbose else logging.INFO
    logging.getLogger("gcpbench").setLevel(level)
    progress.install(None if quiet else rich_bar)


class RichTrainReporter(TrainReporter):
    """Training on the terminal: an overall epoch bar and a per-epoch iteration bar (both with
    ETA) on stdout, the run's lines above them; ``quiet`` gives plain lines only. The global
    ``--quiet`` hides both (lines and bars), like every command's info lines and bars."""

    def __init__(self, enabled: bool, quiet: bool, epochs: int, start_epoch: int) -> None:
        super().__init__(enabled, quiet, epochs, start_epoch)
        shown = enabled and logging.getLogger("gcpbench").isEnabledFor(logging.INFO)
        self.console = Console(quiet=not shown, highlight=False)
        self.bars = shown and not quiet and progress.active()
        self.progress = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("elapsed"),
            TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(), TextColumn("{task.fields[info]}"),
            console=self.console, disable=not self.bars, transient=False)
        self.run_task = self.progress.add_task("epochs", total=epochs, completed=start_epoch, info="")
        self.epoch_task: Any = None

    def __enter__(self) -> "RichTrainReporter":
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def log(self, message: str) -> None:
        self.console.print(message, soft_wrap=True)

    def start_epoch(self, epoch: int, steps: int) -> None:
        super().start_epoch(epoch, steps)
        if self.epoch_task is not None:
            self.progress.remove_task(self.epoch_task)
        self.epoch_task = self.progress.add_task(f"epoch {epoch + 1}/{self.epochs}", total=steps, info="")

    def step(self, epoch: int, step: int, loss: float, lr: float) -> None:
        self.progress.update(self.epoch_task, advance=1, info=f"loss {loss:.4f}  lr {lr:.4g}")
        super().step(epoch, step, loss, lr)

    def evaluating(self) -> None:
        self.progress.update(self.epoch_task, info="validating")

    def end_epoch(self, record: EpochRecord) -> None:
        self.progress.update(self.run_task, completed=record.epoch, info=f"val top-1 {record.val_top1:.2f}%")
        super().end_epoch(record)
