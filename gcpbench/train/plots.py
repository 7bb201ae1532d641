"""The convergence plot of a training run: loss, top-1 and the learning rate per epoch, each in
its own panel (the LR never shares an axis with the loss), integer epoch ticks."""
from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Sequence

from gcpbench.io import atomic_write
from gcpbench.records import EpochRecord


def convergence_figure(records: Sequence[EpochRecord], title: str = ""):
    """The convergence figure of metrics records (a matplotlib Figure, no pyplot state).

    Three panels sharing the epoch axis: (a) train / val loss, (b) train / val top-1 and val
    top-5, (c) the learning rate at each epoch's start (log scale). ``title`` states the data
    (model, schedule, data set); the epochs shown are added to it.
    """
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    epochs = [r.epoch for r in records]
    fig = Figure(figsize=(7, 7.5))
    loss, accuracy, lr = fig.subplots(3, 1, sharex=True, gridspec_kw={"height_ratios": [3, 3, 1.6]})
    loss.plot(epochs, [r.train_loss for r in records], marker="o", color="tab:blue", label="train")
    loss.plot(epochs, [r.val_loss for r in records], marker="s", color="tab:orange", label="validation")
    loss.set_ylabel(r"cross-entropy loss $\mathcal{L}$")
    loss.set_title("(a) loss", loc="left", fontsize=10)
    accuracy.plot(epochs, [r.train_top1 for r in records], marker="o", color="tab:blue", label="train top-1")
    accuracy.plot(epochs, [r.val_top1 for r in records], marker="s", color="tab:green", label="val top-1")
    accuracy.plot(epochs, [r.val_top5 for r in records], marker="^", color="tab:olive", linestyle=":",
                  label="val top-5")
    accuracy.set_ylabel("accuracy (%)")
    accuracy.set_title("(b) accuracy", loc="left", fontsize=10)
    lr.step(epochs, [r.lr for r in records], where="post", color="tab:red", marker=".", label=r"$\eta$ at epoch start")
    lr.set_ylabel(r"learning rate $\eta$")
    lr.set_yscale("log")
    lr.set_title("(c) learning rate", loc="left", fontsize=10)
    lr.set_xlabel("epoch")
    lr.xaxis.set_major_locator(MaxNLocator(integer=True))
    for axis in (loss, accuracy, lr):
        axis.grid(alpha=0.3)
        axis.legend(loc="best", fontsize=8)
    span = f"epochs {epochs[0]}-{epochs[-1]}" if len(epochs) > 1 else f"epoch {epochs[0]}"
    fig.suptitle(f"{title} — {span}" if title else span, fontsize=11)
    fig.tight_layout()
    return fig


def convergence_plot(records: Sequence[EpochRecord], path: str | os.PathLike, title: str = "") -> Path:
    """Write :func:`convergence_figure` as PNG to ``path`` (atomically)."""
    buffer = io.BytesIO()
    convergence_figure(records, title).savefig(buffer, format="png", dpi=110)
    return atomic_write(path, lambda tmp: tmp.write_bytes(buffer.getvalue()))
