"""The convergence plot of a training run: train loss and val top-1 per epoch, LR on twin axes."""
from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Sequence

from gcpbench.io import atomic_write
from gcpbench.records import EpochRecord


def convergence_plot(records: Sequence[EpochRecord], path: str | os.PathLike, title: str = "") -> Path:
    """Write ``plots/convergence.png``-style figure from metrics records (atomically)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [r.epoch for r in records]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(7, 6), sharex=True)
    panels = ((top, "train_loss", "train loss", "tab:blue"), (bottom, "val_top1", "val top-1 (%)", "tab:green"))
    for axis, key, label, colour in panels:
        axis.plot(epochs, [getattr(r, key) for r in records], marker="o", color=colour, label=label)
        axis.set_ylabel(label, color=colour)
        axis.grid(alpha=0.3)
        twin = axis.twinx()
        twin.plot(epochs, [r.lr for r in records], linestyle="--", color="tab:red", label="LR (epoch start)")
        twin.set_ylabel("learning rate", color="tab:red")
        lines = axis.get_lines() + twin.get_lines()
        axis.legend(lines, [line.get_label() for line in lines], loc="best", fontsize=8)
    bottom.set_xlabel("epoch")
    if title:
        top.set_title(title)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    return atomic_write(path, lambda tmp: tmp.write_bytes(buffer.getvalue()))
