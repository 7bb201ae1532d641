"""`gcpbench data synth` and `gcpbench data check`."""
from __future__ import annotations

from gcpbench.cli import data_app, not_implemented


@data_app.command()
def synth() -> None:
    """Generate the built-in synthetic datasets."""
    not_implemented("data synth")


@data_app.command()
def check() -> None:
    """Validate a dataset tree against data_manifests/."""
    not_implemented("data check")
