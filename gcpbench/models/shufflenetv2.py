"""ShuffleNetV2 x1.0 (torchvision layout) with a GAP or GCP head.

GCP keeps the strides (7x7 at 224); after ``conv5`` (1024 channels) comes
``dimension_reduction`` (1x1 conv -> BN -> ReLU6), GCP, then ``fc``.
"""
from __future__ import annotations

from torch import Tensor, nn
from torchvision.models import shufflenetv2 as tv_shufflenetv2

from gcpbench.models.base import ZooForward
from gcpbench.models.heads import HeadSpec, make_gcp, reduction_block

STAGES_REPEATS = [4, 8, 4]
STAGES_OUT_CHANNELS = [24, 116, 232, 464, 1024]  # x1.0


class ShuffleNetV2(ZooForward, tv_shufflenetv2.ShuffleNetV2):
    """torchvision ShuffleNetV2 x1.0 whose head is a parameter (GAP or GCP)."""

    def __init__(self, head: HeadSpec, num_classes: int = 1000) -> None:
        super().__init__(STAGES_REPEATS, STAGES_OUT_CHANNELS, num_classes=num_classes)
        self.head = head
        if head.is_gcp:
            self.dimension_reduction = reduction_block(STAGES_OUT_CHANNELS[-1], head.dim, nn.ReLU6,
                                                       kaiming_fan_out=False)  # the authors': PyTorch defaults
            self.gcp = make_gcp(head)
            self.fc = nn.Linear(head.pooled_features, num_classes)

    def forward_stem(self, x: Tensor) -> Tensor:
        return self.maxpool(self.conv1(x))

    def forward_body(self, x: Tensor) -> Tensor:
        return self.conv5(self.stage4(self.stage3(self.stage2(x))))

    def forward_head(self, x: Tensor) -> Tensor:
        x = self.gcp(self.dimension_reduction(x)) if self.head.is_gcp else x.mean([2, 3])
        return self.fc(x)
