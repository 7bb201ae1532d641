"""ImageNet-C / -P trees generated once from the built-in synthetic set (the default data).

They live beside the synthetic set: ``default_root()/imagenet-c`` and ``.../imagenet-p``,
with ``SYNTHETIC_PER_CLASS`` images per class chosen (seeded) from its validation split, at the
set's own size (native-size geometry, recorded in each tree's marker: they are a quick check of
the pipeline, not the benchmark's 224 px images).
"""
from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Sequence

from gcpbench.robustness.images import NATIVE
from gcpbench.robustness.trees import read_marker

log = logging.getLogger(__name__)

SYNTHETIC_C_PER_CLASS = 10
SYNTHETIC_P_PER_CLASS = 5


def synthetic_c_root() -> Path:
    from gcpbench.data.synthetic import default_root

    return default_root() / "imagenet-c"


def synthetic_p_root() -> Path:
    from gcpbench.data.synthetic import default_root

    return default_root() / "imagenet-p"


def synthetic_val_root(quiet: bool = False) -> Path:
    """The clean validation split of the built-in synthetic set (generated once)."""
    from gcpbench.data.synthetic import ensure_classification_set

    return ensure_classification_set(quiet=quiet) / "val"


def _ready(root: Path, key: str, wanted: Sequence) -> bool:
    """True when the cached tree at ``root`` holds ``wanted``; a tree of an older generator is
    deleted, so that it is made again, never topped up."""
    from gcpbench.robustness.generate import RECIPE_VERSION

    marker = read_marker(root, allow_unfinished=True)
    if marker is not None and marker.get("recipe_version") != RECIPE_VERSION:
        shutil.rmtree(root)
        return False
    return (marker is not None and not marker.get("unfinished") and marker.get("dataset") == "synthetic"
            and marker.get("geometry_mode") == NATIVE and not marker.get("problems")
            and set(wanted) <= set(marker.get(key, [])))


def ensure_synthetic_c(corruptions: Sequence[str], severities: Sequence[int], workers: int | None = None,
                       quiet: bool = False) -> Path:
    """The synthetic ImageNet-C tree holding at least ``corruptions`` x ``severities``."""
    from gcpbench.robustness.make_c import make_c

    root = synthetic_c_root()
    if not (_ready(root, "corruptions", corruptions) and _ready(root, "severities", severities)):
        log.log(logging.DEBUG if quiet else logging.INFO, f"generating synthetic ImageNet-C data into {root} (once)")
        make_c(None, root, corruptions, severities, per_class=SYNTHETIC_C_PER_CLASS, workers=workers, quiet=quiet,
               native=True)
    return root


def ensure_synthetic_p(perturbations: Sequence[str], difficulty: int, workers: int | None = None,
                       quiet: bool = False) -> Path:
    """The synthetic ImageNet-P tree holding the ``perturbations`` at ``difficulty``."""
    from gcpbench.robustness.benchmarks import folder_name
    from gcpbench.robustness.make_p import make_p

    folders = [folder_name(p, difficulty) for p in perturbations]
    root = synthetic_p_root()
    if not _ready(root, "folders", folders):
        log.log(logging.DEBUG if quiet else logging.INFO, f"generating synthetic ImageNet-P sequences into {root} (once)")
        make_p(None, root, perturbations, difficulties=(difficulty,), per_class=SYNTHETIC_P_PER_CLASS,
               workers=workers, quiet=quiet, native=True)
    return root
