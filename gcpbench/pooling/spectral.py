"""A spectral matrix function f(A) = U diag(f(lambda)) U^T of symmetric matrices, by
eigendecomposition, with the Daleckii-Krein (Loewner matrix) backward.

The backward is grad_A = U (L o (U^T sym(G) U)) U^T with the Loewner matrix
L_ij = (f(l_i) - f(l_j)) / (l_i - l_j) for l_i != l_j and L_ij = f'(l) on the diagonal.
For distinct eigenvalues this is exactly MPN-COV's / DeepO2P's backward (their
K_ij = 1/(l_i - l_j) applied to U^T dL/dU, symmetrised, plus the f'(lambda) diagonal:
Ionescu et al., ICCV 2015, eq. for dL/dSigma; jiangtaoxie/MPN-COV ``mpn_cov_cpu.cpp``).
It stays finite for repeated or near-equal eigenvalues: where
|l_i - l_j| <= delta * max(|l_i|, |l_j|), delta = machine epsilon ** (1/3) (5e-3 in float32,
6e-6 in float64: the point where the divided difference's rounding error equals the error of
its Taylor form), L_ij is f' at the midpoint, the first-order Taylor form of the divided
difference (the authors' code sets K to 0 only where it is infinite, so nearly equal
eigenvalues there give huge K and exactly equal ones lose the f' term).
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

Elementwise = Callable[[Tensor], Tensor]


def loewner_matrix(lam: Tensor, f_lam: Tensor, fprime: Elementwise) -> Tensor:
    """L_ij = (f_i - f_j) / (l_i - l_j), or f'((l_i + l_j) / 2) where l_i and l_j are (near-)equal."""
    diff = lam.unsqueeze(-1) - lam.unsqueeze(-2)
    scale = torch.maximum(lam.abs().unsqueeze(-1), lam.abs().unsqueeze(-2))
    close = diff.abs() <= torch.finfo(lam.dtype).eps ** (1.0 / 3.0) * scale
    divided = (f_lam.unsqueeze(-1) - f_lam.unsqueeze(-2)) / torch.where(close, torch.ones_like(diff), diff)
    midpoint = fprime((lam.unsqueeze(-1) + lam.unsqueeze(-2)) / 2)
    return torch.where(close, midpoint, divided)


class _Spectral(torch.autograd.Function):
    """(B, C, C) symmetric -> U diag(f(lambda)) U^T, backward by the Loewner matrix."""

    @staticmethod
    def forward(ctx, a: Tensor, f: Elementwise, fprime: Elementwise) -> Tensor:  # type: ignore[override]
        lam, u = torch.linalg.eigh(a)
        f_lam = f(lam)
        ctx.fprime = fprime
        ctx.save_for_backward(lam, u, f_lam)
        return torch.matmul(u * f_lam.unsqueeze(-2), u.mT)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        lam, u, f_lam = ctx.saved_tensors
        grad = (grad + grad.mT) / 2  # A is symmetric: only the symmetric part of G matters
        inner = torch.matmul(torch.matmul(u.mT, grad), u)
        inner.mul_(loewner_matrix(lam, f_lam, ctx.fprime))
        return torch.matmul(torch.matmul(u, inner), u.mT), None, None


def spectral_function(a: Tensor, f: Elementwise, fprime: Elementwise) -> Tensor:
    """f(a) for a batch of symmetric matrices ``a``; ``fprime`` is f' (for the backward)."""
    return _Spectral.apply(a, f, fprime)
