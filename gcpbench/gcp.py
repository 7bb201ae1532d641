"""The GCP meta-layer of iSQRT-COV: covariance, Newton-Schulz square root, triu vector.

Exactly the paper's computation (docs/design.md section 3):

1. ``Sigma = Xc Xc^T / M`` with ``Xc`` the per-channel mean-centred features (M = H*W);
2. ``A = Sigma / tr(Sigma)``;
3. coupled Newton-Schulz, ``N`` iterations: ``T_k = (3I - Z_{k-1} Y_{k-1}) / 2``,
   ``Y_k = Y_{k-1} T_k``, ``Z_k = T_k Z_{k-1}`` with ``Y_0 = A, Z_0 = I``; the last step
   computes only ``Y_N``; ``N < 2`` means a single step;
4. ``sqrt(tr(Sigma)) * Y_N``;
5. the upper triangle with diagonal, row-major: ``C*(C+1)/2`` values.

The backward is written by hand. The iterates are polynomials in ``A``, so they are
symmetric and commute (``Z Y = 3I - 2T``); with the incoming gradient symmetrised, that
saves a product in the first and in the last step (34 products for N=5 where autograd does
36) and lets the layer keep 11 C x C matrices per sample where autograd keeps 15, freeing
each as soon as the backward has used it (a second backward, e.g. gradcheck, recomputes them).
Every ``3I - P`` and gradient accumulation is fused into ``baddbmm``; no loops over the
batch; no product reads a transposed iterate (they are symmetric). The layer
always runs in float32, also under autocast, and its output is float32. A zero trace (a dead
feature map) is clamped to the smallest normal float so the output is 0, not NaN.

Scale: the output is exactly homogeneous, ``f(s x) = s f(x)`` (Sigma scales by s^2, A not at
all, sqrt(tr) by s). Computed literally, Sigma leaves float32's range long before x does
(|x| ~ 1e-20 gives a subnormal trace, |x| ~ 1e20 an infinite one). So the centred features
of each sample are first divided by ``r``, the power of two just above their largest
magnitude (exact: only the exponent changes), the layer runs on values in [0.5, 1), and the
output is multiplied by ``r`` again; the backward is the same on the scaled features (the
factors cancel). ``docs/benchmarks.md`` has the figures.
"""
from __future__ import annotations

import contextlib
from typing import Iterator

import torch
from torch import Tensor, nn

from gcpbench.errors import InputShapeError

PRECISIONS = ("float32", "tf32")
_TRIU_INDEX: dict[tuple[int, torch.device], Tensor] = {}
_TRIU_WEIGHTS: dict[tuple[int, torch.device, torch.dtype], Tensor] = {}


def triu_size(dim: int) -> int:
    """Length of the vectorised upper triangle (with diagonal) of a dim x dim matrix."""
    return dim * (dim + 1) // 2


def triu_flat_index(dim: int, device: torch.device) -> Tensor:
    """Row-major flat indices of the upper triangle (with diagonal), cached per device."""
    key = (dim, torch.device(device))
    index = _TRIU_INDEX.get(key)
    if index is None:
        with torch.inference_mode(False):  # cached for every later call: never an inference tensor
            rows, cols = torch.triu_indices(dim, dim, device=device)
            index = rows * dim + cols
        _TRIU_INDEX[key] = index
    return index


def autocast_off(device: torch.device) -> contextlib.AbstractContextManager:
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


def _triu_mirror_index(dim: int, device: torch.device) -> Tensor:
    """For every entry (i, j) of a dim x dim matrix, the position of (min(i, j), max(i, j)) in
    the triu vector: gathering with it mirrors a triu vector into a symmetric matrix."""
    key = (-dim, torch.device(device))
    index = _TRIU_INDEX.get(key)
    if index is None:
        with torch.inference_mode(False):  # cached: usable by autograd after an evaluation made it
            rows, cols = torch.triu_indices(dim, dim, device=device)
            positions = torch.arange(rows.numel(), device=device)
            index = torch.empty(dim * dim, dtype=torch.long, device=device)
            index[rows * dim + cols] = positions
            index[cols * dim + rows] = positions
        _TRIU_INDEX[key] = index
    return index


