"""`gcpbench train`."""
from __future__ import annotations

from gcpbench.cli import app, not_implemented


@app.command()
def train() -> None:
    """Train a zoo model with the paper's LRnorm / LRfast / LRadju schedules."""
    not_implemented("train")
