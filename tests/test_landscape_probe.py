"""The landscape probe: formulas against closed forms, eta -> 0 limits, and no side effects."""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from gcpbench.errors import GcpbenchError
from gcpbench.landscape import default_etas, default_every, measure
from gcpbench.landscape.probe import unwrap
from gcpbench.models import build




def batch(size: int = 32, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(4, 3, size, size, generator=gen), torch.tensor([0, 1, 2, 3])


class Toy(nn.Module):
    """Stem = identity, rest = a linear classifier: the landscape has a closed form."""

    def __init__(self, weight: torch.Tensor) -> None:
        super().__init__()
        self.weight = nn.Parameter(weight)

    def forward_stem(self, x: torch.Tensor) -> torch.Tensor:
        return x.clone()

    def forward_from_stem(self, y: torch.Tensor) -> torch.Tensor:
        return y @ self.weight.T


def closed_form(w: np.ndarray, y: np.ndarray, t: np.ndarray, eta: float) -> tuple[float, np.ndarray]:
    """Batch-mean cross entropy of logits W y and its gradient in y (numpy, float64)."""
    logits = y @ w.T
    shifted = logits - logits.max(1, keepdims=True)
    probs = np.exp(shifted) / np.exp(shifted).sum(1, keepdims=True)
    onehot = np.eye(w.shape[0])[t]
    loss = float(np.mean(np.log(np.exp(shifted).sum(1)) - shifted[np.arange(len(t)), t]))
    return loss, (probs - onehot) @ w / len(t)


def test_measure_matches_closed_form_float64() -> None:
    rng = np.random.default_rng(3)
    w, y, t = rng.normal(size=(3, 5)), rng.normal(size=(4, 5)), np.array([0, 2, 1, 2])
    etas = [0.0, 0.5, 2.0, 7.5]
    result = measure(Toy(torch.tensor(w)), torch.tensor(y), torch.tensor(t), etas)

    loss0, dy = closed_form(w, y, t, 0.0)
    losses, diffs = [], []
    for eta in etas:
        loss, grad = closed_form(w, y + eta * dy, t, eta)
        losses.append(loss)
        diffs.append(np.linalg.norm(grad - dy))
    beta = max(d / (e * np.linalg.norm(dy)) for e, d in zip(etas, diffs) if e > 0)
    assert result["loss"] == pytest.approx(loss0, abs=1e-13)
    assert result["grad_norm"] == pytest.approx(np.linalg.norm(dy), rel=1e-12)
    np.testing.assert_allclose(result["losses"], losses, rtol=1e-12)
    np.testing.assert_allclose(result["grad_diffs"], diffs, rtol=1e-10, atol=1e-15)
    assert result["loss_min"] == pytest.approx(min(losses), rel=1e-12)
    assert result["loss_max"] == pytest.approx(max(losses), rel=1e-12)
    assert result["grad_diff_min"] == 0.0 and result["grad_diff_max"] == pytest.approx(max(diffs), rel=1e-10)
    assert result["beta_smoothness"] == pytest.approx(beta, rel=1e-10)
    assert (result["eta_min"], result["eta_max"], result["num_eta"]) == (0.0, 7.5, 4)
    # the loss really moves along the grid (the test is not vacuous)
    assert max(losses) - min(losses) > 0.1 and beta > 0.01


@pytest.mark.parametrize("name", ["resnet18_gcp", "mobilenetv2_gap"])
def test_eta_zero_gives_training_loss_and_no_gradient_difference(name: str) -> None:
    torch.manual_seed(0)
    model = build(name, num_classes=4).train()
    images, targets = batch()
    reference = copy.deepcopy(model)
    torch.manual_seed(7)  # MobileNetV2 has dropout: the probe must see the training mask
    train_loss = F.cross_entropy(reference(images), targets).item()

    torch.manual_seed(7)
    result = measure(model, images, targets, [0.0, 1e-7, 0.5])
    assert result["loss"] == pytest.approx(train_loss, rel=1e-6)
    assert result["losses"][0] == pytest.approx(train_loss, rel=1e-6)
    # eta -> 0: L(y + eta dy) = L(y) + eta ||dy||^2 + O(eta^2), so the loss tends to the
    # training loss along the measured gradient (32 px, batch 4: MobileNetV2 is very sharp)
    first_order = 1e-7 * result["grad_norm"] ** 2
    assert abs(result["losses"][1] - train_loss - first_order) < 0.1 * first_order + 1e-5
    assert result["grad_diffs"][0] == 0.0  # same point, same dropout mask: exactly the same gradient
    assert result["grad_diffs"][2] > 0.0 and result["grad_norm"] > 0.0

    # eta = 0.5 through ordinary modules (a copy: its BN statistics may change) agrees
    torch.manual_seed(7)
    y = reference.forward_stem(images).detach().requires_grad_()
    torch.manual_seed(7)
    loss = F.cross_entropy(reference.forward_from_stem(y), targets)
    (dy,) = torch.autograd.grad(loss, y)
    torch.manual_seed(7)
    moved = (y + 0.5 * dy).detach().requires_grad_()
    loss_eta = F.cross_entropy(reference.forward_from_stem(moved), targets)
    (grad_eta,) = torch.autograd.grad(loss_eta, moved)
    assert result["losses"][2] == pytest.approx(loss_eta.item(), rel=1e-5)
    assert result["grad_diffs"][2] == pytest.approx((grad_eta - dy).norm().item(), rel=1e-4)


def train_steps(model: nn.Module, data: list[tuple[torch.Tensor, torch.Tensor]], probe: bool) -> torch.optim.Optimizer:
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-4)
    for images, targets in data:
        optimizer.zero_grad()
        loss = F.cross_entropy(model(images), targets)
        loss.backward()
        if probe:  # where the trainer calls it: after backward, before the optimizer step
            measure(model, images, targets, [0.0, 1.0])
        optimizer.step()
    return optimizer


