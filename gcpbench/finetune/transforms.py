"""The protocol's image transforms (:mod:`gcpbench.finetune.protocol`): training, per-epoch
validation, and the final evaluation's centre crop with its mirror (a ``(2, C, H, W)`` tensor)."""
from __future__ import annotations

import torch
from torchvision import transforms as T
from torchvision.transforms import functional as F

from gcpbench.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from gcpbench.finetune.protocol import Protocol


def _tensor() -> list:
    return [T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)]


def train_transform(protocol: Protocol) -> T.Compose:
    """Resize + CenterCrop + random horizontal flip + normalise (no random crop: the authors')."""
    return T.Compose([T.Resize(protocol.train_resize), T.CenterCrop(protocol.image_size),
                      T.RandomHorizontalFlip()] + _tensor())


def val_transform(protocol: Protocol) -> T.Compose:
    """Resize + CenterCrop + normalise: the per-epoch validation."""
    return T.Compose([T.Resize(protocol.val_resize), T.CenterCrop(protocol.image_size)] + _tensor())


class CenterCropWithMirror:
    """The centre crop of an image and the centre crop of its horizontal mirror, stacked."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.finish = T.Compose(_tensor())

    def __call__(self, image) -> torch.Tensor:
        crops = (F.center_crop(image, [self.size, self.size]), F.center_crop(F.hflip(image), [self.size, self.size]))
        return torch.stack([self.finish(crop) for crop in crops])

    def __repr__(self) -> str:
        return f"{type(self).__name__}(size={self.size})"


def eval_transform(protocol: Protocol) -> T.Compose:
    """The final evaluation: Resize(448) + (centre crop, mirrored centre crop), or the centre
    crop alone (``two_crop=False``, a ``(1, C, H, W)`` tensor)."""
    if protocol.two_crop:
        return T.Compose([T.Resize(protocol.eval_resize), CenterCropWithMirror(protocol.image_size)])
    return T.Compose([T.Resize(protocol.eval_resize), T.CenterCrop(protocol.image_size)] + _tensor()
                     + [T.Lambda(_one_view)])


def _one_view(x: torch.Tensor) -> torch.Tensor:
    """A single crop as a ``(1, C, H, W)`` stack (the evaluation's view axis)."""
    return x.unsqueeze(0)
