"""Parameter and FLOP counts of zoo models (FLOPs counted by torch's FlopCounterMode)."""
from __future__ import annotations

import functools

import torch
from torch.utils.flop_counter import FlopCounterMode

from gcpbench.models.registry import build_architecture, model_info


@functools.lru_cache(maxsize=None)
def complexity(name: str, resolution: int = 224, num_classes: int = 1000) -> dict[str, float | int | str]:
    """``{"model", "params", "gflops", "gcp_dim", "gcp_norm"}``; GFLOPs are multiply-adds (the papers'
    convention: ResNet-50 = 4.1), counted on the meta device so nothing is allocated. Operations
    FlopCounterMode does not count (eigendecompositions, linear solves, index_add) are missing, so
    for mpn / log / mpa / cbp heads the figure is a lower bound."""
    from gcpbench.models.external import build_external, is_external, parse_name

    with torch.device("meta"):
        if is_external(name):
            model = build_external(parse_name(name), num_classes).eval()
        else:
            model = build_architecture(name, num_classes).eval()
        params = sum(p.numel() for p in model.parameters())
        counter = FlopCounterMode(display=False)
        with counter, torch.no_grad():
            model(torch.empty(1, 3, resolution, resolution))
    head = model.spec.head if hasattr(model, "spec") else model_info(name).head
    return {
        "model": name,
        "params": params,
        "gflops": counter.get_total_flops() / 2e9,
        "gcp_dim": head.dim if head.is_gcp else "-",
        "gcp_norm": head.norm if head.is_gcp else "-",
    }
