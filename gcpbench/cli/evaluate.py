"""`gcpbench eval-imagenet`."""
from __future__ import annotations

from gcpbench.cli import app, not_implemented


@app.command("eval-imagenet")
def eval_imagenet() -> None:
    """Top-1 / top-5 of a checkpoint on an ImageFolder validation tree."""
    not_implemented("eval-imagenet")
