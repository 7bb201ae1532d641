"""``GCPResNet``: mmdet's ResNet with the GAP / GCP_D / GCP_M readings of the paper.

- ``gap``:   a standard ResNet (layer4 down-samples), ImageNet GAP weights.
- ``gcp_d``: GCP-pretrained weights, layer4's first block down-samples again (stride 2).
- ``gcp_m``: GCP-pretrained weights with layer4 kept at stride 1 as trained, followed by a
  2x2 max-pooling (stride 2) on C5.
Every mode returns C2-C5 at strides 4 / 8 / 16 / 32 for FPN.
"""
from __future__ import annotations

from typing import Any

from mmdet.models.backbones import ResNet
from mmdet.registry import MODELS
from mmengine.logging import print_log
from torch import Tensor, nn

from gcpbench.detection.config import MODES
from gcpbench.errors import GcpbenchError
from gcpbench.detection.weights import load_backbone_weights

STAGE_STRIDES: dict[str, tuple[int, int, int, int]] = {"gap": (1, 2, 2, 2), "gcp_d": (1, 2, 2, 2), "gcp_m": (1, 2, 2, 1)}


def split_pretrained(pretrained: str | None, init_cfg: Any) -> tuple[str | None, str, Any]:
    """(weights source, key prefix, remaining init_cfg) from mmdet's two ways to name weights."""
    if pretrained is not None and init_cfg is not None:
        raise GcpbenchError("give the backbone weights either as `pretrained` or as init_cfg=dict(type='Pretrained', ...), not both")
    if pretrained is not None:
        return str(pretrained), "", None
    cfgs = init_cfg if isinstance(init_cfg, (list, tuple)) else [init_cfg] if init_cfg is not None else []
    pretrained_cfgs = [c for c in cfgs if c.get("type") == "Pretrained"]
    if not pretrained_cfgs:
        return None, "", init_cfg
    rest = [c for c in cfgs if c.get("type") != "Pretrained"]
    return str(pretrained_cfgs[0]["checkpoint"]), pretrained_cfgs[0].get("prefix", "") or "", rest or None


@MODELS.register_module()
class GCPResNet(ResNet):
    """ResNet-18/34/50/101 whose last stage follows ``mode`` (gap | gcp_d | gcp_m).

    ``pretrained`` / ``init_cfg=dict(type='Pretrained', checkpoint=...)`` name a gcpbench,
    original iSQRT-COV or torchvision ResNet checkpoint: the ImageNet head (reduction layer,
    GCP, classifier) is dropped, every backbone tensor must be present with its shape.
    Other arguments are mmdet ``ResNet``'s (``frozen_stages``, ``norm_eval``, ...).
    """

    def __init__(self, depth: int, mode: str = "gap", pretrained: str | None = None, init_cfg: Any = None, **kwargs: Any) -> None:
        if mode not in MODES:
            raise GcpbenchError(f"unknown backbone mode '{mode}': choose one of {', '.join(MODES)}")
        if "strides" in kwargs or "dilations" in kwargs:
            raise GcpbenchError("GCPResNet sets the stage strides from `mode`; remove `strides` / `dilations` from the config")
        if kwargs.get("num_stages", 4) != 4:
            raise GcpbenchError("GCPResNet needs all 4 stages (num_stages=4)")
        weights, prefix, init_cfg = split_pretrained(pretrained, init_cfg)
        super().__init__(depth, strides=STAGE_STRIDES[mode], init_cfg=init_cfg, **kwargs)
        self.mode = mode
        self.weights_source = weights
        self.weights_prefix = prefix
        self.c5_pool = nn.MaxPool2d(kernel_size=2, stride=2, ceil_mode=True) if mode == "gcp_m" else None

    def init_weights(self) -> None:
        """mmdet's random initialisation, then the named backbone weights (if any)."""
        super().init_weights()
        if self.weights_source is not None:
            dropped = load_backbone_weights(self, self.weights_source, self.depth, self.weights_prefix)
            heads = sorted({k.split(".")[0] for k in dropped})
            print_log(f"GCPResNet-{self.depth} ({self.mode}): loaded backbone weights from {self.weights_source}"
                      + (f"; dropped head tensors of {', '.join(heads)}" if heads else ""), logger="current")

    def train(self, mode: bool = True) -> "GCPResNet":
        """mmdet's ``train`` (frozen stages, ``norm_eval``), returning ``self`` like ``nn.Module``."""
        super().train(mode)
        return self

    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        outs = super().forward(x)
        if self.c5_pool is not None and 3 in self.out_indices:
            outs = outs[:-1] + (self.c5_pool(outs[-1]),)
        return outs
