"""Optimisation landscape: loss Lipschitzness, gradient predictiveness, beta-smoothness.

``measure`` probes one batch, ``LandscapeRecorder`` records it during training into
``RUN/landscape.csv`` and ``plot_landscape`` draws the paper-style figure.
"""
from gcpbench.landscape.plot import plot_landscape
from gcpbench.landscape.probe import default_etas, default_every, measure
from gcpbench.landscape.recorder import COLUMNS, LandscapeRecorder, read_landscape

__all__ = ["COLUMNS", "LandscapeRecorder", "default_etas", "default_every", "measure", "plot_landscape", "read_landscape"]
