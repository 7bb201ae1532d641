"""The final evaluation of a fine-tuning: every test image on the centre crop and its mirror,
the two crops' logits averaged (as fast-MPN-COV's ``main.py`` fuses its crops), top-1 / top-5."""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn


class ViewAverage(nn.Module):
    """``net`` on a batch of views ``(B, V, C, H, W)``: the mean of the V views' logits."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net
        self.train(net.training)  # evaluation restores this mode afterwards: it must be ``net``'s own

    def forward(self, views: Tensor) -> Tensor:
        batch, count = views.shape[:2]
        logits = self.net(views.flatten(0, 1))
        return logits.float().view(batch, count, -1).mean(dim=1)


def evaluate_views(net: nn.Module, loader: Any, device: torch.device, *, amp: bool = False, progress: bool = True,
                   distributed: bool = False) -> dict[str, Any]:
    """Top-1 / top-5 / loss / images of ``net`` on a loader of view stacks (see :class:`ViewAverage`)."""
    from gcpbench.evaluate import evaluate_classification

    return evaluate_classification(ViewAverage(net), loader, device, amp=amp, progress=progress,
                                   distributed=distributed, description="evaluating (centre crop + mirror)")
