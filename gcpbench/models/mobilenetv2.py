"""MobileNetV2 (torchvision layout) with a GAP or GCP head.

GCP keeps the strides (7x7 at 224); after the final 1280-channel ConvBNReLU6 comes
``dimension_reduction`` (1x1 conv -> BN -> ReLU6), GCP, then ``classifier`` = Dropout(0.2), Linear.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn
from torchvision.models import mobilenetv2 as tv_mobilenetv2

from gcpbench.models.base import ZooForward
from gcpbench.models.heads import HeadSpec, make_gcp, reduction_block

STEM_LAYERS = 1  # features[0]: the first ConvBNReLU6


class MobileNetV2(ZooForward, tv_mobilenetv2.MobileNetV2):
    """torchvision MobileNetV2 whose head is a parameter (GAP or GCP)."""

    def __init__(self, head: HeadSpec, num_classes: int = 1000) -> None:
        super().__init__(num_classes=num_classes)
        self.head = head
        if head.is_gcp:
            self.dimension_reduction = reduction_block(self.last_channel, head.dim, nn.ReLU6)
            self.gcp = make_gcp(head)
            self.classifier = nn.Sequential(nn.Dropout(p=0.2), nn.Linear(head.pooled_features, num_classes))
            nn.init.normal_(self.classifier[1].weight, 0, 0.01)
            nn.init.zeros_(self.classifier[1].bias)

    def forward_stem(self, x: Tensor) -> Tensor:
        return self.features[:STEM_LAYERS](x)

    def forward_body(self, x: Tensor) -> Tensor:
        return self.features[STEM_LAYERS:](x)

    def forward_head(self, x: Tensor) -> Tensor:
        if self.head.is_gcp:
            x = self.gcp(self.dimension_reduction(x))
        else:
            x = torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1)
        return self.classifier(x)
