"""Image geometry of the benchmarks and tolerant image reading."""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence, TypeVar

import numpy as np
from PIL import Image

RESIZE, CROP = 256, 224

OFFICIAL, NATIVE = "official", "native"  # the geometry modes of make-c / make-p (recorded per tree)
GEOMETRY_FULL = "resize short side to 256, centre crop 224, for every source image (the official pipeline)"
GEOMETRY_SMALL = ("native size (--native-size, the built-in synthetic set only): Resize(round(s*256/224)) + "
                  "CenterCrop(s) with s the image's short side, as eval-imagenet crops it; not the benchmark's 224 px")
GEOMETRY_KEPT = ("native size (--native-size, the built-in synthetic set only): frames keep the source image's "
                 "size; not the benchmark's 224 px")


def is_small(image: Image.Image) -> bool:
    """Smaller than the 224 px crop: only native-size frames are (they are never cropped or resized)."""
    return min(image.size) < CROP


def resized(image: Image.Image, native: bool = False) -> Image.Image:
    """torchvision's ``Resize(256)`` (short side 256, bilinear), the image ImageNet-P's
    geometric sequences start from, whatever the source's size; ``native`` keeps the image."""
    if native:
        return image
    from torchvision import transforms

    return transforms.Resize(RESIZE)(image)


def centre_crop(image: Image.Image) -> Image.Image:
    """torchvision's ``CenterCrop(224)`` (a native-size frame smaller than that is returned unchanged)."""
    if is_small(image):
        return image
    from torchvision import transforms

    return transforms.CenterCrop(CROP)(image)


def benchmark_geometry(image: Image.Image, native: bool = False) -> Image.Image:
    """``Resize(256)`` + ``CenterCrop(224)`` with torchvision's own transforms, as the official
    generators, for every image whatever its size. ``native`` (the built-in synthetic set, an
    explicit choice recorded in the tree's marker): the same ratio at the image's own size,
    ``Resize(round(s*256/224))`` + ``CenterCrop(s)``, the geometry eval-imagenet (and so eval-c's
    clean error) uses for the synthetic set, so corrupted and clean images are cropped alike."""
    from torchvision import transforms

    if not native:
        return transforms.CenterCrop(CROP)(resized(image))
    from gcpbench.data.transforms import eval_resize

    size = min(image.size)
    return transforms.CenterCrop(size)(transforms.Resize(eval_resize(size))(image))


def fit_input(image: Image.Image, size: int, resample: int = Image.BILINEAR) -> Image.Image:
    """A benchmark image (224 px) resized to a model's input ``size``; small images and images
    already of that size are returned unchanged."""
    if is_small(image) or image.size == (size, size):
        return image
    return image.resize((size, size), resample)


def geometry_note(native: bool, kind: str = "imagenet-c") -> str:
    """How the images were brought to size, for records (native ImageNet-P frames keep their size)."""
    if not native:
        return GEOMETRY_FULL
    return GEOMETRY_SMALL if kind == "imagenet-c" else GEOMETRY_KEPT


def read_rgb(path: str | Path) -> Image.Image:
    """Open an image fully decoded as RGB (raises OSError / ValueError on broken files)."""
    with Image.open(path) as image:
        image.load()
        return image.convert("RGB")


Job = TypeVar("Job")


def render_from_source(src: str, todo: Sequence[Job], render: Callable[[np.ndarray, Job], None],
                       describe: Callable[[Job], str],
                       geometry: Callable[[Image.Image], Image.Image] = benchmark_geometry) -> tuple[bool, list[str]]:
    """Read ``src`` in ``geometry`` (default the 224 crop) and call ``render(image, job)`` for every job.

    Returns (source readable, problem lines): an unreadable source or a failing job is
    reported, never raised, so one bad file does not stop a generation run."""
    try:
        image = np.asarray(geometry(read_rgb(src)))
    except Exception as exc:
        return False, [f"{src}: {type(exc).__name__}: {exc}"]
    problems = []
    for job in todo:
        try:
            render(image, job)
        except Exception as exc:
            problems.append(f"{src} [{describe(job)}]: {type(exc).__name__}: {exc}")
    return True, problems
