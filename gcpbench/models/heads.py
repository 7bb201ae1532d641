"""The two heads every zoo model can carry: GAP, or a reduction layer followed by GCP."""
from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from gcpbench.gcp import GCP, triu_size


@dataclass(frozen=True)
class HeadSpec:
    """Which head a model carries: ``kind`` is ``gap`` or ``gcp``; ``dim`` the GCP size."""

    kind: str = "gap"
    dim: int = 256
    iterations: int = 5

    @property
    def is_gcp(self) -> bool:
        return self.kind == "gcp"

    @property
    def pooled_features(self) -> int | None:
        """Length of the pooled vector for GCP heads (None for GAP: the backbone decides)."""
        return triu_size(self.dim) if self.is_gcp else None


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
    """The parameter-free covariance pooling module for ``spec``."""
    return GCP(spec.dim, iterations=spec.iterations)
