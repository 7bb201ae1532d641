"""`gcpbench train` and `gcpbench eval-imagenet`."""
from __future__ import annotations

from gcpbench.cli import app, not_implemented


@app.command()
def train() -> None:
    """Train a zoo model with the paper's LRnorm / LRfast / LRadju schedules."""
    not_implemented("train")


@app.command("eval-imagenet")
def eval_imagenet() -> None:
    """Top-1 / top-5 of a checkpoint on an ImageFolder validation tree."""
    not_implemented("eval-imagenet")
