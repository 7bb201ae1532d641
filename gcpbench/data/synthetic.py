"""The built-in synthetic classification set: a small, learnable ImageNet-style ImageFolder tree.

Design (deterministic in ``seed``)::

    OUT/train/n00000000/n00000000_00000.png ...   OUT/val/...   OUT/gcpbench_synthetic.json

Classes come in pairs ``(2j, 2j+1)``. Each image is a background of random grey-ish colour
with weak, channel-independent white noise, and one foreground shape (pair ``j``'s shape, at a random
position, size and angle) filled with a coloured Gaussian texture:
``pixel = mean_j + 0.15 * L z`` where ``z`` holds three independent low-pass noise fields (pair
``j``'s grain) and ``L L^T = R`` a fixed channel correlation matrix. The second class of a pair
mirrors the red deviation (``R`` becomes ``D R D``, ``D = diag(-1, 1, 1)``): every channel has
exactly the same distribution as in its partner (equal channel means, equal variances), but
the red-green and red-blue correlations change sign. Pairs differ by shape, mean colour and
grain; partners differ only by channel correlation, the second-order statistic that global
covariance pooling reads directly. Images are lossless PNG so the statistics survive on disk.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from gcpbench.data.synthetic_defaults import DEFAULTS
from gcpbench.errors import GcpbenchError
from gcpbench.io import atomic_write_json, follow_umask
from gcpbench.progress import progress_bar

log = logging.getLogger(__name__)

STAMP = "gcpbench_synthetic.json"  # same stamp name as the synthetic COCO set
VERSION = 1
SHAPES: tuple[str, ...] = ("disk", "square", "ring", "cross", "triangle", "diamond", "bar", "plus_ring")
CORRELATION = np.array([[1.0, 0.8, 0.6], [0.8, 1.0, 0.8], [0.6, 0.8, 1.0]])
TEXTURE_STD = 0.15
GRAIN = (0.015, 0.03, 0.05)  # low-pass sigma of the texture, as a fraction of the image size
SPLITS = ("train", "val")
_CHUNK = 64  # images rendered at once (bounds memory for large sizes)


@dataclass(frozen=True)
class ClassSpec:
    """The generative recipe of one synthetic class."""

    index: int
    wnid: str
    shape: str
    mean: tuple[float, float, float]  # per-channel mean of the foreground texture (0..1)
    correlation: tuple[tuple[float, ...], ...]  # channel correlation of the foreground texture
    grain: float  # texture low-pass sigma, fraction of the image size

    @property
    def partner(self) -> int:
        """The class with equal channel means and a different channel correlation."""
        return self.index ^ 1


def fake_wnid(index: int) -> str:
    """ImageNet-style folder name of synthetic class ``index`` (n00000000, n00000001, ...)."""
    return f"n{index:08d}"


def class_specs(num_classes: int, seed: int = 0) -> list[ClassSpec]:
    """The recipes of ``num_classes`` classes (pairs share shape, mean and grain)."""
    if not 2 <= num_classes <= 10_000:
        raise GcpbenchError(f"--classes must be between 2 and 10000, got {num_classes}")
    mirror = np.diag([-1.0, 1.0, 1.0])
    specs = []
    for index in range(num_classes):
        pair = index // 2
        mean = tuple(float(m) for m in np.random.default_rng([seed, 7919, pair]).uniform(0.3, 0.7, 3))
        corr = CORRELATION if index % 2 == 0 else mirror @ CORRELATION @ mirror
        specs.append(ClassSpec(index, fake_wnid(index), SHAPES[pair % len(SHAPES)], mean,
                               tuple(tuple(float(v) for v in row) for row in corr), GRAIN[pair % len(GRAIN)]))
    return specs


def _shape_masks(shape: str, n: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """(n, size, size) boolean masks of ``shape`` at random centre, scale and angle."""
    grid = ((np.arange(size) + 0.5) / size * 2 - 1).astype(np.float32)
    x, y = grid[None, None, :], grid[None, :, None]
    cx, cy = rng.uniform(-0.25, 0.25, (2, n, 1, 1)).astype(np.float32)
    scale = rng.uniform(0.45, 0.7, (n, 1, 1)).astype(np.float32)
    theta = rng.uniform(0, 2 * np.pi, (n, 1, 1)).astype(np.float32)
    dx, dy = x - cx, y - cy
    u = (dx * np.cos(theta) + dy * np.sin(theta)) / scale
    v = (-dx * np.sin(theta) + dy * np.cos(theta)) / scale
    r = np.hypot(u, v)
    if shape == "disk":
        return r <= 1
    if shape == "square":
        return np.maximum(abs(u), abs(v)) <= 0.8
    if shape == "ring":
        return (r <= 1) & (r >= 0.55)
    if shape == "cross":
        return ((abs(u) <= 0.28) & (abs(v) <= 1)) | ((abs(v) <= 0.28) & (abs(u) <= 1))
    if shape == "triangle":
        return (v >= -0.6) & (v <= 1 - 1.6 * abs(u))
    if shape == "diamond":
        return abs(u) + abs(v) <= 1
    if shape == "bar":
        return (abs(u) <= 1) & (abs(v) <= 0.35)
    if shape == "plus_ring":
        return ((r <= 1) & (r >= 0.7)) | ((abs(u) <= 0.2) & (r <= 1)) | ((abs(v) <= 0.2) & (r <= 1))
    raise ValueError(f"unknown shape {shape}")


def _lowpass_fields(n: int, channels: int, size: int, sigma_px: float, rng: np.random.Generator) -> np.ndarray:
    """(n, channels, size, size) Gaussian-smoothed noise, each field standardised to mean 0, std 1."""
    noise = rng.standard_normal((n, channels, size, size), dtype=np.float32)
    freq = np.fft.fftfreq(size)
    rfreq = np.fft.rfftfreq(size)
    gain = np.exp(-2 * (np.pi * sigma_px) ** 2 * (freq[:, None] ** 2 + rfreq[None, :] ** 2))
    fields = np.fft.irfft2(np.fft.rfft2(noise) * gain, s=(size, size))
    fields -= fields.mean(axis=(-2, -1), keepdims=True)
    fields /= fields.std(axis=(-2, -1), keepdims=True) + 1e-12
    return fields


def render_class(spec: ClassSpec, n: int, image_size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``n`` images of class ``spec``: uint8 (n, H, W, 3) and the foreground masks (n, H, W)."""
    masks = _shape_masks(spec.shape, n, image_size, rng)
    chol = np.linalg.cholesky(np.asarray(spec.correlation))
    z = _lowpass_fields(n, 3, image_size, spec.grain * image_size, rng)
    texture = np.asarray(spec.mean)[None, :, None, None] + TEXTURE_STD * np.einsum("ij,njhw->nihw", chol, z)
    background = rng.uniform(0.25, 0.75, (n, 3, 1, 1)) + 0.05 * rng.standard_normal((n, 3, image_size, image_size), dtype=np.float32)
    images = np.where(masks[:, None], texture, background)
    pixels = np.round(np.clip(images, 0.0, 1.0) * 255).astype(np.uint8)
    return pixels.transpose(0, 2, 3, 1), masks


