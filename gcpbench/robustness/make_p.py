"""``gcpbench data make-p``: ImageNet-P sequences made with the benchmark's own recipe.

``OUT/<perturbation>[_2|_3]/<wnid>/<stem>.mp4``, H.264 at 1 fps (:mod:`gcpbench.robustness.video`).
Constants, frame counts and image operations follow ``make_imagenet_p.py`` of
hendrycks/robustness: torchvision's ``Resize(256)``, then either the 224 centre crop is
perturbed (noise, blur, snow, brightness, spatter) or the 256 image is moved (translate,
rotate, tilt, scale, shear, and zoom_blur's zooms) and cropped afterwards. The noise
sequences start with the clean crop followed by 30 noisy frames, their harder difficulties
``_2`` / ``_3`` have stronger noise; the other perturbations have one folder and their
difficulty is the frame step chosen at evaluation. The differences that remain
(ImageMagick's motion blur in NumPy, today's x264) are measured in
``docs/robustness-generators.md``. Every source image gets this geometry whatever its size;
only the built-in synthetic set may keep its own size, when asked (``native``, recorded in the
marker): its frames then get the 224 px recipe unchanged (they are not the benchmark).
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from PIL import Image

from gcpbench.errors import require_known
from gcpbench.robustness import corruptions as cr
from gcpbench.robustness.benchmarks import ALL_PERTURBATIONS, DIFFICULTIES, folder_name, is_noise, perturbation_frames
from gcpbench.robustness.generate import generate_tree, generating, write_marker
from gcpbench.robustness.images import centre_crop, render_from_source, resized
from gcpbench.runtime import stable_seed

Frames = list[np.ndarray]
FrameFn = Callable[[Image.Image, int, int, int], Frames]   # (256 image, frames, difficulty, seed) -> frames


@dataclass(frozen=True)
class Perturbation:
    """A sequence generator and its x264 settings (those of the official ffmpeg command)."""

    make: FrameFn
    x264: tuple[tuple[str, str], ...]


X264 = (("crf", "20"), ("preset", "veryslow"))
X264_NOISE = (("tune", "grain"), ("preset", "veryslow"))     # the official noise command sets no crf (x264: 23)

GAUSSIAN_SIGMA = (0.03, 0.05, 0.08)
SHOT_PHOTONS = (300, 120, 60)
SPECKLE_SIGMA = (0.05, 0.10, 0.15)


def _crop(image: Image.Image) -> np.ndarray:
    return np.asarray(centre_crop(image))


def legacy_affine(image: Image.Image, angle: float = 0.0, translate: tuple[float, float] = (0.0, 0.0),
                  scale: float = 1.0, shear: float = 0.0, resample: int = Image.BILINEAR) -> Image.Image:
    """``torchvision.transforms.functional.affine`` as in torchvision 0.2 (the one ImageNet-P was
    made with): centre at (w/2 + 0.5, h/2 + 0.5), one shear angle that also rotates the y axis
    (today's torchvision shears differently and centres at w/2); black outside."""
    cx, cy = image.size[0] * 0.5 + 0.5, image.size[1] * 0.5 + 0.5
    a, s = math.radians(angle), math.radians(shear)
    det = math.cos(a + s) * math.cos(a) + math.sin(a + s) * math.sin(a)
    # the inverse of  T(translate) C R(angle, shear) S(scale) C^-1, which PIL's AFFINE expects
    factor = 1.0 / scale / det                  # in this order: the frames then equal torchvision 0.2's bit for bit
    m = [factor * v for v in (math.cos(a + s), math.sin(a + s), 0.0, -math.sin(a), math.cos(a), 0.0)]
    tx, ty = -cx - translate[0], -cy - translate[1]
    m[2] = m[0] * tx + m[1] * ty + cx
    m[5] = m[3] * tx + m[4] * ty + cy
    return image.transform(image.size, Image.AFFINE, m, resample)


def _moved(**motion: Callable[[int], float]) -> FrameFn:
    """Frames ``i``: the 256 image under ``legacy_affine(**{k: f(i)})``, then the centre crop."""
    def make(image: Image.Image, n: int, level: int, seed: int) -> Frames:
        resample = Image.NEAREST if "translate" in motion else Image.BILINEAR   # translate: torchvision's default
        return [_crop(legacy_affine(image, resample=resample, **{k: f(i) for k, f in motion.items()}))
                for i in range(n)]
    return make


def _tilt(image: Image.Image, n: int, level: int, seed: int) -> Frames:
    import cv2

    x = np.asarray(image)
    h, w = x.shape[:2]
    f = math.hypot(w, h)
    to_3d = np.array([[1, 0, -w / 2], [0, 1, -h / 2], [0, 0, 1], [0, 0, 1]])
    push = np.array([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, f], [0, 0, 0, 1]])
    project = np.array([[f, 0, w / 2, 0], [0, f, h / 2, 0], [0, 0, 1, 0]])
    frames = []
    for i in range(n):
        t = np.deg2rad(i - 15)                                   # the same angle about both axes
        about_x = np.array([[1, 0, 0, 0], [0, np.cos(t), -np.sin(t), 0], [0, np.sin(t), np.cos(t), 0], [0, 0, 0, 1]])
        about_y = np.array([[np.cos(t), 0, -np.sin(t), 0], [0, 1, 0, 0], [np.sin(t), 0, np.cos(t), 0], [0, 0, 0, 1]])
        matrix = project @ push @ about_x @ about_y @ to_3d
        frames.append(_crop(Image.fromarray(cv2.warpPerspective(x, matrix, (w, h)))))
    return frames


