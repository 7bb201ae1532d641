"""The optimisation-landscape probe of the paper (its Figure "Lipschitzness").

At a training batch the network is cut after its stem with the zoo split (``forward_stem`` /
``forward_from_stem``; no copied model halves): ``y = stem(x)``, ``dy = dL/dy`` with ``L`` the
batch-mean cross entropy and the model in train mode. For every step size ``eta`` of a grid
the probe evaluates, through the body and head only,

* ``L(y + eta * dy)``                              -> loss landscape band (min / max),
* ``||grad_y L(y + eta * dy) - dy||``              -> gradient predictiveness band (min / max),
* ``max_eta ||grad diff|| / (eta * ||dy||)``       -> effective beta-smoothness.

Norms are Frobenius norms over the whole batch tensor. The probe does not change training:
it runs with detached parameters and *copies* of the buffers (``torch.func.functional_call``),
so BatchNorm running statistics, ``.grad`` and the optimizer are untouched; the RNG (CPU and
the model's CUDA device) is rewound to its entry state before every evaluation, so every
evaluation sees the same dropout mask (the measured function is one fixed function of ``y``)
and the RNG leaves the probe exactly as it entered. It runs in float32 with autocast off:
the gradient difference at small ``eta`` is below bfloat16 resolution.

Cost per measurement: one stem forward, then 1 + len(etas) forward passes of body and head
with an input-only backward (no weight gradients), one host sync at the end. The step sizes
are not stacked into one batch: train-mode BatchNorm would then pool statistics across
step sizes (a different function), and the GCP layer's autograd Function has no vmap rule.
"""
from __future__ import annotations

import contextlib
import math
from typing import Any, Callable, Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call

from gcpbench.errors import GcpbenchError
from gcpbench.gcp import autocast_off

LossFn = Callable[[Tensor, Tensor], Tensor]

# Paper defaults: (eta_min, eta_max) of 50 linearly spaced step sizes, and probe interval.
# ShuffleNetV2 is not in the paper: its grid starts at its base LR like the paper's two
# (ResNet 0.1, MobileNetV2 0.045) and keeps the same per-sample displacement of y as
# MobileNetV2, eta / batch (dy of a batch-mean loss scales with 1 / batch): 0.5 / 1024 and
# 16 / 1024 match 0.045 / 96 and 1.5 / 96; the max/min ratio (32) matches MobileNetV2's (33).
ETA_RANGES: dict[str, tuple[float, float]] = {
    "resnet": (0.1, 75.0),
    "mobilenetv2": (0.045, 1.5),
    "shufflenetv2": (0.5, 16.0),
}
NUM_ETA = 50
EVERY: dict[str, int] = {"resnet": 500, "mobilenetv2": 1000, "shufflenetv2": 500}


def _check_family(family: str) -> str:
    if family not in ETA_RANGES:
        raise GcpbenchError(f"unknown model family '{family}' for the landscape probe; use one of {', '.join(ETA_RANGES)}")
    return family


def default_etas(family: str, num: int = NUM_ETA) -> list[float]:
    """The paper's step-size grid for ``family``: ``num`` linearly spaced values."""
    low, high = ETA_RANGES[_check_family(family)]
    return torch.linspace(low, high, num, dtype=torch.float64).tolist()


def default_every(family: str) -> int:
    """The paper's probe interval in iterations (ResNet 500, MobileNetV2 1000)."""
    return EVERY[_check_family(family)]


def unwrap(model: nn.Module) -> nn.Module:
    """The zoo model inside DistributedDataParallel / DataParallel / torch.compile wrappers."""
    while True:
        inner = getattr(model, "module", None)
        if not isinstance(inner, nn.Module):
            inner = getattr(model, "_orig_mod", None)
        if not isinstance(inner, nn.Module):
            return model
        model = inner


class _Method(nn.Module):
    """Calls one method of ``net`` so ``functional_call`` can run stem and rest separately."""

    def __init__(self, net: nn.Module, method: str) -> None:
        super().__init__()
        self.net = net
        self.method = method

    def forward(self, x: Tensor) -> Tensor:
        return getattr(self.net, self.method)(x)


@contextlib.contextmanager
def _train_mode(net: nn.Module) -> Iterator[None]:
    """Put every module in train mode; restore each module's own flag afterwards."""
    flags = [(module, module.training) for module in net.modules()]
    net.train()
    try:
        yield
    finally:
        for module, flag in flags:
            module.training = flag


