"""``GCP(dim, norm=..., **options)`` and ``covariance_pool(x, norm=..., **options)``: one
spelling for every member of the GCP family (:mod:`gcpbench.pooling.registry`)."""
from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from gcpbench.errors import GcpbenchError
from gcpbench.pooling.registry import DEFAULT_NORM, check_options, method


class GCP(nn.Module):
    """Global covariance pooling with normalisation ``norm`` (default ``isqrt``, iSQRT-COV).

    ``options`` are the method's (``iterations`` for isqrt, ``power``/``eps`` for
    mpn, ``eps`` for log, ``proj_dim``/``seed`` for cbp); ``output_dim`` is the pooled length.
    The method's module is ``self.pool`` (its parameters and buffers: ``pool.*``)."""

    def __init__(self, dim: int, norm: str = DEFAULT_NORM, **options: Any) -> None:
        super().__init__()
        spec = method(norm)
        self.dim = dim
        self.norm = spec.name
        self.options = check_options(spec.name, options)
        self.pool = spec.factory(dim, **self.options)
        self.output_dim = int(self.pool.output_dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.pool(x)

    def extra_repr(self) -> str:
        return f"norm={self.norm}"


def covariance_pool(x: Tensor, norm: str = DEFAULT_NORM, **options: Any) -> Tensor:
    """Pool ``x`` (B, C, H, W) with ``norm``: the inference-time computation (for ``dropcov``
    the plain covariance's upper triangle: its attention and dropout run in training only)."""
    if x.dim() != 4:
        raise GcpbenchError(f"covariance_pool expects (B, C, H, W), got shape {tuple(x.shape)}")
    return GCP(x.shape[1], norm, **options).to(x.device).eval()(x)
