"""What training shows: rich progress bars with ETA, or plain log lines with ``--quiet``.

Only rank 0 shows anything; the other ranks get a silent reporter.
"""
from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                           TimeRemainingColumn)


def format_record(record: dict[str, Any], epochs: int) -> str:
    """One log line for a finished epoch."""
    return (f"epoch {record['epoch']}/{epochs}  lr {record['lr']:.4g}  train loss {record['train_loss']:.4f}  "
            f"train top-1 {record['train_top1']:.2f}%  val loss {record['val_loss']:.4f}  "
            f"val top-1 {record['val_top1']:.2f}%  top-5 {record['val_top5']:.2f}%  "
            f"{record['images_per_s']:.1f} img/s  {record['wall_time_s']:.1f} s")


class TrainReporter:
    """Progress of a run: an overall epoch bar and a per-epoch iteration bar (both with ETA)."""

    def __init__(self, enabled: bool, quiet: bool, epochs: int, start_epoch: int) -> None:
        self.enabled, self.quiet, self.epochs = enabled, quiet, epochs
        self.console = Console(quiet=not enabled, highlight=False)
        self.bars = enabled and not quiet
        self.progress = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("elapsed"),
            TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(), TextColumn("{task.fields[info]}"),
            console=self.console, disable=not self.bars, transient=False)
        self.run_task = self.progress.add_task("epochs", total=epochs, completed=start_epoch, info="")
        self.epoch_task: Any = None
        self.steps = 0
        self.log_every = 0

    def __enter__(self) -> "TrainReporter":
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def log(self, message: str) -> None:
        """A line above the bars (or a plain log line)."""
        self.console.print(message, soft_wrap=True)

    def start_epoch(self, epoch: int, steps: int) -> None:
        """``epoch`` is 0-based."""
        self.steps = steps
        self.log_every = max(1, steps // 10) if steps >= 100 else 0
        if self.epoch_task is not None:
            self.progress.remove_task(self.epoch_task)
        self.epoch_task = self.progress.add_task(f"epoch {epoch + 1}/{self.epochs}", total=steps, info="")

    def step(self, epoch: int, step: int, loss: float, lr: float) -> None:
        """After iteration ``step`` (0-based) of ``epoch``."""
        self.progress.update(self.epoch_task, advance=1, info=f"loss {loss:.4f}  lr {lr:.4g}")
        if self.quiet and self.log_every and (step + 1) % self.log_every == 0:
            self.log(f"epoch {epoch + 1}/{self.epochs}  iteration {step + 1}/{self.steps}  loss {loss:.4f}  lr {lr:.4g}")

    def evaluating(self) -> None:
        self.progress.update(self.epoch_task, info="validating")

    def end_epoch(self, record: dict[str, Any]) -> None:
        self.progress.update(self.run_task, completed=record["epoch"],
                             info=f"val top-1 {record['val_top1']:.2f}%")
        self.log(format_record(record, self.epochs))
