"""Turning files into normalised tensors (module-level functions: picklable for workers)."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from gcpbench.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from gcpbench.robustness.images import fit_input, read_rgb

if TYPE_CHECKING:
    from gcpbench.models.preprocess import Preprocessing

RESAMPLE = {"nearest": Image.NEAREST, "bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC,
            "lanczos": Image.LANCZOS, "box": Image.BOX, "hamming": Image.HAMMING}


def _stats(prep: Preprocessing | None) -> tuple[tuple[float, ...], tuple[float, ...]]:
    return (IMAGENET_MEAN, IMAGENET_STD) if prep is None else (prep.mean, prep.std)


def _resample(prep: Preprocessing) -> int:
    return RESAMPLE.get(prep.interpolation, Image.BILINEAR)


def normalize_frames(frames: np.ndarray, prep: Preprocessing | None = None) -> Tensor:
    """uint8 RGB [n, H, W, 3] -> float [n, 3, H, W], normalised by the mean / std of ``prep``
    (a model's preprocessing; None: ImageNet's)."""
    mean, std = _stats(prep)
    x = torch.from_numpy(np.array(frames, dtype=np.uint8)).permute(0, 3, 1, 2).float().div_(255.0)
    mean_t = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
    std_t = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
    return (x - mean_t) / std_t


def _fit(image: Image.Image, prep: Preprocessing | None) -> Image.Image:
    return image if prep is None else fit_input(image, prep.input_size, _resample(prep))


def load_image(path: str | Path, prep: Preprocessing | None = None) -> Tensor:
    """A benchmark image as stored (ImageNet-C images are already 224 px), resized only for a
    model with another input size: [1, 3, H, W]."""
    return normalize_frames(np.asarray(_fit(read_rgb(path), prep))[None], prep)


def load_video(path: str | Path, prep: Preprocessing | None = None) -> Tensor:
    """All frames of an ImageNet-P sequence (resized like :func:`load_image`): [frames, 3, H, W]."""
    from gcpbench.robustness.video import read_mp4

    return normalize_frames(fit_frames(read_mp4(path), prep), prep)


def fit_frames(frames: np.ndarray, prep: Preprocessing | None = None) -> np.ndarray:
    """uint8 frames [n, H, W, 3] resized like :func:`load_image` when ``prep``'s input size differs."""
    if prep is not None and frames.shape[1:3] != (prep.input_size, prep.input_size):
        frames = np.stack([np.asarray(_fit(Image.fromarray(f), prep)) for f in frames])
    return frames
