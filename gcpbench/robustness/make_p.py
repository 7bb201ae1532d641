"""``gcpbench data make-p``: ImageNet-P-style perturbation sequences as mp4.

``OUT/<perturbation>[_2|_3]/<wnid>/<stem>.mp4``; 31 frames (translate 41), made from the clean
image after the benchmark geometry (256 / 224; images smaller than 224 px keep their size).
Pixel distances are given for 224 px images and scaled with the image size.

All sequences are APPROXIMATIONS of the originals: they follow the kind of change of each
ImageNet-P perturbation, with parameters chosen here (the original generator's constants, and
ImageMagick-based effects, are not reproduced). ``spatter`` is not generated. The noise
perturbations draw independent noise for every frame (as ImageNet-P does), their harder
difficulties ``_2`` / ``_3`` use stronger noise; the other perturbations have one folder and
their difficulty is the frame step chosen at evaluation.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from gcpbench.errors import require_known
from gcpbench.robustness.baselines import ALL_PERTURBATIONS, DIFFICULTIES, folder_name, is_noise, perturbation_frames
from gcpbench.robustness.generate import generate_tree, stable_seed, write_marker
from gcpbench.robustness.images import render_from_source

Frames = list[np.ndarray]
FrameFn = Callable[[np.ndarray, int, np.random.Generator, int], Frames]


@dataclass(frozen=True)
class Perturbation:
    """A sequence generator (float RGB in [0, 1] -> frames) and how it approximates the original."""

    make: FrameFn
    note: str


def _px(image: np.ndarray, pixels_at_224: float) -> float:
    return pixels_at_224 * min(image.shape[:2]) / 224.0


def _affine(image: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    import cv2

    h, w = image.shape[:2]
    return cv2.warpAffine(image, np.asarray(matrix, dtype=np.float64), (w, h), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REFLECT_101)


def _about_centre(image: np.ndarray, angle: float = 0.0, scale: float = 1.0) -> np.ndarray:
    import cv2

    h, w = image.shape[:2]
    return _affine(image, cv2.getRotationMatrix2D(((w - 1) / 2, (h - 1) / 2), angle, scale))


def _noise(sample: Callable[[np.ndarray, np.random.Generator, int], np.ndarray]) -> FrameFn:
    return lambda image, n, rng, level: [sample(image, rng, level) for _ in range(n)]


def _gaussian(image, rng, level):
    return image + rng.normal(0.0, (0.03, 0.05, 0.08)[level - 1], image.shape)


def _shot(image, rng, level):
    lam = (250.0, 120.0, 60.0)[level - 1]
    return rng.poisson(image * lam) / lam


def _speckle(image, rng, level):
    return image + image * rng.normal(0.0, (0.06, 0.10, 0.15)[level - 1], image.shape)


def _translate(image, n, rng, level):
    angle = rng.uniform(0, 2 * np.pi)
    steps = (np.arange(n) - (n - 1) / 2) * _px(image, 1.0)           # one pixel (at 224) per frame
    return [_affine(image, [[1, 0, t * np.cos(angle)], [0, 1, t * np.sin(angle)]]) for t in steps]


def _rotate(image, n, rng, level):
    return [_about_centre(image, angle=a) for a in np.linspace(-15, 15, n)]


def _scale(image, n, rng, level):
    return [_about_centre(image, scale=s) for s in np.linspace(1.0, 1.5, n)]


def _tilt(image, n, rng, level):
    import cv2

    h, w = image.shape[:2]
    src = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    frames = []
    for t in np.linspace(-0.15, 0.15, n) * w:
        top, bottom = max(t, 0.0), max(-t, 0.0)
        dst = np.float32([[top, 0], [w - top, 0], [w - bottom, h], [bottom, h]])
        frames.append(cv2.warpPerspective(image, cv2.getPerspectiveTransform(src, dst), (w, h),
                                          flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101))
    return frames


def _shear(image, n, rng, level):
    h = image.shape[0]
    return [_affine(image, [[1, k, -k * (h - 1) / 2], [0, 1, 0]]) for k in np.linspace(-0.25, 0.25, n)]


def _brightness(image, n, rng, level):
    import cv2

    hsv = cv2.cvtColor(image.astype(np.float32), cv2.COLOR_RGB2HSV)
    frames = []
    for c in np.linspace(-0.15, 0.15, n):
        shifted = hsv.copy()
        shifted[..., 2] = np.clip(shifted[..., 2] + c, 0, 1)
        frames.append(cv2.cvtColor(shifted, cv2.COLOR_HSV2RGB))
    return frames


def _line_kernel(length: float, angle: float) -> np.ndarray:
    import cv2

    size = max(1, int(np.ceil(length)) | 1)
    kernel = np.zeros((size, size), np.float32)
    kernel[size // 2, :] = 1.0
    kernel = cv2.warpAffine(kernel, cv2.getRotationMatrix2D(((size - 1) / 2, (size - 1) / 2), angle, 1.0),
                            (size, size))
    return kernel / max(kernel.sum(), 1e-6)


def _motion_blur(image, n, rng, level):
    import cv2

    angle = rng.uniform(-45, 45)
    return [image if length < 1.5 else cv2.filter2D(image, -1, _line_kernel(length, angle),
                                                     borderType=cv2.BORDER_REFLECT_101)
            for length in np.linspace(1.0, _px(image, 15.0), n)]


def _zoom_blur(image, n, rng, level):
    frames = []
    for top in np.linspace(1.0, 1.3, n):
        zooms = np.linspace(1.0, top, 6)[1:] if top > 1.0 else []
        frames.append((image + sum(_about_centre(image, scale=z) for z in zooms)) / (1 + len(zooms)))
    return frames


def _gaussian_blur(image, n, rng, level):
    import cv2

    return [image if s < 0.05 else cv2.GaussianBlur(image, (0, 0), s, borderType=cv2.BORDER_REFLECT_101)
            for s in np.linspace(0.0, _px(image, 3.0), n)]


def _snow(image, n, rng, level):
    import cv2

    h, w = image.shape[:2]
    speed = _px(image, 2.0)
    rows = h + int(np.ceil(speed * n)) + 1
    flakes = (rng.random((rows, w)) < 0.012).astype(np.float32)
    flakes = cv2.GaussianBlur(flakes, (0, 0), max(0.6, _px(image, 1.0)))
    flakes = np.clip(flakes / max(flakes.max(), 1e-6) * 1.5, 0, 1)
    base = image * 0.8 + 0.1
    frames = []
    for t in range(n):
        start = rows - h - int(round(t * speed))                       # the flakes fall downwards
        layer = flakes[start:start + h, :, None]
        frames.append(base + (1.0 - base) * layer)
    return frames


NOISE_NOTE = "independent noise per frame as in ImageNet-P; noise strengths chosen here"
PERTURBATIONS: dict[str, Perturbation] = {
    "gaussian_noise": Perturbation(_noise(_gaussian), NOISE_NOTE),
    "shot_noise": Perturbation(_noise(_shot), NOISE_NOTE),
    "motion_blur": Perturbation(_motion_blur, "approximation: line kernel growing to 15 px at a random angle "
                                              "(the original used ImageMagick)"),
    "zoom_blur": Perturbation(_zoom_blur, "approximation: zoom blur growing to 1.3x"),
    "snow": Perturbation(_snow, "approximation: a falling field of blurred flakes over a dimmed image "
                                "(the original used ImageMagick)"),
    "brightness": Perturbation(_brightness, "approximation: HSV value shifted from -0.15 to +0.15"),
    "translate": Perturbation(_translate, "approximation: 1 px per frame in a random direction, reflected border"),
    "rotate": Perturbation(_rotate, "approximation: -15 to +15 degrees, reflected border"),
    "tilt": Perturbation(_tilt, "approximation: perspective tilt of up to 15% of the width"),
    "scale": Perturbation(_scale, "approximation: zoom in from 1.0x to 1.5x"),
    "speckle_noise": Perturbation(_noise(_speckle), NOISE_NOTE),
    "gaussian_blur": Perturbation(_gaussian_blur, "approximation: blur sigma from 0 to 3 px"),
    "shear": Perturbation(_shear, "approximation: horizontal shear from -0.25 to +0.25"),
}
SUPPORTED: tuple[str, ...] = tuple(p for p in ALL_PERTURBATIONS if p in PERTURBATIONS)


def sequence(image: np.ndarray, perturbation: str, rng: np.random.Generator, difficulty: int = 1) -> Frames:
    """The uint8 frames of one perturbation sequence of an RGB uint8 image."""
    frames = PERTURBATIONS[perturbation].make(image.astype(np.float32) / 255.0, perturbation_frames(perturbation),
                                              rng, difficulty)
    return [np.clip(np.rint(f * 255.0), 0, 255).astype(np.uint8) for f in frames]


def _jobs(perturbations: Sequence[str], difficulties: Sequence[int]) -> tuple[tuple[str, str, int], ...]:
    jobs = {}
    for p in perturbations:
        for d in difficulties:
            level = d if is_noise(p) else 1
            jobs[folder_name(p, level)] = (folder_name(p, level), p, level)
    return tuple(jobs.values())


def _perturb_source(task: tuple[str, str, str, tuple[tuple[str, str, int], ...], int]) -> tuple[int, list[str]]:
    """Every sequence of one source image (runs in a worker)."""
    from gcpbench.robustness.video import write_mp4

    src, out, wnid, jobs, seed = task
    stem = Path(src).stem
    todo = [(f, p, d) for f, p, d in jobs if not (Path(out) / f / wnid / f"{stem}.mp4").is_file()]
    if not todo:
        return len(jobs), []

    def render(image: np.ndarray, job: tuple[str, str, int]) -> None:
        folder, p, d = job
        rng = np.random.default_rng(stable_seed(seed, folder, wnid, stem))
        write_mp4(Path(out) / folder / wnid / f"{stem}.mp4", sequence(image, p, rng, d))

    readable, problems = render_from_source(src, todo, render, lambda job: job[0])
    return (len(jobs) if readable else 0), problems


def make_p(src: Path | None, out: Path, perturbations: Sequence[str] = SUPPORTED,
           difficulties: Sequence[int] = (1,), per_class: int | None = None, workers: int | None = None,
           seed: int = 0, quiet: bool = False) -> dict:
    """Build the tree; returns the marker record (problems listed under ``problems``)."""
    require_known(perturbations, PERTURBATIONS,
                  lambda p: f"cannot generate perturbation '{p}'; choose from {', '.join(SUPPORTED)}")
    require_known(difficulties, DIFFICULTIES, lambda d: f"difficulty {d} does not exist; difficulties are 1, 2 and 3")
    perturbations = [p for p in SUPPORTED if p in perturbations]
    out = Path(out)
    jobs = _jobs(perturbations, difficulties)
    tree = generate_tree(_perturb_source, jobs, src, out, per_class, seed, workers, "ImageNet-P sequences", quiet)
    folders = sorted({f for f, _, _ in jobs} | tree.previously("folders"))
    record = tree.record(
        "imagenet-p", per_class, seed, sequences_per_folder=len(tree.sources), folders=folders,
        perturbations=[p for p in SUPPORTED if any(f == p or f.startswith(p + "_") for f in folders)],
        codec="mp4v", approximations={p: PERTURBATIONS[p].note for p in perturbations})
    write_marker(out, record)
    return record
