"""The two heads every zoo model can carry: GAP, or a reduction layer followed by GCP (any
normalisation of the GCP family, :mod:`gcpbench.pooling`; iSQRT-COV by default)."""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Mapping

from torch import nn

from gcpbench.pooling.layer import GCP
from gcpbench.pooling.registry import DEFAULT_NORM, method, non_default, output_size


@dataclass(frozen=True)
class HeadSpec:
    """Which head a model carries: ``kind`` is ``gap`` or ``gcp``; ``dim`` the GCP size;
    ``norm`` the GCP normalisation; ``options`` the method options that differ from their
    defaults, as sorted (name, value) pairs (a name cannot say them; checkpoints store them)."""

    kind: str = "gap"
    dim: int = 256
    iterations: int = 5
    norm: str = DEFAULT_NORM
    options: tuple[tuple[str, Any], ...] = ()

    @property
    def is_gcp(self) -> bool:
        return self.kind == "gcp"

    @property
    def pooled_features(self) -> int | None:
        """Length of the pooled vector for GCP heads (None for GAP: the backbone decides)."""
        return output_size(self.norm, self.dim, dict(self.options)) if self.is_gcp else None

    @property
    def suffix(self) -> str:
        """The name suffix of a GCP head: ``_gcp``, ``_gcp128``, ``_gcp_mpn``, ``_gcp128_log``."""
        if not self.is_gcp:
            return "_gap"
        return ("_gcp" if self.dim == 256 else f"_gcp{self.dim}") + ("" if self.norm == DEFAULT_NORM else f"_{self.norm}")

    def with_options(self, options: Mapping[str, Any] | None) -> "HeadSpec":
        """This head with ``options`` (checked against its normalisation; defaults dropped)."""
        if not options:
            return self
        if not self.is_gcp:
            from gcpbench.errors import GcpbenchError

            raise GcpbenchError(f"GCP options ({', '.join(options)}) apply to GCP heads only")
        return replace(self, options=tuple(sorted(non_default(self.norm, options).items())))

    def gcp_options(self) -> dict[str, Any]:
        """Every option of the head's normalisation, defaults filled in (for records)."""
        return {**dict(method(self.norm).options), **dict(self.options)} if self.is_gcp else {}


def reduction_block(in_channels: int, dim: int, activation: type[nn.Module], *, kaiming_fan_out: bool = True) -> nn.Sequential:
    """1x1 conv (no bias) -> BN -> activation: the layer in front of GCP.

    The authors' GCP ResNets and MobileNetV2s create it before their init loop, so its conv
    gets ``kaiming_normal_(mode='fan_out')``: std sqrt(2 / D), 0.088 for D = 256 (the default
    here); their ShuffleNetV2 has no init loop, so it keeps PyTorch's default
    (``kaiming_fan_out=False``). BN: weight 1, bias 0 either way (docs/design.md section 4)."""
    conv = nn.Conv2d(in_channels, dim, kernel_size=1, bias=False)
    if kaiming_fan_out:
        nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
    return nn.Sequential(conv, nn.BatchNorm2d(dim), activation(inplace=True))


def make_gcp(spec: HeadSpec) -> GCP:
    """The covariance pooling module for ``spec``."""
    options = dict(spec.options)
    if spec.norm == DEFAULT_NORM:
        options.setdefault("iterations", spec.iterations)
    return GCP(spec.dim, spec.norm, **options)
