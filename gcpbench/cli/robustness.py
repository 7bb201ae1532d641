"""`gcpbench eval-c`, `gcpbench eval-p`, `gcpbench data make-c` and `data make-p`."""
from __future__ import annotations

from gcpbench.cli import app, data_app, not_implemented


@app.command("eval-c")
def eval_c() -> None:
    """ImageNet-C: error per corruption x severity, CE, mCE, relative mCE."""
    not_implemented("eval-c")


@app.command("eval-p")
def eval_p() -> None:
    """ImageNet-P: flip probability and top-5 distance, mFP, mT5D."""
    not_implemented("eval-p")


@data_app.command("make-c")
def make_c() -> None:
    """Build an ImageNet-C-style tree from a validation tree."""
    not_implemented("data make-c")


@data_app.command("make-p")
def make_p() -> None:
    """Build ImageNet-P-style perturbation sequences (mp4) from a validation tree."""
    not_implemented("data make-p")
