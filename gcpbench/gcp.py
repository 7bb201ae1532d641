"""The GCP meta-layer of iSQRT-COV: covariance, Newton-Schulz square root, triu vector.

Exactly the paper's computation (DESIGN.md section 3):

1. ``Sigma = Xc Xc^T / M`` with ``Xc`` the per-channel mean-centred features (M = H*W);
2. ``A = Sigma / tr(Sigma)``;
3. coupled Newton-Schulz, ``N`` iterations: ``T_k = (3I - Z_{k-1} Y_{k-1}) / 2``,
   ``Y_k = Y_{k-1} T_k``, ``Z_k = T_k Z_{k-1}`` with ``Y_0 = A, Z_0 = I``; the last step
   computes only ``Y_N``; ``N < 2`` means a single step;
4. ``sqrt(tr(Sigma)) * Y_N``;
5. the upper triangle with diagonal, row-major: ``C*(C+1)/2`` values.

The backward is written by hand (the same products autograd would do, 6 per step) with
every ``3I - P`` and every gradient accumulation fused into ``baddbmm``, keeping only the
iterates it needs. The layer always runs in float32, also under autocast. A zero trace (a
dead feature map) is clamped to the smallest normal float so the output is 0, not NaN.
"""
from __future__ import annotations

import contextlib
from typing import Iterator

import torch
from torch import Tensor, nn

PRECISIONS = ("float32", "tf32")
_TRIU_INDEX: dict[tuple[int, torch.device], Tensor] = {}


def triu_size(dim: int) -> int:
    """Length of the vectorised upper triangle (with diagonal) of a dim x dim matrix."""
    return dim * (dim + 1) // 2


def triu_flat_index(dim: int, device: torch.device) -> Tensor:
    """Row-major flat indices of the upper triangle (with diagonal), cached per device."""
    key = (dim, torch.device(device))
    index = _TRIU_INDEX.get(key)
    if index is None:
        rows, cols = torch.triu_indices(dim, dim, device=device)
        index = rows * dim + cols
        _TRIU_INDEX[key] = index
    return index


def _autocast_off(device: torch.device) -> contextlib.AbstractContextManager:
    """Disable autocast on ``device`` (a no-op where autocast does not exist, e.g. meta)."""
    if torch.amp.is_autocast_available(device.type):
        return torch.autocast(device_type=device.type, enabled=False)
    return contextlib.nullcontext()


