"""`gcpbench report`."""
from __future__ import annotations

from gcpbench.cli import app, not_implemented


@app.command()
def report() -> None:
    """Collect every run's metrics into paper-style tables and plots."""
    not_implemented("report")