def _write_class(folder: Path, spec: ClassSpec, n: int, image_size: int, rng: np.random.Generator) -> None:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for start in range(0, n, _CHUNK):
        pixels, _ = render_class(spec, min(_CHUNK, n - start), image_size, rng)
        for offset, image in enumerate(pixels):
            Image.fromarray(image).save(folder / f"{spec.wnid}_{start + offset:05d}.png", compress_level=1)


def _params(num_classes: int, image_size: int, train_per_class: int, val_per_class: int, seed: int) -> dict[str, Any]:
    return {"task": "classification", "version": VERSION, "num_classes": num_classes, "image_size": image_size,
            "train_per_class": train_per_class, "val_per_class": val_per_class, "seed": seed}


def _generate(out: Path, params: dict[str, Any], progress: Callable[[int, int], None] | None = None) -> None:
    """Write the tree into ``out`` (an empty folder); the stamp is written last."""
    if params["image_size"] < 16:
        raise GcpbenchError(f"--size must be at least 16 pixels, got {params['image_size']}")
    if params["train_per_class"] < 1 or params["val_per_class"] < 1:
        raise GcpbenchError("--train-per-class and --val-per-class must be at least 1")
    specs = class_specs(params["num_classes"], params["seed"])
    total = len(specs) * len(SPLITS)
    for split_index, split in enumerate(SPLITS):
        n = params[f"{split}_per_class"]
        for spec in specs:
            rng = np.random.default_rng([params["seed"], split_index, spec.index])
            _write_class(out / split / spec.wnid, spec, n, params["image_size"], rng)
            if progress:
                progress(split_index * len(specs) + spec.index + 1, total)
    atomic_write_json(out / STAMP, {**params, "classes": [s.wnid for s in specs],
                                    "shapes": [s.shape for s in specs], "means": [s.mean for s in specs],
                                    "design": "pairs (2j, 2j+1) share shape, channel means and grain; "
                                              "partners differ only in channel correlation"})


