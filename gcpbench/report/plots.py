"""The report's figures (matplotlib, no display needed).

Each function writes one PNG and returns a :class:`Figure`; when there is nothing to draw, or
an optional module it relies on is missing, the figure has no path and a note that says why.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure as MplFigure
from matplotlib.ticker import MaxNLocator

from gcpbench.io import atomic_write
from gcpbench.report import paper


@dataclass
class Figure:
    """A figure of the report: its title, the PNG (None when skipped) and a note."""

    title: str
    path: Path | None
    note: str = ""


# The paper's epoch counts per family and schedule (DESIGN.md section 5), for the LR curves.
PAPER_EPOCHS: dict[str, dict[str, int]] = {
    "resnet50": {"LRnorm": 100, "LRfast": 30, "LRadju": 50},
    "mobilenetv2": {"LRnorm": 400, "LRfast": 100, "LRadju": 150},
    "shufflenetv2": {"LRnorm": 240, "LRfast": 60, "LRadju": 100},
}
_FAMILY_TITLES = {"resnet50": "ResNet", "mobilenetv2": "MobileNetV2", "shufflenetv2": "ShuffleNetV2"}
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
    schedules = [s for s in paper.SCHEDULES if (curves["schedule"] == s).any()]
    schedules += sorted({str(s) for s in curves["schedule"] if s not in paper.SCHEDULES})
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
    ax.axhline(100, color="black", linewidth=0.8, linestyle="--", label="AlexNet = 100")
    ax.set_xticks([p + 0.4 - width / 2 for p in positions], data["corruption"], rotation=60, ha="right")
    ax.set_ylabel("CE (%)")
    ax.legend(fontsize=7)
    ax.grid(axis="y", alpha=0.3)
    return Figure(title, _save(fig, out))


def lr_figure(out: Path) -> Figure:
    """The learning rate of LRnorm / LRfast / LRadju per family over the paper's epochs."""
    title = "Learning-rate schedules (per family, the paper's epoch counts)"
    try:
        from gcpbench.train.schedules import learning_rate
    except ImportError as exc:
        return Figure(title, None, f"skipped: gcpbench.train.schedules is not available ({exc})")
    fig = MplFigure(figsize=(15, 3.8))
    axes = fig.subplots(1, len(PAPER_EPOCHS))
    try:
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
    except Exception as exc:  # the schedules module is another engineer's: report, do not crash
        return Figure(title, None, f"skipped: learning_rate() failed ({exc.__class__.__name__}: {exc})")
    return Figure(title, _save(fig, out))


def landscape_figure(run_dirs: list[Path], out: Path) -> Figure:
    """The optimisation-landscape figure of the runs that recorded ``landscape.csv``."""
    title = "Optimisation landscape: loss and gradient-predictiveness bands, beta-smoothness"
    if not run_dirs:
        return Figure(title, None, "no run has a landscape.csv (train with --landscape-every K)")
    try:
        from gcpbench.landscape.plot import plot_landscape
    except ImportError as exc:
        return Figure(title, None, f"skipped: gcpbench.landscape.plot is not available ({exc})")
    try:
        plot_landscape(run_dirs, out)
    except Exception as exc:  # another module's failure must not stop the report
        return Figure(title, None, f"skipped: plot_landscape failed ({exc.__class__.__name__}: {exc})")
    return Figure(title, Path(out)) if Path(out).is_file() else Figure(title, None, "plot_landscape wrote no file")
