"""The paper-style landscape figure: loss band, gradient-predictiveness band, beta-smoothness.

One figure, three panels sharing the x axis (training iteration); every run is one colour
(GAP runs in blues, GCP runs in reds) on the same axes, labelled from its ``config.json``.
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


def plot_landscape(
    run_dirs: Sequence[str | os.PathLike | RunDir], out: str | os.PathLike, logy: bool = False,
    labels: Sequence[str] | None = None, colours: Sequence[str] | None = None,
) -> Path:
    """Draw the figure for ``run_dirs`` (each with a ``landscape.csv``) into ``out`` (PNG);
    ``labels`` / ``colours`` (one per run) replace the config-derived ones (e.g. by method)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = [run if isinstance(run, RunDir) else RunDir(Path(run)) for run in run_dirs]
    frames = [read_landscape(run.landscape) for run in runs]
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.6), sharex=True, constrained_layout=True)
    ax_loss, ax_grad, ax_beta = axes
    for frame, label, colour in zip(frames, labels or _labels(runs), colours or _colours(runs)):
        steps = frame["step"]
        for ax, low, high in ((ax_loss, "loss_min", "loss_max"), (ax_grad, "grad_diff_min", "grad_diff_max")):
            ax.fill_between(steps, frame[low], frame[high], color=colour, alpha=0.3, linewidth=0, label=label)
            ax.plot(steps, frame[low], color=colour, linewidth=0.8)
            ax.plot(steps, frame[high], color=colour, linewidth=0.8)
        ax_beta.plot(steps, frame["beta_smoothness"], color=colour, linewidth=1.5, marker="o" if len(frame) < 30 else None,
                     markersize=3, label=label)
    titles = (
        ("(a) loss landscape", "loss L(y + eta dy), min-max over eta"),
        ("(b) gradient predictiveness", "||grad L(y + eta dy) - dy||, min-max over eta"),
        ("(c) effective beta-smoothness", "max over eta of ||grad diff|| / ||eta dy||"),
    )
    for ax, (title, ylabel) in zip(axes, titles):
        ax.set_title(title)
        ax.set_xlabel("training iteration")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        if logy:
            ax.set_yscale("log")
        ax.legend(fontsize="small")
    grids = {(float(f["eta_min"].iloc[-1]), float(f["eta_max"].iloc[-1]), int(f["num_eta"].iloc[-1])) for f in frames}
    grid = "; ".join(f"eta in [{low:g}, {high:g}], {num} values" for low, high, num in sorted(grids))
    fig.suptitle(f"Optimisation landscape at the stem output ({grid})")
    path = atomic_write(out, lambda tmp: fig.savefig(tmp, format="png", dpi=120))
    plt.close(fig)
    return path