@pytest.mark.parametrize("name", ["resnet18_gap", "mobilenetv2_gap"])
def test_probe_leaves_training_bit_identical(name: str) -> None:
    data = [batch(seed=s) for s in range(3)]
    runs = []
    for probe in (False, True):
        torch.manual_seed(1)
        model = build(name, num_classes=4).train()
        initial = copy.deepcopy(model.state_dict())
        optimizer = train_steps(model, data, probe)
        runs.append((model, optimizer, torch.get_rng_state(), initial))
    (plain, opt_plain, rng_plain, init), (probed, opt_probed, rng_probed, _) = runs

    for key, value in plain.state_dict().items():
        assert torch.equal(value, probed.state_dict()[key]), key
        if value.is_floating_point() and "running" in key:
            assert not torch.equal(value, init[key]), f"{key} never changed: the comparison is vacuous"
    for (key, p), q in zip(plain.named_parameters(), probed.parameters()):
        assert torch.equal(p.grad, q.grad), key
    state_plain, state_probed = opt_plain.state_dict(), opt_probed.state_dict()
    assert state_plain["param_groups"] == state_probed["param_groups"]
    for index, entry in state_plain["state"].items():
        assert torch.equal(entry["momentum_buffer"], state_probed["state"][index]["momentum_buffer"])
    assert torch.equal(rng_plain, rng_probed)
    assert all(m.training for m in probed.modules())


def test_probe_restores_eval_mode_and_rng() -> None:
    model = build("resnet18_gap", num_classes=4).eval()
    model.layer1.train()
    flags = [m.training for m in model.modules()]
    images, targets = batch()
    state = torch.get_rng_state()
    measure(model, images, targets, [0.2])
    assert [m.training for m in model.modules()] == flags
    assert torch.equal(torch.get_rng_state(), state)


def test_paper_defaults_and_bad_input() -> None:
    resnet = default_etas("resnet")
    assert len(resnet) == 50 and resnet[0] == pytest.approx(0.1) and resnet[-1] == pytest.approx(75.0)
    assert resnet[1] - resnet[0] == pytest.approx((75 - 0.1) / 49)
    mobile = default_etas("mobilenetv2")
    assert (mobile[0], mobile[-1]) == (pytest.approx(0.045), pytest.approx(1.5))
    shuffle = default_etas("shufflenetv2")
    # per-sample displacement eta / batch equals MobileNetV2's (batch 1024 vs 96)
    assert shuffle[-1] / 1024 == pytest.approx(mobile[-1] / 96)
    assert (default_every("resnet"), default_every("mobilenetv2"), default_every("shufflenetv2")) == (500, 1000, 500)
    with pytest.raises(GcpbenchError, match="family"):
        default_etas("vgg")
    images, targets = batch()
    with pytest.raises(GcpbenchError, match="eta"):
        measure(Toy(torch.zeros(4, 3)), images[:, :, 0, 0], targets, [])
    with pytest.raises(GcpbenchError, match="forward_stem"):
        measure(nn.Linear(3, 4), images, targets, [0.1])


def test_unwrap_wrappers() -> None:
    model = build("resnet18_gap", num_classes=4)
    assert unwrap(nn.DataParallel(model)) is model
    assert unwrap(model) is model
