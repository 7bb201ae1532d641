"""The paper-style landscape figure: loss band, gradient-predictiveness band, beta-smoothness.

Runs probed during training: three panels against the training iteration (loss band, gradient-
predictiveness band, effective beta-smoothness). Runs probed once (``gcpbench landscape --ckpt``):
three panels against the step size eta (loss, gradient change, gradient change per step, whose
maximum is the effective beta-smoothness). Every run is one colour (GAP runs in blues, GCP runs
in reds), labelled from its ``config.json``; the title names the data and the eta grid.
"""
from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Sequence

from gcpbench.io import atomic_write
from gcpbench.landscape.recorder import read_landscape
from gcpbench.runs import RunDir

PALETTES = {
    "gap": ("tab:blue", "tab:cyan", "tab:purple", "navy"),
    "gcp": ("tab:red", "tab:orange", "tab:brown", "darkred"),
    "other": ("tab:green", "tab:olive", "tab:gray", "black"),
}


def run_label(run: RunDir) -> str:
    """``resnet18 GCP LRnorm`` (``resnet18 GCP mpn LRnorm`` for another normalisation than
    iSQRT-COV) from the run's config (model / head / schedule); the folder
    name when the config says nothing."""
    config = run.run_config()
    arch = config and (config.arch or config.model)
    if not arch:
        return run.path.name
    parts = [str(arch)]
    if config.head:
        dim = config.gcp_dim
        parts.append(config.head.upper() + (f"-{dim}" if config.head == "gcp" and dim not in (None, 256) else ""))
        norm = getattr(config, "gcp_norm", None)
        if config.head == "gcp" and norm not in (None, "isqrt"):
            parts.append(str(norm))
    if config.schedule:
        parts.append(str(config.schedule))
    return " ".join(parts)


def _labels(runs: Sequence[RunDir]) -> list[str]:
    labels = [run_label(run) for run in runs]
    counts = Counter(labels)
    return [f"{label} ({run.path.name})" if counts[label] > 1 else label for label, run in zip(labels, runs)]


def _colours(runs: Sequence[RunDir]) -> list[str]:
    used: Counter[str] = Counter()
    colours = []
    for run in runs:
        config = run.run_config()
        head = config.head if config else None
        kind = head if head in PALETTES else "other"
        palette = PALETTES[kind]
        colours.append(palette[used[kind] % len(palette)])
        used[kind] += 1
    return colours


def read_eta_curves(run: RunDir):
    """A single probe's values per step size (``landscape_eta.csv``), None when absent or unreadable."""
    import pandas as pd

    try:
        frame = pd.read_csv(run.landscape_eta, float_precision="round_trip")
    except (OSError, ValueError):
        return None
    if not {"eta", "loss", "grad_diff", "grad_norm"} <= set(frame.columns) or frame.empty:
        return None
    return frame.apply(pd.to_numeric, errors="coerce").dropna(subset=["eta"]).sort_values("eta")


LOSS = r"\mathcal{L}"
GRAD = r"\nabla_y\mathcal{L}"
TRAINING_PANELS = (
    ("(a) loss landscape", rf"${LOSS}(y+\eta\,{GRAD})$, min-max over $\eta$"),
    ("(b) gradient predictiveness", rf"$\|{GRAD}(y+\eta\,{GRAD})-{GRAD}\|$, min-max over $\eta$"),
    (r"(c) effective $\beta$-smoothness", rf"$\max_\eta\,\|{GRAD}(y+\eta\,{GRAD})-{GRAD}\|\,/\,\|\eta\,{GRAD}\|$"),
)
PROBE_PANELS = (
    ("(a) loss along the gradient", rf"${LOSS}(y+\eta\,{GRAD})$"),
    ("(b) gradient change", rf"$\|{GRAD}(y+\eta\,{GRAD})-{GRAD}\|$"),
    ("(c) gradient change per step", rf"$\|{GRAD}(y+\eta\,{GRAD})-{GRAD}\|\,/\,\|\eta\,{GRAD}\|$"),
)


def _draw_training(axes, frames, labels, colours) -> None:
    """Bands over eta against the training iteration (runs with several probes)."""
    ax_loss, ax_grad, ax_beta = axes
    for frame, label, colour in zip(frames, labels, colours):
        steps = frame["step"]
        for ax, low, high in ((ax_loss, "loss_min", "loss_max"), (ax_grad, "grad_diff_min", "grad_diff_max")):
            ax.fill_between(steps, frame[low], frame[high], color=colour, alpha=0.3, linewidth=0, label=label)
            ax.plot(steps, frame[low], color=colour, linewidth=0.8)
            ax.plot(steps, frame[high], color=colour, linewidth=0.8)
        ax_beta.plot(steps, frame["beta_smoothness"], color=colour, linewidth=1.5,
                     marker="o" if len(frame) < 30 else None, markersize=3, label=label)
    for ax, (title, ylabel) in zip(axes, TRAINING_PANELS):
        ax.set_title(title)
        ax.set_xlabel("training iteration")
        ax.set_ylabel(ylabel)


