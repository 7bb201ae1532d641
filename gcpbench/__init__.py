"""gcpbench: global covariance pooling (GCP) research suite.

Public API (imported lazily, so ``gcpbench --help`` does not load torch)::

    from gcpbench import isqrt_cov, GCP, covariance_pool, build, list_models, benchmark

``GCP(dim, norm="isqrt", **options)`` and ``covariance_pool(x, norm=..., **options)`` cover the
whole GCP family (:mod:`gcpbench.pooling`); ``isqrt_cov`` is the iSQRT-COV function itself.
"""
from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"
_EXPORTS = {
    "GCP": "gcpbench.pooling",
    "covariance_pool": "gcpbench.pooling",
    "isqrt_cov": "gcpbench.gcp",
    "triu_size": "gcpbench.gcp",
    "set_gcp_precision": "gcpbench.gcp",
    "build": "gcpbench.models",
    "list_models": "gcpbench.models",
    "benchmark": "gcpbench.api",
    "GcpbenchError": "gcpbench.errors",
}
__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'gcpbench' has no attribute {name!r}")
