"""The GCP family: iSQRT-COV (default), MPN-COV, O2P log, MPA-Lya, B-CNN, CBP, plain
covariance and DropCov behind one module, ``GCP(dim, norm=..., **options)``, and one function,
``covariance_pool(x, norm=..., **options)``; one module per method, ``registry`` names them."""
from gcpbench.pooling.layer import GCP, covariance_pool
from gcpbench.pooling.registry import DEFAULT_NORM, METHODS, NORMS, check_options, make_pool, method, output_size

__all__ = ["DEFAULT_NORM", "GCP", "METHODS", "NORMS", "check_options", "covariance_pool", "make_pool", "method",
           "output_size"]