def _draw_probe(axes, run: RunDir, frame, label: str, colour: str) -> None:
    """One probe (a run with one landscape row) against the step size: the per-eta curves when
    ``landscape_eta.csv`` holds them, else the stored bands over the eta range."""
    ax_loss, ax_grad, ax_ratio = axes
    row = frame.iloc[-1]
    curves = read_eta_curves(run)
    if curves is not None:
        ax_loss.plot(curves["eta"], curves["loss"], color=colour, marker="o", markersize=2.5, label=label)
        ax_loss.axhline(row["train_loss"], color=colour, linestyle=":", linewidth=1,
                        label=rf"{label}: ${LOSS}(y)$ = {row['train_loss']:.4g}")
        ax_grad.plot(curves["eta"], curves["grad_diff"], color=colour, marker="o", markersize=2.5, label=label)
        positive = curves[(curves["eta"] > 0) & (curves["grad_norm"] > 0)]
        ratio = positive["grad_diff"] / (positive["eta"] * positive["grad_norm"])
        ax_ratio.plot(positive["eta"], ratio, color=colour, marker="o", markersize=2.5, label=label)
        if len(ratio):
            top = ratio.idxmax()
            ax_ratio.plot([positive.at[top, "eta"]], [ratio[top]], marker="*", markersize=12, color=colour,
                          linestyle="none", label=rf"max = effective $\beta$ = {ratio[top]:.3g}")
        return
    span = [row["eta_min"], row["eta_max"]]
    for ax, low, high in ((ax_loss, "loss_min", "loss_max"), (ax_grad, "grad_diff_min", "grad_diff_max")):
        ax.fill_between(span, [row[low]] * 2, [row[high]] * 2, color=colour, alpha=0.3, label=f"{label} (min-max)")
    ax_ratio.hlines(row["beta_smoothness"], *span, color=colour, label=rf"{label}: max = $\beta$")


def _data_statement(runs: Sequence[RunDir]) -> str:
    """Which data the runs measured on (from their config.json)."""
    datasets = []
    for run in runs:
        config = run.run_config()
        dataset = getattr(config, "dataset", None) or "unknown data"
        datasets.append(f"{dataset} (subset)" if getattr(config, "subset", False) else str(dataset))
    return ", ".join(dict.fromkeys(datasets))


def draw_landscape(run_dirs: Sequence[str | os.PathLike | RunDir], logy: bool = False,
                   labels: Sequence[str] | None = None, colours: Sequence[str] | None = None):
    """The matplotlib figure for ``run_dirs`` (each with a ``landscape.csv``); ``labels`` /
    ``colours`` (one per run) replace the config-derived ones (e.g. by method).

    Runs probed during training (several rows) are drawn against the training iteration; runs
    probed once (``gcpbench landscape --ckpt``: one row) against the step size eta, in a row of
    panels of their own. The title states the data and the step-size grid."""
    from matplotlib.figure import Figure

    runs = [run if isinstance(run, RunDir) else RunDir(Path(run)) for run in run_dirs]
    frames = [read_landscape(run.landscape) for run in runs]
    labels, colours = list(labels or _labels(runs)), list(colours or _colours(runs))
    training = [i for i, frame in enumerate(frames) if len(frame) > 1]
    probes = [i for i, frame in enumerate(frames) if len(frame) == 1]
    rows = int(bool(training)) + int(bool(probes))
    fig = Figure(figsize=(16, 4.6 * rows), constrained_layout=True)
    axes = fig.subplots(rows, 3, squeeze=False)
    row = 0
    if training:
        _draw_training(axes[row], [frames[i] for i in training], [labels[i] for i in training],
                       [colours[i] for i in training])
        row += 1
    if probes:
        for i in probes:
            _draw_probe(axes[row], runs[i], frames[i], labels[i], colours[i])
        for ax, (title, ylabel) in zip(axes[row], PROBE_PANELS):
            ax.set_title(title + (" (one probe per model)" if ax is axes[row][0] else ""))
            ax.set_xlabel(r"step size $\eta$")
            ax.set_ylabel(ylabel)
    for ax in axes.ravel():
        ax.grid(alpha=0.3)
        if logy:
            ax.set_yscale("log")
        ax.legend(fontsize="small")
    grids = {(float(f["eta_min"].iloc[-1]), float(f["eta_max"].iloc[-1]), int(f["num_eta"].iloc[-1])) for f in frames}
    grid = "; ".join(rf"$\eta \in [{low:g}, {high:g}]$, {num} values" for low, high, num in sorted(grids))
    fig.suptitle(f"Optimisation landscape at the stem output; data: {_data_statement(runs)}; {grid}")
    return fig


def plot_landscape(
    run_dirs: Sequence[str | os.PathLike | RunDir], out: str | os.PathLike, logy: bool = False,
    labels: Sequence[str] | None = None, colours: Sequence[str] | None = None,
) -> Path:
    """Draw the figure for ``run_dirs`` (:func:`draw_landscape`) into ``out`` (PNG, atomically)."""
    fig = draw_landscape(run_dirs, logy, labels, colours)
    return atomic_write(out, lambda tmp: fig.savefig(tmp, format="png", dpi=120))
