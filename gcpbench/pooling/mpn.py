"""``mpn``: MPN-COV, matrix power normalisation by eigendecomposition (Li, Xie, Wang, Zuo,
"Is Second-order Information Helpful for Large-scale Visual Recognition?", ICCV 2017).

The authors' layer (jiangtaoxie/MPN-COV, ``matlab/src/bits/impl/mpn_cov_cpu.cpp``,
``MPN_COV_Pool_C.m``): Sigma = U diag(lambda) U^T by ``eig``, output
U diag((lambda + eps)^alpha) U^T with alpha = 0.5 and eps = 1e-12, its upper triangle;
backward with K_ij = 1/(lambda_i - lambda_j) (infinite entries set to 0).

Here: the same power, computed on the trace-normalised A = Sigma / tr(Sigma) and rescaled,
tr^alpha (A + eps I)^alpha = (Sigma + eps tr(Sigma) I)^alpha, so that eps is relative (the
output is scale-equivariant, the same at feature scales 1e-6 and 1e6, and a dead feature map
gives 0, not NaN). Eigenvalues below 0 (rounding of a singular Sigma, M < C) are clamped to 0
before eps is added. The backward is the Loewner-matrix form (:mod:`gcpbench.pooling.spectral`):
equal to the authors' for distinct eigenvalues and finite for repeated or near-equal ones
(f' at the midpoint where |l_i - l_j| <= eps_machine^(1/3) max|l|); the gradient through
tr(Sigma) is autograd's.
"""
from __future__ import annotations

from torch import Tensor, nn

from gcpbench.errors import GcpbenchError
from gcpbench.gcp import triu_size
from gcpbench.pooling.common import as_features, autocast_off, covariance, trace, triu_vector
from gcpbench.pooling.spectral import spectral_function


def matrix_power(a: Tensor, power: float, eps: float) -> Tensor:
    """(A + eps I)^power for symmetric PSD ``a`` (negative rounding eigenvalues clamped to 0)."""
    return spectral_function(a, lambda lam: (lam.clamp_min(0) + eps).pow(power),
                             lambda lam: power * (lam.clamp_min(0) + eps).pow(power - 1))


def mpn_cov(x: Tensor, power: float = 0.5, eps: float = 1e-12) -> Tensor:
    """MPN-COV of ``x`` (B, C, H, W) -> (B, C(C+1)/2): triu((Sigma + eps tr(Sigma) I)^power)."""
    if not 0 < power <= 1:
        raise GcpbenchError(f"the MPN power must be in (0, 1], got {power}")
    if eps <= 0:
        raise GcpbenchError(f"the MPN eps must be positive, got {eps}")
    feats = as_features(x, "mpn")
    with autocast_off(x.device):
        sigma = covariance(feats)
        tr = trace(sigma).view(-1, 1, 1)
        return triu_vector(matrix_power(sigma / tr, power, eps) * tr.pow(power))


class MPNCov(nn.Module):
    """MPN-COV pooling: power ``power`` (0.5: the square root) by eigendecomposition."""

    def __init__(self, dim: int, power: float = 0.5, eps: float = 1e-12) -> None:
        super().__init__()
        self.dim, self.power, self.eps = dim, power, eps
        self.output_dim = triu_size(dim)

    def forward(self, x: Tensor) -> Tensor:
        return mpn_cov(x, self.power, self.eps)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, power={self.power}, eps={self.eps}, out={self.output_dim}"
