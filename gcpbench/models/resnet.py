"""ResNet-18/34/50/101 with a GAP or GCP head (torchvision blocks and key names).

GCP variants follow the original iSQRT-COV definition: layer4 keeps stride 1 (14x14 at 224),
then ``layer_reduce`` (1x1 conv, no bias) -> ``layer_reduce_bn`` -> ReLU -> GCP -> ``fc``.
Key names equal the released checkpoints' (without DataParallel's ``module.``).
"""
from __future__ import annotations

import torch
from torch import Tensor, nn
from torchvision.models import resnet as tv_resnet

from gcpbench.models.base import ZooForward
from gcpbench.models.heads import HeadSpec, make_gcp, reduction_block

DEPTHS: dict[int, tuple[type[nn.Module], list[int]]] = {
    18: (tv_resnet.BasicBlock, [2, 2, 2, 2]),
    34: (tv_resnet.BasicBlock, [3, 4, 6, 3]),
    50: (tv_resnet.Bottleneck, [3, 4, 6, 3]),
    101: (tv_resnet.Bottleneck, [3, 4, 23, 3]),
}


def set_first_block_stride(layer: nn.Sequential, stride: int) -> None:
    """Set the down-sampling stride of a ResNet stage's first block (conv and shortcut)."""
    block = layer[0]
    conv = block.conv2 if isinstance(block, tv_resnet.Bottleneck) else block.conv1
    conv.stride = (stride, stride)
    if block.downsample is not None:
        block.downsample[0].stride = (stride, stride)
    block.stride = stride


class ResNet(ZooForward, tv_resnet.ResNet):
    """torchvision ResNet whose head is a parameter (GAP or GCP)."""

    def __init__(self, depth: int, head: HeadSpec, num_classes: int = 1000) -> None:
        block, layers = DEPTHS[depth]
        super().__init__(block, layers, num_classes=num_classes)
        self.depth = depth
        self.head = head
        if head.is_gcp:
            set_first_block_stride(self.layer4, 1)
            out_channels = 512 * block.expansion
            reduce = reduction_block(out_channels, head.dim, nn.ReLU)
            self.layer_reduce, self.layer_reduce_bn, self.layer_reduce_relu = reduce
            self.gcp = make_gcp(head)
            self.fc = nn.Linear(head.pooled_features, num_classes)
            del self.avgpool

    def forward_stem(self, x: Tensor) -> Tensor:
        return self.maxpool(self.relu(self.bn1(self.conv1(x))))

    def forward_body(self, x: Tensor) -> Tensor:
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    def forward_head(self, x: Tensor) -> Tensor:
        if self.head.is_gcp:
            x = self.gcp(self.layer_reduce_relu(self.layer_reduce_bn(self.layer_reduce(x))))
        else:
            x = torch.flatten(self.avgpool(x), 1)
        return self.fc(x)
