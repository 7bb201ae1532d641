"""AlexNet reference numbers of ImageNet-C and ImageNet-P (shipped in ``reference_data/``).

``ALEXNET_CLEAN_ERROR`` is the clean top-1 error used for relative mCE: 0.4345 (the old
torchvision model table, as in the ImageNet-C paper). Today's torchvision AlexNet weights
report 0.43478; pass ``alexnet_clean_error=`` (CLI: ``--alexnet-clean-error``) to use another.
"""
from __future__ import annotations

import csv
import functools
import io
from importlib import resources
from typing import Sequence

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


def _benchmark(name: str, key: str) -> tuple[str, ...]:
    return tuple(row[key] for row in _rows(name) if row["benchmark"] == "yes")


def _extra(name: str, key: str) -> tuple[str, ...]:
    return tuple(row[key] for row in _rows(name) if row["benchmark"] != "yes")


BENCHMARK_CORRUPTIONS: tuple[str, ...] = _benchmark("alexnet_imagenet_c.csv", "corruption")
EXTRA_CORRUPTIONS: tuple[str, ...] = _extra("alexnet_imagenet_c.csv", "corruption")
BENCHMARK_PERTURBATIONS: tuple[str, ...] = _benchmark("alexnet_imagenet_p.csv", "perturbation")
EXTRA_PERTURBATIONS: tuple[str, ...] = _extra("alexnet_imagenet_p.csv", "perturbation")
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
    from gcpbench.errors import require_known

    if only:
        require_known(only, names, lambda n: f"unknown {what} '{n}'; choose from {', '.join(names)}")
        return [n for n in names if n in only or (extra and n in extra_names)]
    return list(benchmark) + (list(extra_names) if extra else [])
