"""Benchmark definitions (no torch import: the report reads them too).

The ImageNet test-set variants scored like eval-imagenet: one :class:`Variant` each.
"""
from __future__ import annotations

from dataclasses import dataclass

from gcpbench.errors import GcpbenchError


@dataclass(frozen=True)
class Variant:
    """One ImageNet variant: its key (``--variant``), title, manifest and label rule."""

    key: str
    title: str
    manifest: str  # name for gcpbench.data.manifests
    index_folders: bool  # class folders are label indices (ImageNetV2), not wnids
    class_subset: bool  # score on the logits of the classes present only (ImageNet-R / -A)

    @property
    def result_file(self) -> str:
        return f"imagenet_{self.key}.json"

    @property
    def dataset(self) -> str:
        return self.manifest


VARIANTS: dict[str, Variant] = {v.key: v for v in (
    Variant("v2", "ImageNetV2", "imagenet-v2", index_folders=True, class_subset=False),
    Variant("sketch", "ImageNet-Sketch", "imagenet-sketch", index_folders=False, class_subset=False),
    Variant("r", "ImageNet-R", "imagenet-r", index_folders=False, class_subset=True),
    Variant("a", "ImageNet-A", "imagenet-a", index_folders=False, class_subset=True),
)}


def get_variant(name: str) -> Variant:
    """The variant called ``name`` (``v2``, ``sketch``, ``r``, ``a``; ``imagenet-r`` works too)."""
    key = name.strip().lower().replace("_", "-").removeprefix("imagenet-").removeprefix("imagenet")
    if key not in VARIANTS:
        raise GcpbenchError(f"unknown variant '{name}': choose one of {', '.join(VARIANTS)}")
    return VARIANTS[key]
