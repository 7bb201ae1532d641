"""``bcnn``: bilinear pooling (Lin, RoyChowdhury, Maji, "Bilinear CNN Models for Fine-grained
Visual Recognition", ICCV 2015), as fast-MPN-COV's ``BCNN`` (jiangtaoxie/fast-MPN-COV
``src/representation/BCNN.py``): X X^T / M (not centred), the full C x C matrix as a C^2
vector, element-wise sign(v) sqrt(|v| + 1e-8), then L2 normalisation (``F.normalize``, eps 1e-12).
"""
from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from gcpbench.pooling.common import as_features, autocast_off, second_moment

THRESH = 1e-8


def signed_sqrt_l2(v: Tensor) -> Tensor:
    """sign(v) sqrt(|v| + 1e-8), then L2-normalised per row (B-CNN's and CBP's post-processing)."""
    return F.normalize(torch.mul(v.sign(), torch.sqrt(v.abs() + THRESH)), dim=1)


def bilinear_pool(x: Tensor) -> Tensor:
    """B-CNN of ``x`` (B, C, H, W) -> (B, C*C)."""
    feats = as_features(x, "bcnn")
    with autocast_off(x.device):
        return signed_sqrt_l2(second_moment(feats).reshape(feats.shape[0], -1))


class BilinearPool(nn.Module):
    """B-CNN pooling (uncentred second moment, signed sqrt, L2; C*C values)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = dim
        self.output_dim = dim * dim

    def forward(self, x: Tensor) -> Tensor:
        return bilinear_pool(x)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, out={self.output_dim}"
