"""Which classification data a command uses: a user tree (checked first) or the built-in set."""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from gcpbench.data.folders import check_classification_root
from gcpbench.data.manifests import check_tree, imagenet_classes
from gcpbench.data.synthetic import ensure_classification_set, synthetic_info
from gcpbench.runtime import process_rank

log = logging.getLogger(__name__)

IMAGENET_SIZE = 224


@dataclass(frozen=True)
class DataSource:
    """A checked classification tree and how to feed it."""

    root: Path
    dataset: str  # "synthetic", "imagenet" or the tree's folder name
    image_size: int  # crop size: the synthetic set's own size, else 224
    classes: list[str]
    synthetic: bool


def crop_size_of(root: str | os.PathLike) -> int:
    """The evaluation crop of a dataset root (holding ``val/``): the synthetic set's own size, else 224."""
    info = synthetic_info(Path(root))
    return int(info["image_size"]) if info is not None else IMAGENET_SIZE


def resolve_classification_data(data: str | os.PathLike | None, splits: Sequence[str] = ("train", "val"),
                                quiet: bool = False) -> DataSource:
    """``data`` checked (ImageFolder layout; a 1000-class tree also against the ImageNet manifest),
    or, when ``data`` is None, the built-in synthetic set (generated once; rank 0 logs so
    even when ``quiet``, which only hides progress bars)."""
    if data is None:
        root = ensure_classification_set(quiet=quiet)
        if process_rank() == 0:
            log.info(f"no --data given: using the built-in synthetic set at {root}")
    else:
        root = Path(data)
    tree = check_classification_root(root, splits)
    if synthetic_info(root) is not None:
        return DataSource(root, "synthetic", crop_size_of(root), tree.classes, True)
    if len(tree.classes) == len(imagenet_classes()):
        check_tree("imagenet", root, only=list(splits))
        return DataSource(root, "imagenet", IMAGENET_SIZE, tree.classes, False)
    return DataSource(root, root.resolve().name, IMAGENET_SIZE, tree.classes, False)
