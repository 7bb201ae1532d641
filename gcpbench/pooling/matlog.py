"""``log``: the matrix logarithm of the regularised covariance (O2P / DeepO2P: Ionescu,
Vantzos, Sminchisescu, "Matrix Backpropagation for Deep Networks with Structured Layers",
ICCV 2015; Carreira et al.'s O2P, ECCV 2012).

U diag(log(lambda + eps)) U^T of Sigma = U diag(lambda) U^T (eigenvalues below 0, rounding of a
singular Sigma, clamped to 0), its upper triangle. ``eps`` (default 1e-3, an option) bounds
the output and the gradient (f' = 1/(lambda + eps) <= 1/eps) for singular Sigma (M < C, dead
maps: log(eps) I). Not scale-free by definition: log(c Sigma) = log(Sigma) + log(c) I for
well-conditioned Sigma. Backward: the Loewner-matrix form of DeepO2P's, finite for repeated
eigenvalues (:mod:`gcpbench.pooling.spectral`).
"""
from __future__ import annotations

from torch import Tensor, nn

from gcpbench.errors import GcpbenchError
from gcpbench.gcp import triu_size
from gcpbench.pooling.common import as_features, autocast_off, covariance, triu_vector
from gcpbench.pooling.spectral import spectral_function


def log_cov(x: Tensor, eps: float = 1e-3) -> Tensor:
    """O2P of ``x`` (B, C, H, W) -> (B, C(C+1)/2): triu(log(Sigma + eps I))."""
    if eps <= 0:
        raise GcpbenchError(f"the log eps must be positive, got {eps}")
    feats = as_features(x, "log")
    with autocast_off(x.device):
        sigma = covariance(feats)
        logm = spectral_function(sigma, lambda lam: (lam.clamp_min(0) + eps).log(),
                                 lambda lam: (lam.clamp_min(0) + eps).reciprocal())
        return triu_vector(logm)


class LogCov(nn.Module):
    """O2P pooling: the matrix logarithm of Sigma + eps I."""

    def __init__(self, dim: int, eps: float = 1e-3) -> None:
        super().__init__()
        self.dim, self.eps = dim, eps
        self.output_dim = triu_size(dim)

    def forward(self, x: Tensor) -> Tensor:
        return log_cov(x, self.eps)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, eps={self.eps}, out={self.output_dim}"
