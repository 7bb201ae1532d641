"""The built-in synthetic classification set's default size, apart from its generator (which
imports numpy) so that ``gcpbench data synth --help`` shows them without loading it."""
from __future__ import annotations

DEFAULTS: dict[str, int] = {"num_classes": 10, "image_size": 64, "train_per_class": 200, "val_per_class": 50, "seed": 0}
