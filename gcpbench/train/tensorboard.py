"""TensorBoard scalars of a training run, in ``RUN/tensorboard/`` (``tensorboard --logdir runs``).

Rank 0 writes (under DDP the metrics are already all-reduced); torch's ``SummaryWriter`` queues
events and a background thread writes them, so a scalar costs microseconds per iteration. Tags:

- ``train/loss_iter``, ``train/lr_iter``: every ``EVERY`` iterations (x: global iteration)
- ``train/loss``, ``train/top1``, ``val/loss``, ``val/top1``, ``val/top5``, ``lr``,
  ``speed/images_per_s``: once per epoch (x: epoch, 1-based; top-1 / top-5 in percent)
- ``landscape/loss_min``, ``loss_max``, ``grad_diff_min``, ``grad_diff_max``,
  ``beta_smoothness``: each probe of ``--landscape-every`` (x: its iteration)
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Mapping

from gcpbench.records import EpochRecord

log = logging.getLogger(__name__)

FOLDER = "tensorboard"
EVERY = 10  # iterations between per-iteration scalars
EPOCH_TAGS = {"train_loss": "train/loss", "train_top1": "train/top1", "val_loss": "val/loss", "val_top1": "val/top1",
              "val_top5": "val/top5", "lr": "lr", "images_per_s": "speed/images_per_s"}
LANDSCAPE_TAGS = ("loss_min", "loss_max", "grad_diff_min", "grad_diff_max", "beta_smoothness")


class TensorBoardLog:
    """The run's TensorBoard writer (open on rank 0 only; the others get ``None`` from :func:`open_log`)."""

    def __init__(self, run_path: Path) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.path = Path(run_path) / FOLDER
        self.writer = SummaryWriter(log_dir=str(self.path))

    def iteration(self, step: int, loss: float, lr: float) -> None:
        if step % EVERY == 0:
            self.writer.add_scalar("train/loss_iter", loss, step)
            self.writer.add_scalar("train/lr_iter", lr, step)

    def epoch(self, record: EpochRecord) -> None:
        for key, tag in EPOCH_TAGS.items():
            self.writer.add_scalar(tag, getattr(record, key), record.epoch)
        self.writer.flush()

    def landscape(self, row: Mapping[str, Any]) -> None:
        for key in LANDSCAPE_TAGS:
            self.writer.add_scalar(f"landscape/{key}", row[key], int(row["step"]))

    def close(self) -> None:
        self.writer.close()


def open_log(run_path: Path, enabled: bool, is_main: bool) -> TensorBoardLog | None:
    """The writer for a run, or None (disabled, another rank, or tensorboard not installed)."""
    if not (enabled and is_main):
        return None
    try:
        return TensorBoardLog(run_path)
    except ImportError as exc:
        log.warning(f"no TensorBoard logs: {exc} (pip install tensorboard, or pass --no-tensorboard)")
        return None