def _noisy(draw: Callable[[np.ndarray, np.random.RandomState, int], np.ndarray]) -> FrameFn:
    """The clean crop, then ``n - 1`` frames of independent noise (float [0, 1] -> truncated uint8)."""
    def make(image: Image.Image, n: int, level: int, seed: int) -> Frames:
        crop = _crop(image)
        x, rng = crop / 255.0, np.random.RandomState(seed)
        return [crop] + [np.uint8(255 * np.clip(draw(x, rng, level), 0, 1)) for _ in range(n - 1)]
    return make


def _gaussian_noise(image: Image.Image, n: int, level: int, seed: int) -> Frames:
    """The official draws this noise with torch (``randn_like``) on the ``ToTensor`` image."""
    import torch
    from torchvision.transforms import functional as tf

    crop = centre_crop(image)
    x, generator = tf.to_tensor(crop), torch.Generator().manual_seed(seed)
    noisy = (tf.to_pil_image(torch.clamp(x + GAUSSIAN_SIGMA[level - 1] * torch.randn(x.shape, generator=generator),
                                         0, 1)) for _ in range(n - 1))
    return [np.asarray(crop)] + [np.asarray(z) for z in noisy]


def _zoom_blur(image: Image.Image, n: int, level: int, seed: int) -> Frames:
    from torchvision.transforms import functional as tf

    crop = centre_crop(image)
    total, frames = tf.to_tensor(crop), [np.asarray(crop)]
    for i in range(1, n):
        total += tf.to_tensor(centre_crop(legacy_affine(image, scale=1 + 0.004 * i)))
        frames.append(np.asarray(tf.to_pil_image(total / (i + 1))))
    return frames


def _motion_blur(image: Image.Image, n: int, level: int, seed: int) -> Frames:
    crop = _crop(image)
    return [cr.motion_blur_image(crop, 10, 3, (i - 30) * 4) for i in range(n)]


def _snow(image: Image.Image, n: int, level: int, seed: int) -> Frames:
    crop = _crop(image)
    x = crop / 255.0
    flakes = np.random.RandomState(seed).normal(size=x.shape[:2], loc=0.05, scale=0.3)
    flakes = cr.clipped_zoom(flakes[..., np.newaxis], 3)
    flakes[flakes < 0.5] = 0
    flakes = (np.clip(flakes.squeeze(-1), 0, 1) * 255).astype(np.uint8)
    return [np.uint8(cr.snow_over(x, cr.motion_blur_image(flakes, 14, 4, i * 4 - 150), 0.85) * 255)
            for i in range(n)]


def _brightness(image: Image.Image, n: int, level: int, seed: int) -> Frames:
    crop = _crop(image)
    return [np.uint8(cr.hsv_channel(crop, 2, lambda v, c=(i - 15) * 2 / 100.0: v + c)) for i in range(n)]


def _gaussian_blur(image: Image.Image, n: int, level: int, seed: int) -> Frames:
    from skimage.filters import gaussian

    x = _crop(image) / 255.0
    return [np.uint8(255 * gaussian(x, sigma=0.25 + 0.035 * i, channel_axis=-1, truncate=6.0)) for i in range(n)]


def _spatter(image: Image.Image, n: int, level: int, seed: int) -> Frames:
    from skimage.filters import gaussian

    x = _crop(image).astype(np.float32) / 255.0
    liquid = gaussian(np.random.RandomState(seed).normal(size=x.shape[:2], loc=0.65, scale=0.27), sigma=3.7)
    liquid[liquid < 0.69] = 0
    frames = []
    for _ in range(n):
        frames.append(np.uint8(cr.water_drops(x, liquid, 0.6) * 255))
        # the drops run down: every column is smeared by a short causal kernel
        liquid = np.apply_along_axis(lambda col: np.convolve(col, [0.05, 0.1, 0.15, 0.7], mode="same"), 0, liquid)
    return frames


