"""``none``: the plain covariance, no normalisation: the upper triangle of Sigma = Xc Xc^T / M."""
from __future__ import annotations

from torch import Tensor, nn

from gcpbench.gcp import triu_size
from gcpbench.pooling.common import as_features, autocast_off, covariance, triu_vector


def plain_cov(x: Tensor) -> Tensor:
    """triu(Sigma) of ``x`` (B, C, H, W) -> (B, C(C+1)/2)."""
    feats = as_features(x, "none")
    with autocast_off(x.device):
        return triu_vector(covariance(feats))


class PlainCov(nn.Module):
    """Covariance pooling without normalisation."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = dim
        self.output_dim = triu_size(dim)

    def forward(self, x: Tensor) -> Tensor:
        return plain_cov(x)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, out={self.output_dim}"
