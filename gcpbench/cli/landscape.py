"""`gcpbench landscape`."""
from __future__ import annotations

from gcpbench.cli import app, not_implemented


@app.command()
def landscape() -> None:
    """Loss Lipschitzness, gradient predictiveness and beta-smoothness figures."""
    not_implemented("landscape")