PERTURBATIONS: dict[str, Perturbation] = {
    "gaussian_noise": Perturbation(_gaussian_noise, X264_NOISE),
    "shot_noise": Perturbation(_noisy(lambda x, rng, d: rng.poisson(x * SHOT_PHOTONS[d - 1]) / SHOT_PHOTONS[d - 1]),
                               X264_NOISE),
    "motion_blur": Perturbation(_motion_blur, X264),
    "zoom_blur": Perturbation(_zoom_blur, X264),
    "snow": Perturbation(_snow, X264),
    "brightness": Perturbation(_brightness, X264),
    "translate": Perturbation(_moved(translate=lambda i: (i - 20, 0)), X264),
    "rotate": Perturbation(_moved(angle=lambda i: i - 15), X264),
    "tilt": Perturbation(_tilt, X264),
    "scale": Perturbation(_moved(scale=lambda i: (i * 2.5 + 40) / 100), X264),
    "speckle_noise": Perturbation(
        _noisy(lambda x, rng, d: x + x * rng.normal(size=x.shape, scale=SPECKLE_SIGMA[d - 1])), X264_NOISE),
    "gaussian_blur": Perturbation(_gaussian_blur, X264),
    "spatter": Perturbation(_spatter, X264),
    "shear": Perturbation(_moved(shear=lambda i: i - 15), X264),
}
SUPPORTED: tuple[str, ...] = tuple(p for p in ALL_PERTURBATIONS if p in PERTURBATIONS)


def sequence(image: Image.Image, perturbation: str, seed: int, difficulty: int = 1) -> Frames:
    """The uint8 RGB frames of one sequence of a ``Resize(256)`` image (the official frame count)."""
    return PERTURBATIONS[perturbation].make(image, perturbation_frames(perturbation), difficulty, seed)


def _jobs(perturbations: Sequence[str], difficulties: Sequence[int]) -> tuple[tuple[str, str, int], ...]:
    jobs = {}
    for p in perturbations:
        for d in difficulties:
            level = d if is_noise(p) else 1
            jobs[folder_name(p, level)] = (folder_name(p, level), p, level)
    return tuple(jobs.values())


def _perturb_source(task: tuple[str, str, str, tuple[tuple[str, str, int], ...], int, bool]) -> tuple[int, list[str]]:
    """Every sequence of one source image (runs in a worker)."""
    from gcpbench.robustness.video import write_mp4

    src, out, wnid, jobs, seed, native = task
    stem = Path(src).stem
    todo = [(f, p, d) for f, p, d in jobs if not (Path(out) / f / wnid / f"{stem}.mp4").is_file()]
    if not todo:
        return len(jobs), []

    def render(image: np.ndarray, job: tuple[str, str, int]) -> None:
        folder, p, d = job
        frames = sequence(Image.fromarray(image), p, stable_seed(seed, folder, wnid, stem), d)
        write_mp4(Path(out) / folder / wnid / f"{stem}.mp4", frames, dict(PERTURBATIONS[p].x264))

    readable, problems = render_from_source(src, todo, render, lambda job: job[0],
                                            geometry=functools.partial(resized, native=native))
    return (len(jobs) if readable else 0), problems


def make_p(src: Path | None, out: Path, perturbations: Sequence[str] = SUPPORTED,
           difficulties: Sequence[int] = (1,), per_class: int | None = None, workers: int | None = None,
           seed: int = 0, quiet: bool = False, native: bool = False) -> dict:
    """Build the tree; returns the marker record (problems listed under ``problems``). ``native``:
    frames at the source's own size, for the built-in synthetic set (``src`` None), recorded in the marker."""
    from gcpbench.robustness.video import CODEC, FPS

    require_known(perturbations, PERTURBATIONS,
                  lambda p: f"cannot generate perturbation '{p}'; choose from {', '.join(SUPPORTED)}")
    require_known(difficulties, DIFFICULTIES, lambda d: f"difficulty {d} does not exist; difficulties are 1, 2 and 3")
    perturbations = [p for p in SUPPORTED if p in perturbations]
    out = Path(out)
    jobs = _jobs(perturbations, difficulties)
    with generating(out):
        tree = generate_tree(_perturb_source, jobs, src, out, per_class, seed, workers, "ImageNet-P sequences", quiet,
                             native)
        folders = sorted({f for f, _, _ in jobs} | tree.previously("folders"))
        record = tree.record(
            "imagenet-p", per_class, seed, sequences_per_folder=len(tree.sources), folders=folders,
            perturbations=[p for p in SUPPORTED if any(f == p or f.startswith(p + "_") for f in folders)],
            codec=CODEC, fps=FPS, x264={p: dict(PERTURBATIONS[p].x264) for p in perturbations},
            generator="gcpbench.robustness.make_p: the make_imagenet_p.py recipe (motion_blur and snow: "
                      "NumPy motion blur instead of ImageMagick)")
        write_marker(out, record)
    return record
