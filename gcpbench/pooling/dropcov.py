"""``dropcov``: DropCov's adaptive channel dropout before the covariance (Wang, Gao, Zhang, Xie,
Li, Hu, "DropCov: A Simple yet Effective Method for Improving Deep Architectures", NeurIPS
2022), as the authors' CNN code (mingzeG/DropCov ``CNNs/models/ResNet_ACD.py``: ``forward``
and ``balance_rate``; ``CNNs/representation/eca_layer.py``: ``eca_layer``).

In training mode only, on the reduced features x (B, C, H, W):

1. ECA attention: y = softmax over channels of a 1-D convolution (kernel 3, padding 1, no bias)
   of the channel means; x <- x * y + x;
2. the rate: Sigma of the new x (centred, / M), its row sums r = Sigma 1;
   rate = mean over the batch of cos(y, r) (torch's cosine similarity, eps 1e-8: a dead map
   has cos 0 where the authors' formula divides by 0);
   p = clamp(1 - 10 / log2(C) * rate, 0, 1) (a plain number: no gradient flows through it,
   as ``b_rate.item()`` in the authors' code);
3. ``Dropout2d(p)``: whole channels zeroed per sample, the others scaled by 1 / (1 - p).

Then, in both modes, the upper triangle of the covariance with no post-normalisation. In eval
mode neither the attention nor the dropout runs (free at inference); the attention's 3 weights
are still parameters (``eca.weight``).
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from gcpbench.gcp import triu_size
from gcpbench.pooling.common import as_features, autocast_off, covariance, triu_vector

ECA_KERNEL = 3
RATE_FACTOR = 10.0


def eca_attention(conv: nn.Conv1d, x: Tensor) -> Tensor:
    """ECA's channel weights (B, C): softmax of the 1-D convolution of the channel means."""
    pooled = x.mean(dim=(2, 3)).unsqueeze(1)  # (B, 1, C)
    return torch.softmax(conv(pooled).squeeze(1), dim=1)


def drop_rate(x: Tensor, attention: Tensor) -> float:
    """p = clamp(1 - 10 / log2(C) * mean_b cos(y_b, Sigma_b 1), 0, 1) (no gradient)."""
    with torch.no_grad():
        row_sums = covariance(x.reshape(x.shape[0], x.shape[1], -1)).sum(dim=2)
        rate = F.cosine_similarity(attention, row_sums, dim=1).mean()
        p = 1.0 - RATE_FACTOR / math.log2(x.shape[1]) * rate
        return float(p.clamp(0.0, 1.0))


class DropCov(nn.Module):
    """Covariance pooling with DropCov's adaptive channel dropout in training mode."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = dim
        self.output_dim = triu_size(dim)
        self.eca = nn.Conv1d(1, 1, kernel_size=ECA_KERNEL, padding=(ECA_KERNEL - 1) // 2, bias=False)
        self.last_rate: float | None = None  # the last training batch's p, for inspection

    def forward(self, x: Tensor) -> Tensor:
        feats = as_features(x, "dropcov").reshape(x.shape)
        with autocast_off(x.device):
            if self.training:
                attention = eca_attention(self.eca, feats)
                feats = feats * attention[:, :, None, None] + feats
                self.last_rate = drop_rate(feats, attention)
                feats = F.dropout2d(feats, self.last_rate, training=True)
            return triu_vector(covariance(feats.reshape(x.shape[0], x.shape[1], -1)))

    def extra_repr(self) -> str:
        return f"dim={self.dim}, eca_kernel={ECA_KERNEL}, out={self.output_dim}"
