"""Turning files into normalised tensors (module-level functions: picklable for workers)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from gcpbench.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from gcpbench.robustness.images import benchmark_geometry, read_rgb


Stats = tuple[float, ...]


def normalize_frames(frames: np.ndarray, mean: Stats = IMAGENET_MEAN, std: Stats = IMAGENET_STD) -> Tensor:
    """uint8 RGB [n, H, W, 3] -> float [n, 3, H, W], normalised by ``mean``/``std`` (ImageNet's
    by default; a timm / torchvision model's own through its preprocessing)."""
    x = torch.from_numpy(np.array(frames, dtype=np.uint8)).permute(0, 3, 1, 2).float().div_(255.0)
    mean_t = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
    std_t = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
    return (x - mean_t) / std_t


def load_image(path: str | Path, mean: Stats = IMAGENET_MEAN, std: Stats = IMAGENET_STD) -> Tensor:
    """A benchmark image as it is (ImageNet-C images are already 224 px): [1, 3, H, W]."""
    return normalize_frames(np.asarray(read_rgb(path))[None], mean, std)


def load_clean_image(path: str | Path, mean: Stats = IMAGENET_MEAN, std: Stats = IMAGENET_STD) -> Tensor:
    """A clean validation image brought to the benchmark geometry (256 / 224; small kept)."""
    return normalize_frames(np.asarray(benchmark_geometry(read_rgb(path)))[None], mean, std)


def load_video(path: str | Path, mean: Stats = IMAGENET_MEAN, std: Stats = IMAGENET_STD) -> Tensor:
    """All frames of an ImageNet-P sequence: [frames, 3, H, W]."""
    from gcpbench.robustness.video import read_mp4

    return normalize_frames(read_mp4(path), mean, std)
