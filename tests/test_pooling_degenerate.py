"""Degenerate inputs for every GCP-family method: identity covariance, repeated eigenvalues,
M < C, all-zero maps, feature scales 1e-6..1e6 and bf16 autocast give finite outputs and
gradients (what each method then computes is in its module's docstring)."""
from __future__ import annotations

import pytest
import torch

from gcpbench.pooling import NORMS, GCP, covariance_pool


def hadamard_features(channels: int = 4, positions: int = 8) -> torch.Tensor:
    """Features whose covariance is exactly the identity: rows 2..C+1 of a Sylvester Hadamard
    matrix (orthogonal, each summing to 0), as (1, C, 1, M)."""
    h = torch.ones(1, 1, dtype=torch.float64)
    while h.shape[0] < positions:
        h = torch.cat([torch.cat([h, h], 1), torch.cat([h, -h], 1)], 0)
    return h[1:channels + 1].reshape(1, channels, 1, positions)


def forward_backward(norm: str, x: torch.Tensor, **options) -> tuple[torch.Tensor, torch.Tensor]:
    layer = GCP(x.shape[1], norm, **options).to(x.dtype if x.dtype == torch.float64 else torch.float32).train()
    leaf = x.detach().clone().requires_grad_(True)
    out = layer(leaf)
    out.backward(torch.linspace(-1, 1, out.numel(), dtype=out.dtype).view_as(out))
    return out.detach(), leaf.grad


def finite(*tensors: torch.Tensor) -> bool:
    return all(bool(torch.isfinite(t).all()) for t in tensors)


@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("case", ["identity", "rank_deficient", "zero", "scale_1e-6", "scale_1e6", "constant"])
def test_degenerate_inputs_give_finite_outputs_and_gradients(norm: str, case: str) -> None:
    torch.manual_seed(0)
    x = {"identity": lambda: hadamard_features().float(),
         "rank_deficient": lambda: torch.randn(2, 12, 1, 3),  # M = 3 < C = 12
         "zero": lambda: torch.zeros(2, 6, 3, 3),
         "scale_1e-6": lambda: 1e-6 * torch.randn(2, 6, 3, 3),
         "scale_1e6": lambda: 1e6 * torch.randn(2, 6, 3, 3),
         "constant": lambda: torch.ones(2, 6, 3, 3)}[case]()
    out, grad = forward_backward(norm, x, **({"proj_dim": 64} if norm == "cbp" else {}))
    assert finite(out, grad), (norm, case)


@pytest.mark.parametrize("norm", ["mpn", "log"])
def test_repeated_eigenvalues_gradcheck(norm: str) -> None:
    # Sigma = I: every eigenvalue equal, where K_ij = 1/(l_i - l_j) is infinite; the Loewner
    # backward (f' on near-equal pairs) matches finite differences there
    x = hadamard_features().requires_grad_(True)
    assert torch.autograd.gradcheck(GCP(4, norm).double(), (x,), atol=1e-6, rtol=1e-4)


def test_identity_covariance_values() -> None:
    x = hadamard_features()
    eye = torch.eye(4, dtype=torch.float64)[torch.triu_indices(4, 4)[0], torch.triu_indices(4, 4)[1]]
    assert torch.allclose(covariance_pool(x, "none")[0], eye)
    assert torch.allclose(covariance_pool(x, "mpn")[0], eye * (1 + 4e-12) ** 0.5)
    assert torch.allclose(covariance_pool(x, "log")[0], eye * torch.log(torch.tensor(1 + 1e-3, dtype=torch.float64)))
    assert torch.allclose(covariance_pool(x, "mpa")[0], eye, atol=1e-9)
    assert torch.allclose(covariance_pool(x.float(), "isqrt")[0].double(), eye, atol=1e-6)


@pytest.mark.parametrize("norm", ["isqrt", "mpn", "mpa"])
def test_square_roots_are_scale_equivariant_from_1e_minus_6_to_1e6(norm: str) -> None:
    # sqrt(s^2 Sigma) = s sqrt(Sigma): the same relative output at every feature scale
    torch.manual_seed(1)
    x = torch.randn(2, 6, 4, 4)
    base = covariance_pool(x, norm)
    for scale in (1e-6, 1e-3, 1e3, 1e6):
        scaled = covariance_pool(scale * x, norm) / scale
        assert float((scaled - base).abs().max() / base.abs().max()) < 1e-4, (norm, scale)


def test_zero_maps_give_zero_or_the_documented_constant() -> None:
    zero = torch.zeros(1, 5, 2, 2)
    for norm in ("isqrt", "mpn", "mpa", "none", "bcnn", "cbp", "dropcov"):
        assert float(covariance_pool(zero, norm, **({"proj_dim": 32} if norm == "cbp" else {})).abs().max()) < 1e-15
    log = covariance_pool(zero, "log")[0]  # log(0 + eps) I
    assert torch.allclose(log[[0, 5, 9, 12, 14]], torch.full((5,), torch.log(torch.tensor(1e-3)).item()))


@pytest.mark.parametrize("norm", NORMS)
def test_bf16_autocast_runs_in_float32(norm: str) -> None:
    torch.manual_seed(2)
    x = torch.randn(2, 6, 4, 4).bfloat16()
    options = {"proj_dim": 64} if norm == "cbp" else {}
    layer = GCP(6, norm, **options).eval()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = layer(x)
    assert out.dtype == torch.float32 and finite(out)
    assert torch.allclose(out, layer(x.float()), rtol=1e-5, atol=1e-6)