def synthetic_info(root: str | os.PathLike) -> dict[str, Any] | None:
    """The stamp of a gcpbench synthetic classification tree (None when ``root`` is not one)."""
    stamp = Path(root) / STAMP
    try:
        info = json.loads(stamp.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return info if isinstance(info, dict) and info.get("task") == "classification" else None


def swap_into_place(tmp: Path, out: Path, keep_existing: Callable[[], bool]) -> None:
    """Rename the finished ``tmp`` to ``out``; an existing ``out`` is kept when ``keep_existing()``
    (another process finished the same set first), else moved aside and deleted."""
    try:
        os.rename(tmp, out)
        return
    except OSError:
        if not out.exists():
            raise
    if keep_existing():
        return
    trash = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
    os.rename(out, trash / out.name)
    os.rename(tmp, out)
    shutil.rmtree(trash, ignore_errors=True)


def _build(out: Path, params: dict[str, Any], quiet: bool, keep_existing: Callable[[], bool] = lambda: False) -> None:
    """Generate into a temporary sibling of ``out`` with a progress bar, then rename it into place."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        follow_umask(tmp, folder=True)  # the finished set is this folder: readable as mkdir makes it
        with progress_bar("synthetic image folders", params["num_classes"] * len(SPLITS), not quiet) as advance:
            _generate(tmp, params, lambda done, total: advance())
        swap_into_place(tmp, out, keep_existing)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def make_classification_set(out: str | os.PathLike, num_classes: int = DEFAULTS["num_classes"],
                            image_size: int = DEFAULTS["image_size"], train_per_class: int = DEFAULTS["train_per_class"],
                            val_per_class: int = DEFAULTS["val_per_class"], seed: int = DEFAULTS["seed"],
                            overwrite: bool = False, quiet: bool = True) -> Path:
    """Write the synthetic ImageFolder tree to ``out`` (atomically) and return ``out``.

    An existing non-empty ``out`` is replaced only with ``overwrite=True``.
    """
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not overwrite:
        raise GcpbenchError(f"'{out}' already exists and is not empty; choose another --out or pass --force")
    _build(out, _params(num_classes, image_size, train_per_class, val_per_class, seed), quiet)
    return out


def default_root() -> Path:
    """Where built-in synthetic sets live: ``$GCPBENCH_CACHE/synthetic`` (default ``~/.cache/gcpbench``)."""
    cache = os.environ.get("GCPBENCH_CACHE") or Path.home() / ".cache" / "gcpbench"
    return Path(cache) / "synthetic"


def ensure_classification_set(root: str | os.PathLike | None = None, quiet: bool = False) -> Path:
    """The default synthetic set at ``root`` (``default_root()/imagenet``), generated once.

    Generation goes to a temporary folder that is renamed into place, so a crash never leaves a
    half-written set and two processes racing both end with the same complete tree. A one-line
    notice is logged when it generates; ``quiet`` only hides the progress bar.
    """
    root = Path(root) if root is not None else default_root() / "imagenet"
    params = _params(**DEFAULTS)

    def complete() -> bool:
        info = synthetic_info(root)
        return info is not None and all(info.get(k) == v for k, v in params.items())

    if complete():
        return root
    from gcpbench.paths import require_writable

    require_writable(root, "set GCPBENCH_CACHE to a writable folder", "synthetic-data cache")
    images = params["num_classes"] * (params["train_per_class"] + params["val_per_class"])
    log.info(f"generating the built-in synthetic set into {root} (once; {images:,} small PNGs)")
    return build_once(root, lambda: _build(root, params, quiet, keep_existing=complete), complete,
                      "the synthetic set")


def synthesize_classification_set(out: str | os.PathLike | None = None, force: bool = False, quiet: bool = False,
                                  **params: int) -> tuple[Path, bool]:
    """``gcpbench data synth``: the set of ``params`` (:data:`DEFAULTS` for those not given) at
    ``out``; returns the folder and whether it is the shared cached default set.

    Without ``out`` the default parameters give the cached set, built once
    (:func:`ensure_classification_set`), unless ``force``; other parameters replace the cache's
    ``imagenet`` folder. An existing non-empty ``out`` is replaced only with ``force``.
    """
    params = {**DEFAULTS, **params}
    if out is None and params == DEFAULTS and not force:
        return ensure_classification_set(quiet=quiet), True
    target = Path(out) if out is not None else default_root() / "imagenet"
    return make_classification_set(target, **params, overwrite=force or out is None, quiet=quiet), False


def build_once(root: Path, build: Callable[[], None], complete: Callable[[], bool], what: str) -> Path:
    """Run ``build`` for a cached set at ``root``; a write error is a one-line hint to move the
    cache, unless another process finished the same set meanwhile (``complete()``)."""
    try:
        build()
    except OSError as exc:
        if complete():
            return root  # another process finished first
        raise GcpbenchError(f"cannot write {what} to '{root}': {exc.strerror or exc}; "
                            "set GCPBENCH_CACHE to a writable folder") from None
    return root