def _triu_weights(dim: int, device: torch.device, dtype: torch.dtype) -> Tensor:
    """1 for the diagonal entries of the triu vector, 0.5 for the others (cached)."""
    key = (dim, torch.device(device), dtype)
    weights = _TRIU_WEIGHTS.get(key)
    if weights is None:
        with torch.inference_mode(False):  # cached: usable by autograd after an evaluation made it
            rows, cols = torch.triu_indices(dim, dim, device=device)
            weights = _TRIU_WEIGHTS[key] = torch.where(rows == cols, 1.0, 0.5).to(dtype)
    return weights


def _symmetric_grad(grad_out: Tensor, coef: Tensor, dim: int) -> Tensor:
    """The symmetric part of the gradient of the full matrix whose triu vector got ``grad_out``
    (an off-diagonal entry's gradient is shared by (i, j) and (j, i)), times ``coef`` per sample."""
    grad = torch.mul(grad_out, coef.view(-1, 1)).mul_(_triu_weights(dim, grad_out.device, grad_out.dtype))
    return grad.index_select(1, _triu_mirror_index(dim, grad_out.device)).view(-1, dim, dim)


def _add_eye_(batch: Tensor, value: float) -> Tensor:
    """``batch + value * I`` in place: touches the diagonal only."""
    batch.diagonal(dim1=1, dim2=2).add_(value)
    return batch


def _first_t(a: Tensor) -> Tensor:
    """T_1 = Z_1 = (3I - A) / 2."""
    return _add_eye_(torch.mul(a, -0.5), 1.5)


def _newton_schulz(a: Tensor, iterations: int, keep: bool) -> tuple[Tensor, list[Tensor]]:
    """Coupled Newton-Schulz on trace-normalised ``a``; returns Y_N and, when ``keep``, the
    iterates the backward needs: [Y_1, T_2, (Z_2, Y_2, T_3), ..., Y_{N-1}, T_N] (Z_{N-1},
    T_1 and Y_N are not kept)."""
    t = _first_t(a)
    y, z = torch.bmm(a, t), t
    kept: list[Tensor] = []
    for k in range(2, max(iterations, 1) + 1):
        # T_k = (3I - Z Y) / 2: the product scaled by the GEMM, 1.5 added to the diagonal only
        t = _add_eye_(torch.baddbmm(y.new_empty(1, 1, 1), z, y, beta=0.0, alpha=-0.5), 1.5)
        if keep and 2 < k < iterations:
            kept.append(z)  # Z_{k-1}: needed by every step but the last
        z = torch.bmm(t, z) if k < iterations else None
        if keep:
            kept += [y, t]
        y = torch.bmm(y, t)
    return y, kept


