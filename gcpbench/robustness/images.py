"""Image geometry of the benchmarks and tolerant image reading."""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence, TypeVar

import numpy as np
from PIL import Image

RESIZE, CROP = 256, 224

GEOMETRY_FULL = "resize short side to 256, centre crop 224 (the official pipeline)"
GEOMETRY_KEPT = "kept the original size (images smaller than 224 px, e.g. the synthetic set)"


def is_small(image: Image.Image) -> bool:
    """Images smaller than the 224 px crop keep their size (the synthetic set)."""
    return min(image.size) < CROP


def benchmark_geometry(image: Image.Image, resize: int = RESIZE, crop: int = CROP,
                       resample: int = Image.BILINEAR) -> Image.Image:
    """Resize the short side to 256 and centre-crop 224 (or a model's own ``resize``/``crop``;
    images smaller than the benchmark's 224 px crop are returned unchanged)."""
    if is_small(image):
        return image
    w, h = image.size
    scale = resize / min(w, h)
    image = image.resize((max(crop, round(w * scale)), max(crop, round(h * scale))), resample)
    w, h = image.size
    left, top = (w - crop) // 2, (h - crop) // 2
    return image.crop((left, top, left + crop, top + crop))


def fit_input(image: Image.Image, size: int, resample: int = Image.BILINEAR) -> Image.Image:
    """A benchmark image (224 px) resized to a model's input ``size``; small images and images
    already of that size are returned unchanged."""
    if is_small(image) or image.size == (size, size):
        return image
    return image.resize((size, size), resample)


def geometry_note(small: bool) -> str:
    """How the images were brought to size, for records."""
    return GEOMETRY_KEPT if small else GEOMETRY_FULL


def read_rgb(path: str | Path) -> Image.Image:
    """Open an image fully decoded as RGB (raises OSError / ValueError on broken files)."""
    with Image.open(path) as image:
        image.load()
        return image.convert("RGB")


Job = TypeVar("Job")


def render_from_source(src: str, todo: Sequence[Job], render: Callable[[np.ndarray, Job], None],
                       describe: Callable[[Job], str]) -> tuple[bool, list[str]]:
    """Read ``src`` in the benchmark geometry and call ``render(image, job)`` for every job.

    Returns (source readable, problem lines): an unreadable source or a failing job is
    reported, never raised, so one bad file does not stop a generation run."""
    try:
        image = np.asarray(benchmark_geometry(read_rgb(src)))
    except Exception as exc:
        return False, [f"{src}: {type(exc).__name__}: {exc}"]
    problems = []
    for job in todo:
        try:
            render(image, job)
        except Exception as exc:
            problems.append(f"{src} [{describe(job)}]: {type(exc).__name__}: {exc}")
    return True, problems
