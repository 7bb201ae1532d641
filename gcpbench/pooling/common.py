"""What every covariance-pooling method shares: float32 input outside autocast, the centred
covariance, the uncentred second moment and the row-major upper-triangle vector."""
from __future__ import annotations

import torch
from torch import Tensor

from gcpbench.errors import GcpbenchError
from gcpbench.gcp import autocast_off, triu_flat_index


def as_features(x: Tensor, name: str) -> Tensor:
    """``x`` (B, C, H, W) as float32 (float64 stays float64, for exactness tests) features
    (B, C, M); other ranks raise one line."""
    if x.dim() != 4:
        raise GcpbenchError(f"{name} pooling expects (B, C, H, W) features, got shape {tuple(x.shape)}")
    dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
    return x.to(dtype).reshape(x.shape[0], x.shape[1], -1)


def covariance(feats: Tensor) -> Tensor:
    """Sigma = Xc Xc^T / M with Xc the per-channel mean-centred ``feats`` (B, C, M)."""
    centred = feats - feats.mean(dim=2, keepdim=True)
    return torch.bmm(centred, centred.mT).div_(feats.shape[2])


def second_moment(feats: Tensor) -> Tensor:
    """X X^T / M, not centred (bilinear pooling)."""
    return torch.bmm(feats, feats.mT).div_(feats.shape[2])


def triu_vector(matrix: Tensor) -> Tensor:
    """The row-major upper triangle with diagonal of a batch of C x C matrices: (B, C(C+1)/2)."""
    batch, dim, _ = matrix.shape
    return matrix.reshape(batch, dim * dim).index_select(1, triu_flat_index(dim, matrix.device))


def trace(matrix: Tensor) -> Tensor:
    """Per-sample trace, clamped to the smallest normal number (a dead feature map gives 0, not NaN)."""
    return matrix.diagonal(dim1=1, dim2=2).sum(-1).clamp_min(torch.finfo(matrix.dtype).tiny)


__all__ = ["as_features", "autocast_off", "covariance", "second_moment", "trace", "triu_vector"]
