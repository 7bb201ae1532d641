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


# ---------------------------------------------------------------- CIFAR-10-C / CIFAR-100-C / CIFAR-10-P (.npy)

CIFAR10_CLASSES: tuple[str, ...] = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                                    "ship", "truck")
# CIFAR-10-P as hendrycks/robustness ImageNet-P/cifar-p-eval.py scores it: these 10 (noise ones
# against the first frame, the others frame by frame); speckle_noise, gaussian_blur, snow and
# shear are in the release but commented out there: held out here.
CIFAR_P_BENCHMARK: tuple[str, ...] = ("gaussian_noise", "shot_noise", "motion_blur", "zoom_blur", "spatter",
                                      "brightness", "translate", "rotate", "tilt", "scale")
CIFAR_P_EXTRA: tuple[str, ...] = ("speckle_noise", "gaussian_blur", "snow", "shear")
# No published baseline normalises CIFAR-10-C / -100-C / -10-P (the ImageNet ones use AlexNet,
# which has no CIFAR counterpart in the benchmark's release): scores are unnormalised.
UNNORMALISED = "unnormalised (no published CIFAR baseline): mean top-1 error / mean raw FP and T5D"


@dataclass(frozen=True)
class NpyBenchmark:
    """A CIFAR robustness set in the ``.npy`` release layout: ``ROOT/<name>.npy`` per corruption
    (severities 1-5 stacked, ``per_severity`` images each) or perturbation ([N, frames, 32, 32, 3]),
    plus ``labels.npy`` for the corruption sets."""

    key: str  # cifar10-c, cifar100-c, cifar10-p
    title: str
    kind: str  # "c" (error per corruption x severity) or "p" (flip probability / top-5 distance)
    num_classes: int
    benchmark: tuple[str, ...]
    extra: tuple[str, ...]
    per_severity: int = 10000

    @property
    def stem(self) -> str:
        return self.key.replace("-", "_")

    @property
    def manifest(self) -> str:
        return self.key

    @property
    def files(self) -> tuple[str, str, str]:
        """(csv, summary, progress log) file names under ``eval/``."""
        return f"{self.stem}.csv", f"{self.stem}_summary.json", f"{self.stem}_progress.jsonl"


def _cifar_c(key: str, title: str, classes: int) -> NpyBenchmark:
    from gcpbench.robustness.baselines import BENCHMARK_CORRUPTIONS, EXTRA_CORRUPTIONS

    return NpyBenchmark(key, title, "c", classes, BENCHMARK_CORRUPTIONS, EXTRA_CORRUPTIONS)


NPY_BENCHMARKS: dict[str, NpyBenchmark] = {b.key: b for b in (
    _cifar_c("cifar10-c", "CIFAR-10-C", 10),
    _cifar_c("cifar100-c", "CIFAR-100-C", 100),
    NpyBenchmark("cifar10-p", "CIFAR-10-P", "p", 10, CIFAR_P_BENCHMARK, CIFAR_P_EXTRA),
)}


def get_npy_benchmark(name: str) -> NpyBenchmark:
    """``cifar10-c``, ``cifar100-c`` or ``cifar10-p`` (underscores work too)."""
    key = name.strip().lower().replace("_", "-")
    if key not in NPY_BENCHMARKS:
        raise GcpbenchError(f"unknown benchmark '{name}': choose one of {', '.join(NPY_BENCHMARKS)}")
    return NPY_BENCHMARKS[key]
