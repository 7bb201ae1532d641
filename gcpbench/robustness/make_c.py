"""``gcpbench data make-c``: an ImageNet-C tree made with the benchmark's own recipe.

The benchmark's pipeline: torchvision's ``Resize(256)`` + ``CenterCrop(224)``, corrupt
(:mod:`gcpbench.robustness.corruptions`), save JPEG quality 85 (optimised Huffman tables, as
the official script), as ``OUT/<corruption>/<severity>/<wnid>/<stem>.JPEG``, for every source
image whatever its size. Only the built-in synthetic set (64 px) may be kept at its own size,
and only when asked (``native``, recorded in the marker as ``geometry_mode``): the same ratio at
its own size, the crop eval-imagenet gives it (``images.benchmark_geometry``). Each file is written
atomically and existing files are skipped, so an interrupted run resumes. Each (image,
corruption, severity) draws from its own ``RandomState(seed)``, so the same seed gives the
same bytes.
"""
from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

from gcpbench.errors import require_known
from gcpbench.robustness.benchmarks import ALL_CORRUPTIONS, SEVERITIES
from gcpbench.robustness.corruptions import corrupt
from gcpbench.robustness.generate import generate_tree, generating, temp_sibling, write_marker
from gcpbench.robustness.images import benchmark_geometry, render_from_source
from gcpbench.runtime import stable_seed

JPEG_QUALITY = 85
GENERATOR = ("gcpbench.robustness.corruptions: the make_imagenet_c.py recipe (motion_blur and snow: "
             "NumPy motion blur instead of ImageMagick)")


def check_corruptions(corruptions: Sequence[str], severities: Sequence[int]) -> None:
    """One-line errors for unknown corruption names or severities."""
    require_known(corruptions, ALL_CORRUPTIONS,
                  lambda c: f"unknown corruption '{c}'; choose from {', '.join(ALL_CORRUPTIONS)}")
    require_known(severities, SEVERITIES, lambda s: f"severity {s} does not exist; severities are 1 to 5")


def save_jpeg(array: np.ndarray, path: Path, quality: int = JPEG_QUALITY) -> None:
    """Write an RGB uint8 array as JPEG atomically (``optimize=True`` as the official script)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_sibling(path)
    try:
        Image.fromarray(array).save(tmp, format="JPEG", quality=quality, optimize=True)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _corrupt_source(task: tuple[str, str, str, tuple[tuple[str, int], ...], int, bool]) -> tuple[int, list[str]]:
    """Every (corruption, severity) of one source image (runs in a worker)."""
    src, out, wnid, jobs, seed, native = task
    stem = Path(src).stem
    targets = [(c, s, Path(out) / c / str(s) / wnid / f"{stem}.JPEG") for c, s in jobs]
    todo = [t for t in targets if not t[2].is_file()]
    if not todo:
        return len(jobs), []

    def render(image: np.ndarray, job: tuple[str, int, Path]) -> None:
        c, s, path = job
        save_jpeg(corrupt(image, c, s, stable_seed(seed, c, s, wnid, stem)), path)

    readable, problems = render_from_source(src, todo, render, lambda job: f"{job[0]} {job[1]}",
                                            functools.partial(benchmark_geometry, native=native))
    return (len(jobs) if readable else 0), problems


def make_c(src: Path | None, out: Path, corruptions: Sequence[str] = ALL_CORRUPTIONS,
           severities: Sequence[int] = SEVERITIES, per_class: int | None = None, workers: int | None = None,
           seed: int = 0, quiet: bool = False, native: bool = False) -> dict:
    """Build the tree; returns the marker record (problems listed under ``problems``). ``native``:
    native-size geometry for the built-in synthetic set (``src`` None), recorded in the marker."""
    check_corruptions(corruptions, severities)
    corruptions = [c for c in ALL_CORRUPTIONS if c in corruptions]
    severities = sorted(set(severities))
    out = Path(out)
    jobs = tuple((c, s) for c in corruptions for s in severities)
    with generating(out):
        tree = generate_tree(_corrupt_source, jobs, src, out, per_class, seed, workers, "ImageNet-C images", quiet,
                             native)
        record = tree.record(
            "imagenet-c", per_class, seed, images_per_subset=len(tree.sources),
            corruptions=[c for c in ALL_CORRUPTIONS if c in corruptions or c in tree.previously("corruptions")],
            severities=sorted(set(severities) | tree.previously("severities")), jpeg_quality=JPEG_QUALITY,
            generator=GENERATOR)
        write_marker(out, record)
    return record
