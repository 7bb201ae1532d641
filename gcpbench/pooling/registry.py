"""The GCP family by name: each method's module, options (with defaults) and output size.

``isqrt`` (iSQRT-COV, :mod:`gcpbench.gcp`) is the default; the others are in this package."""
from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Callable, Mapping

from torch import nn

from gcpbench.errors import GcpbenchError
from gcpbench.gcp import triu_size

DEFAULT_NORM = "isqrt"


@dataclass(frozen=True)
class Method:
    """One normalisation: ``name`` (the CLI / zoo spelling), ``title`` (papers' name),
    ``options`` (name -> default; the type of the default is the option's type)."""

    name: str
    title: str
    options: Mapping[str, Any]
    factory: Callable[..., nn.Module]
    output_dim: Callable[[int, Mapping[str, Any]], int]


def _isqrt(dim: int, iterations: int) -> nn.Module:
    from gcpbench.gcp import GCP as ISqrtGCP

    return ISqrtGCP(dim, iterations=iterations)  # precision: gcpbench.gcp.set_gcp_precision


def _lazy(module: str, cls: str) -> Callable[..., nn.Module]:
    def build(dim: int, **options: Any) -> nn.Module:
        import importlib

        return getattr(importlib.import_module(f"gcpbench.pooling.{module}"), cls)(dim, **options)

    return build


def _triu(dim: int, options: Mapping[str, Any]) -> int:
    return triu_size(dim)


def _method(name: str, title: str, factory, options: dict[str, Any] | None = None, output_dim=_triu) -> Method:
    return Method(name, title, MappingProxyType(options or {}), factory, output_dim)


METHODS: dict[str, Method] = {m.name: m for m in (
    _method("isqrt", "iSQRT-COV", _isqrt, {"iterations": 5}),
    _method("mpn", "MPN-COV", _lazy("mpn", "MPNCov"), {"power": 0.5, "eps": 1e-12}),
    _method("log", "O2P (log)", _lazy("matlog", "LogCov"), {"eps": 1e-3}),
    _method("mpa", "MPA-Lya", _lazy("mpa", "MPACov")),
    _method("bcnn", "B-CNN", _lazy("bcnn", "BilinearPool"), output_dim=lambda dim, o: dim * dim),
    _method("cbp", "CBP (Tensor Sketch)", _lazy("cbp", "CompactBilinearPool"), {"proj_dim": 8192, "seed": 1},
            output_dim=lambda dim, o: int(o.get("proj_dim", 8192))),
    _method("none", "plain covariance", _lazy("plain", "PlainCov")),
    _method("dropcov", "DropCov", _lazy("dropcov", "DropCov")),
)}
NORMS: tuple[str, ...] = tuple(METHODS)


def method(norm: str) -> Method:
    """The method called ``norm``; an unknown name raises one line listing the valid ones."""
    found = METHODS.get(str(norm).lower())
    if found is None:
        raise GcpbenchError(f"unknown GCP normalisation '{norm}': choose from {', '.join(NORMS)}")
    return found


def check_options(norm: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """``options`` checked against ``norm``'s (unknown names and wrong types raise one line),
    completed with the defaults."""
    spec = method(norm)
    checked = dict(spec.options)
    for key, value in options.items():
        if key not in spec.options:
            valid = ", ".join(spec.options) or "none"
            raise GcpbenchError(f"GCP normalisation '{spec.name}' has no option '{key}' (its options: {valid})")
        default = spec.options[key]
        try:
            checked[key] = type(default)(value)
        except (TypeError, ValueError):
            raise GcpbenchError(f"option '{key}' of '{spec.name}' must be a {type(default).__name__}, got {value!r}") from None
        if isinstance(default, float) and not checked[key] > 0:
            raise GcpbenchError(f"option '{key}' of '{spec.name}' must be positive, got {value}")
    if spec.name == "mpn" and not 0 < checked["power"] <= 1:
        raise GcpbenchError(f"the MPN power must be in (0, 1], got {checked['power']}")
    if spec.name == "cbp" and checked["proj_dim"] < 1:
        raise GcpbenchError(f"the CBP projection size must be positive, got {checked['proj_dim']}")
    if spec.name == "isqrt" and checked["iterations"] < 1:
        raise GcpbenchError(f"iSQRT-COV needs at least 1 iteration, got {checked['iterations']}")
    return checked


def non_default(norm: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """The options of ``norm`` that differ from its defaults (what a name cannot say)."""
    spec = method(norm)
    return {k: v for k, v in check_options(norm, options).items() if v != spec.options[k]}


def output_size(norm: str, dim: int, options: Mapping[str, Any] | None = None) -> int:
    """Length of the pooled vector of ``norm`` on ``dim`` channels."""
    return method(norm).output_dim(dim, check_options(norm, options or {}))


def make_pool(norm: str, dim: int, **options: Any) -> nn.Module:
    """The pooling module of ``norm`` on ``dim`` channels (options checked, defaults filled)."""
    return method(norm).factory(dim, **check_options(norm, options))
