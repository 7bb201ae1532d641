"""The authors' computations of the GCP family, re-implemented for timing only (never imported
by the package): what each published implementation computes, in its way, so that
``gcp_layer.py --norm all`` can compare gcpbench's layer with it at the same size.

- isqrt: fast-MPN-COV ``MPNCOV.py`` computes the covariance as X I_hat X^T with the explicit
  M x M centring matrix and differentiates its own Newton-Schulz backward; stood in for by the
  textbook layer of ``gcp_layer.py`` (the same equations, autograd).
- mpn: MPN-COV (jiangtaoxie/MPN-COV ``mpn_cov_cpu.cpp``): X I_hat X^T, then per sample an
  eigendecomposition, (lambda + 1e-12)^alpha, and the backward with K_ij = 1/(l_i - l_j)
  (infinite entries set to 0) per sample.
- log: DeepO2P's matrix backpropagation through an SVD (batched ``torch.linalg.svd``; the same
  K-matrix backward).
- mpa: MPA-Lya (KingJamesSong/FastDifferentiableMatSqrt ``torch_utils.py``): X I_hat X^T, the
  [5/5] Pade solve, the 8-step Lyapunov backward, triu by index.
- bcnn: fast-MPN-COV ``BCNN.py``: X X^T / M, signed sqrt, flatten, ``F.normalize`` (autograd).
- cbp: fast-MPN-COV ``CBP.py``: per image, both sketches as dense (M x C)(C x d) products, FFT,
  complex product, inverse FFT, sum over positions; signed sqrt, L2 (autograd).
- none: DropCov's ``Covariance`` (mean removed, bmm / N) and ``Triuvec`` by index (autograd).
- dropcov: DropCov's training forward (ECA, balance_rate, Dropout2d, covariance, triu).
"""
from __future__ import annotations

import torch
from torch import Tensor
from torch.nn import functional as F

from gcpbench.pooling.mpa import lyapunov_grad, pade_sqrt


def _centring(m: int, like: Tensor) -> Tensor:
    return (torch.eye(m, dtype=like.dtype, device=like.device) - 1.0 / m) / m


def _triu(y: Tensor) -> Tensor:
    rows, cols = torch.triu_indices(y.shape[1], y.shape[1], device=y.device)
    return y[:, rows, cols]


def _cov_ihat(x: Tensor) -> Tensor:
    b, c, h, w = x.shape
    feats = x.reshape(b, c, h * w)
    return feats @ _centring(h * w, x) @ feats.mT


class _EigK(torch.autograd.Function):
    """Per-sample eigendecomposition forward and K-matrix backward (MPN-COV / DeepO2P style)."""

    @staticmethod
    def forward(ctx, sigma, f, fprime, use_svd):  # type: ignore[override]
        outs, saved = [], []
        if use_svd:
            u, s, _ = torch.linalg.svd(sigma)
            pairs = list(zip(s.unbind(0), u.unbind(0)))
        else:
            pairs = [torch.linalg.eigh(m) for m in sigma.unbind(0)]
        for lam, u in pairs:
            outs.append(u @ torch.diag(f(lam)) @ u.T)
            saved.append((lam, u))
        ctx.saved, ctx.f, ctx.fprime = saved, f, fprime
        return torch.stack(outs)

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        grads = []
        for (lam, u), g in zip(ctx.saved, grad.unbind(0)):
            g = (g + g.T) / 2
            k = 1.0 / (lam[:, None] - lam[None, :])
            k[~torch.isfinite(k)] = 0
            dldu = 2 * g @ u @ torch.diag(ctx.f(lam))
            dlds = torch.diag(ctx.fprime(lam)) @ u.T @ g @ u
            inner = k.T * (u.T @ dldu)
            inner = (inner + inner.T) / 2 + torch.diag(torch.diagonal(dlds))
            grads.append(u @ inner @ u.T)
        return torch.stack(grads), None, None, None


def mpn(x: Tensor) -> Tensor:
    return _triu(_EigK.apply(_cov_ihat(x), lambda l: (l.clamp_min(0) + 1e-12).sqrt(),
                             lambda l: 0.5 * (l.clamp_min(0) + 1e-12).rsqrt(), False))


