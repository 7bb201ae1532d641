"""The forward contract shared by every zoo model: stem -> body -> head.

Splitting the forward this way lets tools (the landscape probe, detection backbones) cut a
model at its stem without copying any model definition.
"""
from __future__ import annotations

from torch import Tensor, nn


class ZooForward(nn.Module):
    """Mixin: ``forward(x) = forward_head(forward_body(forward_stem(x)))``."""

    zoo_name: str = ""

    def forward_stem(self, x: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward_body(self, x: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward_head(self, x: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward_from_stem(self, y: Tensor) -> Tensor:
        """Everything after the stem: logits from the stem's output ``y``."""
        return self.forward_head(self.forward_body(y))

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_from_stem(self.forward_stem(x))