@contextlib.contextmanager
def _matmul_precision(precision: str, device: torch.device) -> Iterator[None]:
    """Allow TF32 matrix products on CUDA inside the block when ``precision == 'tf32'``."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision == "float32" or device.type != "cuda":
        yield
        return
    previous = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = True
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32 = previous


def _newton_schulz(a: Tensor, iterations: int) -> tuple[Tensor, Tensor, list[tuple[Tensor, Tensor, Tensor]]]:
    """Coupled Newton-Schulz on trace-normalised ``a``; returns Y_N, T_1 and, per later
    step, the (Y_prev, Z_prev, T) the backward needs."""
    eye15 = torch.eye(a.shape[-1], dtype=a.dtype, device=a.device).mul_(1.5)
    t1 = torch.add(eye15, a, alpha=-0.5)  # (3I - A) / 2 = Z_1
    y = torch.bmm(a, t1)
    z = t1
    steps: list[tuple[Tensor, Tensor, Tensor]] = []
    for k in range(2, max(iterations, 1) + 1):
        t = torch.baddbmm(eye15, z, y, alpha=-0.5)  # (3I - Z Y) / 2
        steps.append((y, z, t))
        y_next = torch.bmm(y, t)
        if k < iterations:
            z = torch.bmm(t, z)
        y = y_next
    return y, t1, steps


def _newton_schulz_backward(
    grad_y: Tensor, a: Tensor, t1: Tensor, steps: list[tuple[Tensor, Tensor, Tensor]]
) -> Tensor:
    """Reverse pass of :func:`_newton_schulz`: gradient with respect to ``a``."""
    grad_z: Tensor | None = None
    for y, z, t in reversed(steps):
        # forward: T = 1.5 I - 0.5 Z Y;  Y' = Y T;  Z' = T Z (absent on the last step)
        grad_t = torch.bmm(y.mT, grad_y)
        if grad_z is not None:
            grad_t.baddbmm_(grad_z, z.mT)
        grad_y_prev = torch.bmm(grad_y, t.mT).baddbmm_(z.mT, grad_t, alpha=-0.5)
        if grad_z is None:
            grad_z_prev = torch.baddbmm(grad_t, grad_t, y.mT, beta=0.0, alpha=-0.5)
        else:
            grad_z_prev = torch.bmm(t.mT, grad_z).baddbmm_(grad_t, y.mT, alpha=-0.5)
        grad_y, grad_z = grad_y_prev, grad_z_prev
    # first step: T_1 = 1.5 I - 0.5 A;  Y_1 = A T_1;  Z_1 = T_1
    grad_t1 = torch.bmm(a.mT, grad_y) if grad_z is None else torch.baddbmm(grad_z, a.mT, grad_y)
    return torch.baddbmm(grad_t1, grad_y, t1.mT, beta=-0.5)


class _ISqrtCov(torch.autograd.Function):
    """(B, C, H, W) float32 -> (B, C(C+1)/2) float32 with a hand-written backward."""

    @staticmethod
    def forward(ctx, x: Tensor, iterations: int, precision: str) -> Tensor:  # type: ignore[override]
        batch, channels, height, width = x.shape
        m = height * width
        feats = x.reshape(batch, channels, m)
        centred = feats - feats.mean(dim=2, keepdim=True)
        with _matmul_precision(precision, x.device):
            sigma = torch.baddbmm(
                x.new_empty(1, 1, 1), centred, centred.mT, beta=0.0, alpha=1.0 / m
            )
            trace = sigma.diagonal(dim1=1, dim2=2).sum(-1).clamp_min(torch.finfo(x.dtype).tiny)
            a = sigma.div_(trace.view(batch, 1, 1))
            y, t1, steps = _newton_schulz(a, iterations)
        index = triu_flat_index(channels, x.device)
        scale = trace.sqrt()
        out = y.reshape(batch, channels * channels).index_select(1, index).mul_(scale.view(batch, 1))
        ctx.precision = precision
        ctx.steps = steps
        ctx.m = m
        ctx.input_shape = x.shape
        ctx.save_for_backward(centred, a, t1, trace, out)
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out: Tensor):  # type: ignore[override]
        centred, a, t1, trace, out = ctx.saved_tensors
        batch, channels, _ = a.shape
        grad_out = grad_out.to(a.dtype)
        with _autocast_off(a.device), _matmul_precision(ctx.precision, a.device):
            index = triu_flat_index(channels, a.device)
            grad_y = grad_out.new_zeros(batch, channels * channels).index_copy_(1, index, grad_out)
            # The layer is linear in grad_y: run it unscaled, apply sqrt(tr) below.
            grad_a = _newton_schulz_backward(grad_y.view(batch, channels, channels), a, t1, ctx.steps)
            scale = trace.sqrt()
            grad_a_dot_a = torch.bmm(grad_a.reshape(batch, 1, -1), a.reshape(batch, -1, 1)).view(batch)
            grad_out_dot_out = torch.bmm(grad_out.view(batch, 1, -1), out.view(batch, -1, 1)).view(batch)
            # dL/dSigma = (s/t) grad_a + c I, with c = dL/dt
            diag = grad_out_dot_out / (2 * trace) - scale * grad_a_dot_a / trace
            sym = torch.add(grad_a, grad_a.mT).mul_((scale / trace).view(batch, 1, 1))
            sym.diagonal(dim1=1, dim2=2).add_(2 * diag.view(batch, 1))
            # Sigma = Xc Xc^T / M; the mean's gradient term vanishes since rows of Xc sum to 0.
            grad_x = torch.baddbmm(centred.new_empty(1, 1, 1), sym, centred, beta=0.0, alpha=1.0 / ctx.m)
        return grad_x.view(ctx.input_shape), None, None


def isqrt_cov(x: Tensor, iterations: int = 5, precision: str = "float32") -> Tensor:
    """iSQRT-COV pooling of ``x`` (B, C, H, W) -> (B, C*(C+1)//2), float32 always.

    ``precision='tf32'`` lets CUDA use TF32 products inside the layer (faster, about 1e-3
    relative error); the default is exact float32.
    """
    if x.dim() != 4:
        raise ValueError(f"isqrt_cov expects (B, C, H, W), got shape {tuple(x.shape)}")
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    with _autocast_off(x.device):
        return _ISqrtCov.apply(x.float(), int(iterations), precision)


class GCP(nn.Module):
    """Global covariance pooling (iSQRT-COV) as a module; no parameters."""

    def __init__(self, dim: int, iterations: int = 5, precision: str = "float32") -> None:
        super().__init__()
        self.dim = dim
        self.iterations = iterations
        self.precision = precision
        self.output_dim = triu_size(dim)

    def forward(self, x: Tensor) -> Tensor:
        return isqrt_cov(x, self.iterations, self.precision)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, iterations={self.iterations}, out={self.output_dim}, precision={self.precision}"