@contextlib.contextmanager
def _rewinding_rng(device: torch.device) -> Iterator[Callable[[], None]]:
    """Yield ``rewind()`` that resets the CPU (and ``device``'s CUDA) RNG to the entry state;
    the state is rewound on exit too, so the caller's random stream is untouched."""
    cpu_state = torch.get_rng_state()
    cuda_state = torch.cuda.get_rng_state(device) if device.type == "cuda" else None

    def rewind() -> None:
        torch.set_rng_state(cpu_state)
        if cuda_state is not None:
            torch.cuda.set_rng_state(cuda_state, device)

    try:
        yield rewind
    finally:
        rewind()


def _eta_tensor(etas: Sequence[float] | Tensor) -> list[float]:
    values = torch.as_tensor(etas, dtype=torch.float64).flatten()
    if values.numel() == 0 or not torch.isfinite(values).all() or (values < 0).any():
        raise GcpbenchError("the step sizes eta must be a non-empty list of finite numbers >= 0")
    return values.tolist()


def measure(
    model: nn.Module,
    images: Tensor,
    targets: Tensor,
    etas: Sequence[float] | Tensor,
    loss_fn: LossFn | None = None,
) -> dict[str, Any]:
    """Probe the landscape of ``model`` at the batch ``(images, targets)``.

    Returns ``loss`` (L(y)), ``grad_norm`` (||dy||), per-eta lists ``etas``, ``losses``,
    ``grad_diffs``, and the summaries ``loss_min``, ``loss_max``, ``grad_diff_min``,
    ``grad_diff_max``, ``beta_smoothness`` (over eta > 0; NaN if none or dy = 0),
    ``eta_min``, ``eta_max``, ``num_eta``.
    """
    net = unwrap(model)
    if not (hasattr(net, "forward_stem") and hasattr(net, "forward_from_stem")):
        raise GcpbenchError(f"{type(net).__name__} has no forward_stem/forward_from_stem: the probe needs a gcpbench zoo model")
    eta_list = _eta_tensor(etas)
    loss_fn = loss_fn or F.cross_entropy
    # Detached parameters: no weight gradients are computed or accumulated. Buffer copies:
    # train-mode BatchNorm updates the copies' running statistics, not the model's.
    state = {f"net.{name}": p.detach() for name, p in net.named_parameters()}
    state.update({f"net.{name}": b.clone() for name, b in net.named_buffers()})
    stem, rest = _Method(net, "forward_stem"), _Method(net, "forward_from_stem")

    def loss_and_grad(point: Tensor) -> tuple[Tensor, Tensor]:
        rewind()
        point = point.detach().requires_grad_()
        loss = loss_fn(functional_call(rest, state, (point,)), targets)
        (grad,) = torch.autograd.grad(loss, point)
        return loss.detach(), grad

    with _train_mode(net), _rewinding_rng(images.device) as rewind, autocast_off(images.device):
        with torch.no_grad():
            rewind()
            y = functional_call(stem, state, (images,))
        loss0, dy = loss_and_grad(y)
        losses, diffs = [], []
        for eta in eta_list:
            with torch.no_grad():
                point = torch.add(y, dy, alpha=eta)
            loss, grad = loss_and_grad(point)
            losses.append(loss)
            diffs.append(torch.linalg.vector_norm(grad - dy))
        grad_norm = torch.linalg.vector_norm(dy)
        # one device->host transfer for everything
        values = torch.stack([loss0, grad_norm, *losses, *diffs]).double().cpu().tolist()
    return summarise(eta_list, values[2 : 2 + len(eta_list)], values[2 + len(eta_list) :], values[0], values[1])


def _reduce(fn: Callable[[list[float]], float], values: list[float]) -> float:
    """``fn(values)``, NaN when empty or when any value is NaN (a diverged landscape shows)."""
    return float("nan") if not values or any(math.isnan(v) for v in values) else fn(values)


def summarise(
    etas: list[float], losses: list[float], grad_diffs: list[float], loss: float, grad_norm: float
) -> dict[str, Any]:
    """The per-measurement record: bands over eta and the effective beta-smoothness."""
    ratios = [d / (e * grad_norm) for e, d in zip(etas, grad_diffs) if e > 0 and grad_norm > 0]
    return {
        "loss": loss,
        "grad_norm": grad_norm,
        "etas": etas,
        "losses": losses,
        "grad_diffs": grad_diffs,
        "loss_min": _reduce(min, losses),
        "loss_max": _reduce(max, losses),
        "grad_diff_min": _reduce(min, grad_diffs),
        "grad_diff_max": _reduce(max, grad_diffs),
        "beta_smoothness": _reduce(max, ratios),
        "eta_min": min(etas),
        "eta_max": max(etas),
        "num_eta": len(etas),
    }