def _newton_schulz_backward(grad: Tensor, a: Tensor, kept: list[Tensor], iterations: int) -> Tensor:
    """Gradient with respect to ``a`` of <grad, Y_N>, for a symmetric ``grad``, up to an
    antisymmetric part (the caller symmetrises). Pops (frees) ``kept`` as it goes and reuses
    the buffer of ``grad``: the caller must not hold on to it.

    The iterates are polynomials in ``a``: symmetric and commuting, so Z Y = 3I - 2T. That makes
    the last step need neither Z_{N-1} nor a product for 3I - Z Y (3 products, not 4) and the
    first step need one product, not two; the steps between are the plain reverse of the
    forward (6 products, every accumulation fused into baddbmm). The iterates' transposes
    are the iterates themselves (to rounding), so no product reads a transposed iterate."""
    if iterations < 2:
        # Y_1 = A T_1: grad_A = grad T_1 + T_1 grad - 1.5 grad ~ 1.5 grad - grad A
        return torch.baddbmm(grad, grad, a, beta=1.5, alpha=-1.0)
    # last step, Y_N = Y T with T = 1.5I - 0.5 Z Y:
    #   grad_Y = G T + T G - 1.5 G (symmetric),  grad_Z = -0.5 Y G Y
    t = kept.pop()
    p = torch.baddbmm(grad, grad, t, beta=-0.75)  # G T - 0.75 G
    y = kept.pop()
    del t
    w = torch.bmm(y, grad)
    grad_y = torch.add(p, p.mT, out=grad)
    grad_z = p.baddbmm_(w, y, beta=0.0, alpha=-0.5)
    del w, y
    for k in range(iterations - 1, 1, -1):
        # T = 1.5I - 0.5 Z Y;  Y' = Y T;  Z' = T Z  (Y, Z, T symmetric)
        t, y = kept.pop(), kept.pop()
        z = kept.pop() if k > 2 else _first_t(a)  # Z_1 = T_1, recomputed
        grad_t = torch.bmm(y, grad_y).baddbmm_(grad_z, z)
        grad_y_prev = torch.bmm(grad_y, t).baddbmm_(z, grad_t, alpha=-0.5)
        grad_z_prev = torch.bmm(t, grad_z, out=grad_y).baddbmm_(grad_t, y, alpha=-0.5)
        del t, y, z, grad_t
        grad_y, grad_z = grad_y_prev, grad_z_prev
    # first step, Y_1 = A T_1, Z_1 = T_1 = 1.5I - 0.5A:
    #   grad_A = grad_Y T_1 + T_1 grad_Y - 1.5 grad_Y - 0.5 grad_Z ~ 1.5 grad_Y - grad_Y A - 0.5 grad_Z
    return grad_z.add_(grad_y, alpha=-3.0).baddbmm_(grad_y, a, beta=-0.5, alpha=-1.0)


def _unit_scale(centred: Tensor) -> Tensor:
    """Per sample, the power of two r with max |centred| / r in [0.5, 1) (1 for an all-zero sample)."""
    largest = centred.abs().amax(dim=(1, 2))
    return torch.ldexp(torch.ones_like(largest), torch.frexp(largest).exponent)


def _scaled_centred(x: Tensor, mean: Tensor, unit: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """``((x - mean) / unit, unit)`` per sample, (B, C, M); ``unit`` (default :func:`_unit_scale`)
    is a power of two, so the division is exact."""
    centred = x.reshape(x.shape[0], x.shape[1], -1) - mean
    if unit is None:
        unit = _unit_scale(centred)
    return centred.div_(unit.view(-1, 1, 1)), unit


class _ISqrtCov(torch.autograd.Function):
    """(B, C, H, W) -> (B, C(C+1)/2) in the dtype it is given, with a hand-written backward
    (:func:`isqrt_cov` and :class:`GCP` always give it float32, so their output is float32).

    The first backward frees the iterates as it consumes them; a second one (retain_graph,
    gradcheck) recomputes them from the saved ``a``."""

    @staticmethod
    def forward(ctx, x: Tensor, iterations: int, precision: str) -> Tensor:  # type: ignore[override]
        batch, channels, height, width = x.shape
        m = height * width
        mean = x.reshape(batch, channels, m).mean(dim=2, keepdim=True)
        centred, unit = _scaled_centred(x, mean)  # values in [0.5, 1): Sigma neither under- nor overflows
        keep = ctx.needs_input_grad[0]
        with _matmul_precision(precision, x.device):
            sigma = torch.baddbmm(x.new_empty(1, 1, 1), centred, centred.mT, beta=0.0, alpha=1.0 / m)
            del centred  # recomputed from x in the backward
            trace = sigma.diagonal(dim1=1, dim2=2).sum(-1).clamp_min(torch.finfo(x.dtype).tiny)
            a = sigma.div_(trace.view(batch, 1, 1))
            y, kept = _newton_schulz(a, iterations, keep)
        index = triu_flat_index(channels, x.device)
        scale = trace.sqrt().mul_(unit)  # sqrt(tr Sigma) of the unscaled features
        out = y.reshape(batch, channels * channels).index_select(1, index).mul_(scale.view(batch, 1))
        if keep:
            ctx.precision = precision
            ctx.iterations = iterations
            ctx.kept = kept
            ctx.save_for_backward(x, mean, unit, a, trace, out)
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out: Tensor):  # type: ignore[override]
        x, mean, unit, a, trace, out = ctx.saved_tensors  # trace: of the scaled features
        batch, channels, _ = a.shape
        kept, ctx.kept = ctx.kept, None
        grad_out = grad_out.to(a.dtype)
        with autocast_off(a.device), _matmul_precision(ctx.precision, a.device):
            if kept is None:  # backward run before: the iterates were freed
                kept = _newton_schulz(a, ctx.iterations, keep=True)[1]
            # dL/dY_N, symmetrised and times sqrt(tr)/tr (the reverse iteration is linear)
            grad = _symmetric_grad(grad_out, trace.rsqrt(), channels)
            grad_a = _newton_schulz_backward(grad, a, kept, ctx.iterations)
            # dL/dSigma = grad_a + c I with c = dL/dtr (grad_a already carries sqrt(tr)/tr)
            grad_a_dot_a = torch.bmm(grad_a.reshape(batch, 1, -1), a.reshape(batch, -1, 1)).view(batch)
            grad_out_dot_out = torch.bmm(grad_out.view(batch, 1, -1), out.view(batch, -1, 1)).view(batch)
            diag = grad_out_dot_out / (2 * trace * unit) - grad_a_dot_a  # out / unit: the scaled features' output
            sym = torch.add(grad_a, grad_a.mT)
            del grad_a
            sym.diagonal(dim1=1, dim2=2).add_(2 * diag.view(batch, 1))
            # Sigma = Xc Xc^T / M; the mean's gradient term vanishes since rows of Xc sum to 0.
            # With Xc scaled by 1/unit and the output by unit, the gradient wrt x is the one wrt
            # the scaled Xc (the two factors cancel).
            centred = _scaled_centred(x, mean, unit)[0]
            grad_x = torch.baddbmm(centred.new_empty(1, 1, 1), sym, centred, beta=0.0, alpha=1.0 / centred.shape[-1])
        return grad_x.view(x.shape), None, None


