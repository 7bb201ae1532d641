"""Benchmark definitions and their reference numbers (no torch import: the report reads them too).

- ImageNet-C / -P: corruption and perturbation names (benchmark and held-out lists), severities,
  difficulties and the AlexNet reference numbers shipped in ``reference_data/``.
  ``ALEXNET_CLEAN_ERROR`` is the clean top-1 error used for relative mCE: 0.4345 (the old
  torchvision model table, as in the ImageNet-C paper). Today's torchvision AlexNet weights
  report 0.43478; pass ``alexnet_clean_error=`` (CLI: ``--alexnet-clean-error``) to use another.
- The ImageNet test-set variants scored like eval-imagenet: one :class:`Variant` each.
- The CIFAR robustness sets in the ``.npy`` release layout: one :class:`NpyBenchmark` each.
"""
from __future__ import annotations

import csv
import functools
import io
from dataclasses import dataclass
from importlib import resources
from typing import Sequence

from gcpbench.errors import GcpbenchError, require_known

# ---------------------------------------------------------------- ImageNet-C / ImageNet-P

ALEXNET_CLEAN_ERROR = 0.4345
SEVERITIES = (1, 2, 3, 4, 5)
DIFFICULTIES = (1, 2, 3)


def _rows(name: str) -> list[dict[str, str]]:
    text = resources.files("gcpbench").joinpath("reference_data", name).read_text()
    return list(csv.DictReader(io.StringIO(text)))


@functools.lru_cache(maxsize=None)
def alexnet_c_errors() -> dict[str, tuple[float, ...]]:
    """Corruption -> AlexNet top-1 error (fraction) at severities 1..5, in the table's order."""
    return {row["corruption"]: tuple(float(row[f"s{s}"]) for s in SEVERITIES)
            for row in _rows("alexnet_imagenet_c.csv")}


@functools.lru_cache(maxsize=None)
def alexnet_p() -> dict[str, tuple[float, float]]:
    """Perturbation -> (AlexNet flip probability as a FRACTION, AlexNet uT5D mean distance).

    The CSV stores FP in percent (``FP_percent``); it is divided by 100 here.
    """
    return {row["perturbation"]: (float(row["FP_percent"]) / 100.0, float(row["uT5D"]))
            for row in _rows("alexnet_imagenet_p.csv")}


@functools.lru_cache(maxsize=None)
def _p_frames() -> dict[str, int]:
    return {row["perturbation"]: int(row["frames"]) for row in _rows("alexnet_imagenet_p.csv")}


def _benchmark_and_extra(name: str, key: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The ``key`` column of table ``name`` split into benchmark rows and held-out rows, in order."""
    rows = _rows(name)
    return (tuple(row[key] for row in rows if row["benchmark"] == "yes"),
            tuple(row[key] for row in rows if row["benchmark"] != "yes"))


BENCHMARK_CORRUPTIONS, EXTRA_CORRUPTIONS = _benchmark_and_extra("alexnet_imagenet_c.csv", "corruption")
BENCHMARK_PERTURBATIONS, EXTRA_PERTURBATIONS = _benchmark_and_extra("alexnet_imagenet_p.csv", "perturbation")
ALL_CORRUPTIONS = BENCHMARK_CORRUPTIONS + EXTRA_CORRUPTIONS
ALL_PERTURBATIONS = BENCHMARK_PERTURBATIONS + EXTRA_PERTURBATIONS


def is_noise(perturbation: str) -> bool:
    """Noise perturbations compare every frame with the first (as the benchmark's code does)."""
    return "noise" in perturbation


def folder_name(perturbation: str, difficulty: int) -> str:
    """Folder of a perturbation at a difficulty: noise ``p``, ``p_2``, ``p_3``; others ``p``."""
    return f"{perturbation}_{difficulty}" if is_noise(perturbation) and difficulty > 1 else perturbation


def base_perturbation(name: str) -> str:
    """``gaussian_noise_2`` -> ``gaussian_noise`` (the difficulty suffix of noise folders)."""
    stem, _, tail = name.rpartition("_")
    return stem if stem and tail.isdigit() else name


def perturbation_frames(perturbation: str) -> int:
    """Frames per sequence in ImageNet-P: 31, translate 41."""
    return _p_frames().get(base_perturbation(perturbation), 31)


def choose(names: Sequence[str], benchmark: Sequence[str], extra_names: Sequence[str], extra: bool,
           only: Sequence[str] | None, what: str) -> list[str]:
    """The ``benchmark`` names (+ ``extra_names`` with ``extra``), or ``only`` (+ them) in the
    order of ``names``; an unknown name in ``only`` is a one-line error naming the ``what``."""
    if only:
        require_known(only, names, lambda n: f"unknown {what} '{n}'; choose from {', '.join(names)}")
        return [n for n in names if n in only or (extra and n in extra_names)]
    return list(benchmark) + (list(extra_names) if extra else [])


# ---------------------------------------------------------------- ImageNet variants

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
