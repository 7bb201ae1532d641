"""``gcpbench train``'s terminal: an epoch bar and an iteration bar with ETA (imported by the
train command when it runs, so ``--help`` does not load the trainer)."""
from __future__ import annotations

import logging
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from gcpbench import progress
from gcpbench.records import EpochRecord
from gcpbench.train.progress import TrainReporter


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