def isqrt_cov(x: Tensor, iterations: int = 5, precision: str = "float32") -> Tensor:
    """iSQRT-COV pooling of ``x`` (B, C, H, W) -> (B, C*(C+1)//2), float32 always.

    ``precision='tf32'`` lets CUDA use TF32 products inside the layer (faster, about 1e-3
    relative error); the default is exact float32.
    """
    if x.dim() != 4:
        raise ValueError(f"isqrt_cov expects (B, C, H, W), got shape {tuple(x.shape)}")
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    with autocast_off(x.device):
        return _ISqrtCov.apply(x.float(), int(iterations), precision)


class GCP(nn.Module):
    """Global covariance pooling (iSQRT-COV) as a module; no parameters. The output is float32
    whatever the input's dtype (the layer runs in float32, also under autocast)."""

    def __init__(self, dim: int, iterations: int = 5, precision: str = "float32") -> None:
        super().__init__()
        if int(dim) < 2:
            raise InputShapeError(f"GCP(dim={dim}): dim is the number of input channels, at least 2")
        self.dim = int(dim)
        self.iterations = iterations
        self.precision = precision
        self.output_dim = triu_size(dim)

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 4 or x.shape[1] != self.dim:
            got = f"{x.shape[1]} channels (shape {tuple(x.shape)})" if x.dim() == 4 else f"shape {tuple(x.shape)}"
            raise InputShapeError(f"GCP(dim={self.dim}) expects (B, {self.dim}, H, W), got {got}; put a 1x1 "
                                  f"convolution to {self.dim} channels in front (as the zoo's heads do) or use "
                                  f"GCP({x.shape[1] if x.dim() == 4 else 'C'})")
        return isqrt_cov(x, self.iterations, self.precision)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, iterations={self.iterations}, out={self.output_dim}, precision={self.precision}"


def set_gcp_precision(model: nn.Module, precision: str) -> int:
    """Set ``precision`` ('float32' or 'tf32') on every GCP layer of ``model``; returns how many
    (for a ``--gcp-precision`` option: tf32 is an opt-in speed-up on CUDA, ~1e-3 relative)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    layers = [m for m in model.modules() if isinstance(m, GCP)]
    for layer in layers:
        layer.precision = precision
    return len(layers)