def log(x: Tensor) -> Tensor:
    return _triu(_EigK.apply(_cov_ihat(x), lambda l: (l + 1e-3).log(), lambda l: 1 / (l + 1e-3), True))


class _MpaLya(torch.autograd.Function):
    @staticmethod
    def forward(ctx, m):  # type: ignore[override]
        norm = torch.norm(m, dim=[1, 2]).reshape(-1, 1, 1)
        root = pade_sqrt(m / norm)
        ctx.save_for_backward(root, norm)
        return root * norm.sqrt()

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        root, norm = ctx.saved_tensors
        return lyapunov_grad(root, grad / norm.sqrt())


def mpa(x: Tensor) -> Tensor:
    return _triu(_MpaLya.apply(_cov_ihat(x)))


def bcnn(x: Tensor) -> Tensor:
    b, c, h, w = x.shape
    feats = x.reshape(b, c, h * w)
    y = feats.bmm(feats.transpose(1, 2)) / (h * w)
    y = torch.mul(y.sign(), torch.sqrt(y.abs() + 1e-8))
    return F.normalize(y.reshape(b, -1))


def cbp_factory(channels: int, proj_dim: int = 8192):
    """The authors' CBP forward with their hashes (seed 1) as dense C x d matrices."""
    from gcpbench.pooling.cbp import draw_hashes

    h1, h2, s1, s2 = draw_hashes(channels, proj_dim, 1)
    dense = []
    for h, s in ((h1, s1), (h2, s2)):
        m = torch.zeros(channels, proj_dim)
        m[torch.arange(channels), h] = s
        dense.append(m)

    def cbp(x: Tensor) -> Tensor:
        b, c, hh, ww = x.shape
        flat = x.permute(0, 2, 3, 1).reshape(-1, c)
        rows = []
        for i in range(b):  # the authors' per-image loop (bsn = 1)
            part = flat[i * hh * ww:(i + 1) * hh * ww]
            f1 = torch.fft.fft(part @ dense[0].to(x.device))
            f2 = torch.fft.fft(part @ dense[1].to(x.device))
            rows.append(torch.fft.ifft(f1 * f2).real.sum(0))
        y = torch.stack(rows)
        return F.normalize(torch.mul(y.sign(), torch.sqrt(y.abs() + 1e-8)))

    return cbp


def none(x: Tensor) -> Tensor:
    b, c, h, w = x.shape
    x = x - F.adaptive_avg_pool2d(x, (1, 1))
    feats = x.reshape(b, c, h * w)
    return _triu(feats.bmm(feats.transpose(1, 2)) / (h * w))


def dropcov_factory(channels: int):
    conv = torch.nn.Conv1d(1, 1, kernel_size=3, padding=1, bias=False)

    def dropcov(x: Tensor) -> Tensor:
        y = F.adaptive_avg_pool2d(x, 1)
        y = conv.to(x.device)(y.squeeze(-1).transpose(-1, -2)).transpose(-1, -2).unsqueeze(-1)
        y = torch.softmax(y, dim=1)
        x = x * y.expand_as(x) + x
        b, c, h, w = x.shape
        centred = (x - F.adaptive_avg_pool2d(x, (1, 1))).reshape(b, c, h * w)
        cor = torch.sum(centred.bmm(centred.transpose(1, 2)) / (h * w), dim=2)
        yf = torch.flatten(y, 1)
        rate = torch.mul(yf, cor).sum(dim=1) / (torch.norm(yf, dim=1) * torch.norm(cor, dim=1))
        p = torch.clamp(1 - (10 / torch.tensor([float(c)]).log2()) * rate.mean(), 0, 1)
        x = F.dropout2d(x, p.item(), training=True)
        return none(x)

    return dropcov


def authors(norm: str, channels: int, textbook):
    """The authors' computation of ``norm`` as a callable (B, C, H, W) -> pooled vector."""
    table = {"isqrt": textbook, "mpn": mpn, "log": log, "mpa": mpa, "bcnn": bcnn, "none": none}
    if norm == "cbp":
        return cbp_factory(channels)
    if norm == "dropcov":
        return dropcov_factory(channels)
    return table[norm]
