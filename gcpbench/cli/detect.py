"""`gcpbench detect`."""
from __future__ import annotations

from gcpbench.cli import app, not_implemented


@app.command()
def detect() -> None:
    """Faster / Mask R-CNN fine-tuning and COCO evaluation with GAP, GCP_D or GCP_M backbones."""
    not_implemented("detect")
