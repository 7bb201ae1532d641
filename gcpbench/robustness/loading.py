"""Turning files into normalised tensors (module-level functions: picklable for workers)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from gcpbench.robustness.images import read_rgb


def normalize_frames(frames: np.ndarray) -> Tensor:
    """uint8 RGB [n, H, W, 3] -> float [n, 3, H, W], ImageNet mean/std normalised."""
    from gcpbench.data.transforms import IMAGENET_MEAN, IMAGENET_STD

    x = torch.from_numpy(np.array(frames, dtype=np.uint8)).permute(0, 3, 1, 2).float().div_(255.0)
    mean = torch.tensor(IMAGENET_MEAN, dtype=torch.float32).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=torch.float32).view(1, 3, 1, 1)
    return (x - mean) / std


def load_image(path: str | Path) -> Tensor:
    """A benchmark image as it is (ImageNet-C images are already 224 px): [1, 3, H, W]."""
    return normalize_frames(np.asarray(read_rgb(path))[None])


def load_video(path: str | Path) -> Tensor:
    """All frames of an ImageNet-P sequence: [frames, 3, H, W]."""
    from gcpbench.robustness.video import read_mp4

    return normalize_frames(read_mp4(path))
