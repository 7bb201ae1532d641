"""gcpbench: global covariance pooling (GCP) research suite.

Public API::

    from gcpbench import isqrt_cov, GCP, build, list_models
"""
from gcpbench.gcp import GCP, isqrt_cov, triu_size
from gcpbench.models import build, list_models  # noqa: E402

__all__ = ["GCP", "isqrt_cov", "triu_size", "build", "list_models"]
__version__ = "0.1.0"
