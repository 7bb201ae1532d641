"""``mpa``: MPA-Lya, the matrix Pade approximant square root with the Lyapunov backward
(Song, Sebe, Wang, "Fast Differentiable Matrix Square Root", ICLR 2022;
KingJamesSong/FastDifferentiableMatSqrt ``torch_utils.py``, class ``MPA_Lya``).

Forward, as the authors': A = Sigma / ||Sigma||_F, Z = I - A, the [5/5] Pade approximant of
sqrt(1 - z) (from its degree-10 Taylor series; the coefficients are computed here exactly in
rational arithmetic, where the authors use mpmath's ``pade``):
sqrt(A) ~ Q(Z)^-1 P(Z) by one batched linear solve, times sqrt(||Sigma||_F); the upper triangle.
Backward, as the authors': the gradient of the exact square root, the solution X of the
Lyapunov equation sqrt(A) X + X sqrt(A) = G, by 8 coupled Newton-Schulz steps of the matrix
sign iteration on [[B, C], [0, -B]] (B_0 = the normalised square root, C_0 = G / sqrt(||.||_F),
X = C_8 / 2). It is therefore the derivative of sqrt, not of the approximant: the two agree to
the approximant's error, tiny for well-conditioned Sigma (the gradcheck tests use those) and
larger for nearly singular ones (M < C), where it stays finite. A dead map (||Sigma|| = 0,
clamped to the smallest normal number) gives 0.
"""
from __future__ import annotations

import functools
from fractions import Fraction

import torch
from torch import Tensor, nn

from gcpbench.gcp import triu_size
from gcpbench.pooling.common import as_features, autocast_off, covariance, triu_vector

PADE_DEGREE = 5
LYAPUNOV_STEPS = 8


def _sqrt_taylor(order: int) -> list[Fraction]:
    """Taylor coefficients of sqrt(1 - z): a_k = (-1)^k binom(1/2, k), k = 0..order."""
    coefficients, binom = [], Fraction(1)
    for k in range(order + 1):
        coefficients.append(binom * (-1) ** k)
        binom = binom * (Fraction(1, 2) - k) / (k + 1)
    return coefficients


def _solve(matrix: list[list[Fraction]], rhs: list[Fraction]) -> list[Fraction]:
    """Exact Gaussian elimination with partial pivoting on rationals."""
    n = len(rhs)
    rows = [row[:] + [value] for row, value in zip(matrix, rhs)]
    for col in range(n):
        pivot = next(r for r in range(col, n) if rows[r][col] != 0)
        rows[col], rows[pivot] = rows[pivot], rows[col]
        for r in range(n):
            if r != col and rows[r][col] != 0:
                factor = rows[r][col] / rows[col][col]
                rows[r] = [a - factor * b for a, b in zip(rows[r], rows[col])]
    return [rows[i][n] / rows[i][i] for i in range(n)]


@functools.lru_cache(maxsize=None)
def pade_coefficients(degree: int = PADE_DEGREE) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(p, q) of the [degree/degree] Pade approximant P/Q of sqrt(1 - z), q_0 = 1: the unique
    P, Q with Q(z) sqrt(1 - z) - P(z) = O(z^(2 degree + 1))."""
    a = _sqrt_taylor(2 * degree)
    # q_1..q_n from sum_j q_j a_(k-j) = 0 for k = n+1..2n (q_0 = 1)
    matrix = [[a[k - j] for j in range(1, degree + 1)] for k in range(degree + 1, 2 * degree + 1)]
    q = [Fraction(1)] + _solve(matrix, [-a[k] for k in range(degree + 1, 2 * degree + 1)])
    p = [sum(q[j] * a[k - j] for j in range(k + 1)) for k in range(degree + 1)]
    return tuple(float(v) for v in p), tuple(float(v) for v in q)


def pade_sqrt(a: Tensor, degree: int = PADE_DEGREE) -> Tensor:
    """Q(I - a)^-1 P(I - a) for a batch of matrices ``a`` with spectrum in [0, 1]."""
    p, q = pade_coefficients(degree)
    eye = torch.eye(a.shape[-1], dtype=a.dtype, device=a.device).expand_as(a)
    z = eye - a
    numerator, denominator, power = p[0] * eye, q[0] * eye, z
    for k in range(1, degree + 1):
        numerator = numerator + p[k] * power
        denominator = denominator + q[k] * power
        if k < degree:
            power = torch.bmm(power, z)
    return torch.linalg.solve(denominator, numerator)


def lyapunov_grad(root: Tensor, grad: Tensor, steps: int = LYAPUNOV_STEPS) -> Tensor:
    """X with root X + X root = grad (root: a normalised square root, spectrum in [0, 1]) by the
    coupled Newton-Schulz sign iteration, as MPA-Lya's backward."""
    eye = torch.eye(root.shape[-1], dtype=root.dtype, device=root.device)
    b, c = root, grad
    for _ in range(steps):
        b2 = torch.bmm(b, b)
        three_minus = 3.0 * eye - b2
        c = 0.5 * (torch.bmm(c, three_minus) - torch.bmm(b2, c) + torch.bmm(torch.bmm(b, c), b))
        b = 0.5 * torch.bmm(b, three_minus)
    return 0.5 * c


class _MpaLya(torch.autograd.Function):
    """(B, C, C) symmetric PSD -> its square root by MPA, backward by the Lyapunov equation."""

    @staticmethod
    def forward(ctx, sigma: Tensor) -> Tensor:  # type: ignore[override]
        norm = torch.linalg.matrix_norm(sigma).clamp_min(torch.finfo(sigma.dtype).tiny).view(-1, 1, 1)
        root = pade_sqrt(sigma / norm)
        ctx.save_for_backward(root, norm)
        return root * norm.sqrt()

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        root, norm = ctx.saved_tensors
        return lyapunov_grad(root, grad / norm.sqrt())


def mpa_cov(x: Tensor) -> Tensor:
    """MPA-Lya pooling of ``x`` (B, C, H, W) -> (B, C(C+1)/2): triu(sqrt(Sigma))."""
    feats = as_features(x, "mpa")
    with autocast_off(x.device):
        return triu_vector(_MpaLya.apply(covariance(feats)))


class MPACov(nn.Module):
    """MPA-Lya pooling: Pade square root of the covariance, Lyapunov backward."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = dim
        self.output_dim = triu_size(dim)

    def forward(self, x: Tensor) -> Tensor:
        return mpa_cov(x)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, pade=[{PADE_DEGREE}/{PADE_DEGREE}], lyapunov_steps={LYAPUNOV_STEPS}, out={self.output_dim}"
