"""What a training run reports: one log line per finished epoch (and, with ``quiet``, every
tenth of a long epoch), through :mod:`logging`.

Only rank 0 reports (``enabled``). A front end hands in a subclass that draws bars
(:class:`gcpbench.cli.train_bars.RichTrainReporter`).
"""
from __future__ import annotations

import logging

from gcpbench.records import EpochRecord

log = logging.getLogger(__name__)


def format_record(record: EpochRecord, epochs: int) -> str:
    """One log line for a finished epoch."""
    return (f"epoch {record.epoch}/{epochs}  lr {record.lr:.4g}  train loss {record.train_loss:.4f}  "
            f"train top-1 {record.train_top1:.2f}%  val loss {record.val_loss:.4f}  "
            f"val top-1 {record.val_top1:.2f}%  top-5 {record.val_top5:.2f}%  "
            f"{record.images_per_s:.1f} img/s  {record.wall_time_s:.1f} s")


class TrainReporter:
    """The run's progress as log lines (no bars)."""

    def __init__(self, enabled: bool, quiet: bool, epochs: int, start_epoch: int) -> None:
        self.enabled, self.quiet, self.epochs = enabled, quiet, epochs
        self.steps = 0
        self.log_every = 0

    def __enter__(self) -> "TrainReporter":
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def log(self, message: str) -> None:
        """One line of the run (rank 0 only)."""
        if self.enabled:
            log.info(message)

    def start_epoch(self, epoch: int, steps: int) -> None:
        """``epoch`` is 0-based."""
        self.steps = steps
        self.log_every = max(1, steps // 10) if steps >= 100 else 0

    def step(self, epoch: int, step: int, loss: float, lr: float) -> None:
        """After iteration ``step`` (0-based) of ``epoch``."""
        if self.quiet and self.log_every and (step + 1) % self.log_every == 0:
            self.log(f"epoch {epoch + 1}/{self.epochs}  iteration {step + 1}/{self.steps}  loss {loss:.4f}  lr {lr:.4g}")

    def evaluating(self) -> None:
        """Validation of the epoch starts."""

    def end_epoch(self, record: EpochRecord) -> None:
        self.log(format_record(record, self.epochs))
