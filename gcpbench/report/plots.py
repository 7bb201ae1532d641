"""The report's figures (matplotlib, no display needed).

Each function writes one PNG and returns a :class:`Figure`; when there is nothing to draw, the
figure has no path and a note that says why.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure as MplFigure
from matplotlib.ticker import MaxNLocator

from gcpbench.io import atomic_write
from gcpbench.report import paper
from gcpbench.report.status import NOT_IMAGENET
from gcpbench.train.schedules import SCHEDULES, defaults


@dataclass
class Figure:
    """A figure of the report: its title, the PNG (None when skipped) and a note."""

    title: str
    path: Path | None
    note: str = ""


_FAMILY_TITLES = {"resnet50": "ResNet", "mobilenetv2": "MobileNetV2", "shufflenetv2": "ShuffleNetV2"}
# The paper's epoch counts per family and schedule (owned by gcpbench.train.schedules), for the LR curves.
PAPER_EPOCHS: dict[str, dict[str, int]] = {
    arch: {schedule: d.epochs for schedule, d in defaults(arch).items()} for arch in _FAMILY_TITLES}
_HEAD_COLOURS = {"gap": "tab:blue", "gcp": "tab:red"}
_LINESTYLES = ("-", "--", ":", "-.")


def _save(fig: MplFigure, out: Path) -> Path:
    """Write the figure as PNG atomically (a crash never leaves half a file)."""
    return atomic_write(out, lambda tmp: fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight"))


def _run_label(row: pd.Series) -> str:
    head = str(row["head"]).upper()
    if row["head"] == "gcp" and not pd.isna(row["gcp_dim"]) and row["gcp_dim"] != 256:
        head += f"-{row['gcp_dim']}"
    return f"{paper.display_name(str(row['arch']))} {head} ({row['dataset']}, {row['run']})"


def convergence_figure(curves: pd.DataFrame, out: Path) -> Figure:
    """Validation top-1 against epoch, one panel per schedule, GAP (blue) vs GCP (red)."""
    title = "Convergence: validation Top-1 per schedule, GAP vs GCP"
    if curves.empty:
        return Figure(title, None, "no training run with metrics.jsonl")
    schedules = [s for s in SCHEDULES if (curves["schedule"] == s).any()]
    schedules += sorted({str(s) for s in curves["schedule"] if s not in SCHEDULES})
    fig = MplFigure(figsize=(5 * len(schedules), 3.8))
    axes = fig.subplots(1, len(schedules), squeeze=False)[0]
    archs = list(dict.fromkeys(curves["arch"]))
    for ax, schedule in zip(axes, schedules):
        chosen = curves[curves["schedule"].astype(str) == schedule]
        for run, curve in chosen.groupby("run", sort=True):
            first = curve.iloc[0]
            style = _LINESTYLES[archs.index(first["arch"]) % len(_LINESTYLES)]
            ax.plot(curve["epoch"], curve["val_top1"], style, marker="o", markersize=3,
                    color=_HEAD_COLOURS.get(first["head"], "tab:gray"), label=_run_label(first))
        ax.set_title(schedule)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("epoch")
        ax.set_ylabel("val Top-1 (%)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    return Figure(title, _save(fig, out))


def corruption_figure(ce_table: pd.DataFrame, out: Path) -> Figure:
    """Grouped bars: CE per corruption (rows of the corruption table), one bar per model."""
    title = "ImageNet-C: corruption error per corruption (% of AlexNet)"
    models = [c for c in ce_table.columns if c != "corruption"]
    if not models:
        return Figure(title, None, "no ImageNet-C summary found")
    data = ce_table[ce_table["corruption"] != "mCE"]
    width = 0.8 / len(models)
    fig = MplFigure(figsize=(max(8.0, 0.6 * len(data)), 4.2))
    ax = fig.subplots()
    positions = range(len(data))
    for i, model in enumerate(models):
        ax.bar([p + i * width for p in positions], data[model].astype(float), width, label=model)
    imagenet = [m for m in models if f"[{NOT_IMAGENET}" not in m and f", {NOT_IMAGENET}" not in m]
    if imagenet:  # AlexNet's errors are ImageNet's: the line means something for ImageNet-made data only
        ax.axhline(100, color="black", linewidth=0.8, linestyle="--", label="AlexNet = 100 (ImageNet data)")
    ax.set_xticks([p + 0.4 - width / 2 for p in positions], data["corruption"], rotation=60, ha="right")
    ax.set_ylabel("CE (%)")
    ax.legend(fontsize=7)
    ax.grid(axis="y", alpha=0.3)
    note = "" if imagenet else (f"every model is marked [{NOT_IMAGENET}]: its CE divides errors on other data by "
                                "AlexNet's ImageNet errors; the bars are not comparable with published CE")
    return Figure(title, _save(fig, out), note)


def lr_figure(out: Path) -> Figure:
    """The learning rate of LRnorm / LRfast / LRadju per family over the paper's epochs."""
    title = "Learning-rate schedules (per family, the paper's epoch counts)"
    from gcpbench.train.schedules import learning_rate

    fig = MplFigure(figsize=(15, 3.8))
    axes = fig.subplots(1, len(PAPER_EPOCHS))
    for ax, (arch, schedules) in zip(axes, PAPER_EPOCHS.items()):
        for schedule, epochs in schedules.items():
            values = [learning_rate(arch, schedule, epoch, step=0, steps_per_epoch=1) for epoch in range(epochs)]
            ax.plot(range(epochs), values, label=f"{schedule} ({epochs} epochs)")
        ax.set_title(_FAMILY_TITLES[arch])
        ax.set_xlabel("epoch (0-based)")
        ax.set_ylabel("learning rate")
        ax.set_yscale("log")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return Figure(title, _save(fig, out))


def landscape_figure(run_dirs: list[Path], out: Path) -> Figure:
    """The optimisation-landscape figure of the runs that recorded ``landscape.csv``."""
    title = "Optimisation landscape: loss and gradient-predictiveness bands, beta-smoothness"
    if not run_dirs:
        return Figure(title, None, "no run has a landscape.csv (train with --landscape-every K)")
    from gcpbench.landscape.plot import plot_landscape

    return Figure(title, plot_landscape(run_dirs, out))
