"""Every GCP-family method against an independent float64 computation (numpy's eigh and the
methods' definitions; docs/design.md section 9), and float64 gradcheck."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from gcpbench.pooling import NORMS, GCP, covariance_pool, output_size
from gcpbench.pooling.cbp import CompactBilinearPool, draw_hashes, tensor_sketch
from gcpbench.pooling.mpa import lyapunov_grad, pade_coefficients


def np_features(x: torch.Tensor) -> np.ndarray:
    return x.detach().double().numpy().reshape(x.shape[0], x.shape[1], -1)


def np_covariance(x: torch.Tensor) -> np.ndarray:
    feats = np_features(x)
    centred = feats - feats.mean(axis=2, keepdims=True)
    return np.einsum("bim,bjm->bij", centred, centred) / feats.shape[2]


def np_spectral(sigma: np.ndarray, f) -> np.ndarray:
    lam, u = np.linalg.eigh(sigma)
    return np.einsum("bij,bj,bkj->bik", u, f(lam), u)


def np_triu(matrix: np.ndarray) -> np.ndarray:
    rows, cols = np.triu_indices(matrix.shape[1])
    return matrix[:, rows, cols]


def np_signed_sqrt_l2(v: np.ndarray) -> np.ndarray:
    v = np.sign(v) * np.sqrt(np.abs(v) + 1e-8)
    return v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)


def rel_err(ours: torch.Tensor, reference: np.ndarray) -> float:
    return float(np.abs(ours.detach().double().numpy() - reference).max() / np.abs(reference).max())


@pytest.fixture
def x() -> torch.Tensor:
    torch.manual_seed(0)
    return torch.randn(3, 10, 5, 6, dtype=torch.float64)


def reference(norm: str, x: torch.Tensor) -> np.ndarray:
    """The method's definition in numpy float64."""
    sigma = np_covariance(x)
    if norm == "none" or norm == "dropcov":  # dropcov in eval mode: the plain covariance
        return np_triu(sigma)
    if norm in ("isqrt", "mpa"):  # both approximate the exact square root
        return np_triu(np_spectral(sigma, lambda lam: np.sqrt(np.clip(lam, 0, None))))
    if norm == "mpn":
        tr = np.trace(sigma, axis1=1, axis2=2)[:, None, None]
        return np_triu(np_spectral(sigma + 1e-12 * tr * np.eye(sigma.shape[1]), lambda lam: np.sqrt(np.clip(lam, 0, None))))
    if norm == "log":
        return np_triu(np_spectral(sigma, lambda lam: np.log(np.clip(lam, 0, None) + 1e-3)))
    if norm == "bcnn":
        feats = np_features(x)
        gram = np.einsum("bim,bjm->bij", feats, feats) / feats.shape[2]
        return np_signed_sqrt_l2(gram.reshape(gram.shape[0], -1))
    if norm == "cbp":
        return np_signed_sqrt_l2(direct_count_sketch_convolution(x, 8192, 1))
    raise AssertionError(norm)


def direct_count_sketch_convolution(x: torch.Tensor, proj_dim: int, seed: int) -> np.ndarray:
    """The Tensor Sketch by its definition: per position, two count sketches, their circular
    convolution written as the double sum (no FFT, no Gram matrix), summed over positions."""
    h1, h2, s1, s2 = (t.numpy() for t in draw_hashes(x.shape[1], proj_dim, seed))
    feats = np_features(x)
    out = np.zeros((feats.shape[0], proj_dim))
    for b in range(feats.shape[0]):
        for m in range(feats.shape[2]):
            sketch1, sketch2 = np.zeros(proj_dim), np.zeros(proj_dim)
            np.add.at(sketch1, h1, s1 * feats[b, :, m])
            np.add.at(sketch2, h2, s2 * feats[b, :, m])
            nz1, nz2 = np.nonzero(sketch1)[0], np.nonzero(sketch2)[0]
            for a in nz1:  # circular convolution: (u * v)[k] = sum_{a + c = k mod d} u[a] v[c]
                np.add.at(out[b], (a + nz2) % proj_dim, sketch1[a] * sketch2[nz2])
    return out


# float32 tolerance against the float64 definition; isqrt (N=5) and mpa ([5/5] Pade) approximate
# the square root: their bounds are what the approximations reach on this well-conditioned input.
FLOAT32_TOL = {"isqrt": 5e-2, "mpa": 2e-3, "mpn": 1e-4, "log": 1e-4, "bcnn": 1e-5, "cbp": 1e-5, "none": 1e-5,
               "dropcov": 1e-5}


@pytest.mark.parametrize("norm", NORMS)
def test_each_method_equals_its_float64_definition(norm: str, x: torch.Tensor) -> None:
    ours32 = covariance_pool(x.float(), norm)
    assert ours32.dtype == torch.float32 and ours32.shape == (3, output_size(norm, 10))
    assert rel_err(ours32, reference(norm, x)) < FLOAT32_TOL[norm]
    if norm not in ("isqrt", "mpa"):  # exact computations: float64 in, float64 accuracy out
        assert rel_err(covariance_pool(x, norm), reference(norm, x)) < 1e-10


def test_isqrt_and_mpa_converge_to_the_eigendecomposition_square_root(x: torch.Tensor) -> None:
    exact = reference("isqrt", x)
    errors = [rel_err(covariance_pool(x.float(), "isqrt", iterations=n), exact) for n in (3, 5, 10)]
    assert errors[0] > errors[1] > errors[2] and errors[2] < 1e-4
    well = torch.randn(2, 6, 8, 8, dtype=torch.float64)  # M >> C: eigenvalues away from 0
    assert rel_err(covariance_pool(well, "mpa"), reference("mpa", well)) < 1e-5


def test_pade_coefficients_match_the_taylor_series_of_sqrt_one_minus_z() -> None:
    # Q(z) sqrt(1 - z) - P(z) = O(z^11): the product's Taylor coefficients 0..10 vanish
    p, q = pade_coefficients(5)
    taylor = [(-1) ** k * math.prod(0.5 - i for i in range(k)) / math.factorial(k) for k in range(11)]
    product = np.convolve(q, taylor)[:11]
    product[:6] -= p
    assert np.abs(product).max() < 1e-15 and q[0] == 1
    z = 0.5  # and the approximant is close to sqrt(1 - z) at a moderate z
    assert abs(np.polyval(p[::-1], z) / np.polyval(q[::-1], z) - math.sqrt(1 - z)) < 1e-8


def test_mpn_power_option_is_the_matrix_power(x: torch.Tensor) -> None:
    sigma = np_covariance(x)
    tr = np.trace(sigma, axis1=1, axis2=2)[:, None, None]
    expected = np_triu(np_spectral(sigma + 1e-12 * tr * np.eye(10), lambda lam: np.clip(lam, 0, None) ** 0.25))
    assert rel_err(covariance_pool(x, "mpn", power=0.25), expected) < 1e-10
    assert rel_err(covariance_pool(x, "mpn", power=1.0), np_triu(sigma)) < 1e-10


def test_cbp_inner_products_approximate_the_bilinear_kernel() -> None:
    # Gao et al. (CVPR 2016): <TS(X), TS(Y)> is an unbiased estimate of <X X^T, Y Y^T>_F with
    # variance O(1/d); at d = 8192 the relative deviation is ~sqrt(2/d) = 1.6 %.
    torch.manual_seed(1)
    a, b = torch.randn(2, 64, 4, 4, dtype=torch.float64).unbind(0)
    ga, gb = (t.reshape(64, -1) @ t.reshape(64, -1).T for t in (a, b))
    sketches = [tensor_sketch(g.unsqueeze(0), *draw_hashes(64, 8192, 1), 8192)[0] for g in (ga, gb)]
    for u, v, exact in ((sketches[0], sketches[1], (ga * gb).sum()), (sketches[0], sketches[0], (ga * ga).sum())):
        assert abs(float(u @ v) - float(exact)) / float(ga.norm() * (gb if v is sketches[1] else ga).norm()) < 0.05


def test_cbp_is_deterministic_for_a_seed_batched_and_carries_its_hashes(x: torch.Tensor) -> None:
    one, same, other = (CompactBilinearPool(10, 256, seed=s) for s in (3, 3, 4))
    assert torch.equal(one(x), same(x)) and not torch.allclose(one(x), other(x))
    per_sample = torch.cat([one(x[i:i + 1]) for i in range(3)])
    assert torch.allclose(one(x), per_sample, rtol=0, atol=1e-14)
    assert set(one.state_dict()) == {"hash1", "hash2", "sign1", "sign2"}
    state = torch.get_rng_state()
    CompactBilinearPool(10, 256, seed=5)
    assert torch.equal(state, torch.get_rng_state())  # the global RNG is not touched
    assert covariance_pool(x, "cbp", proj_dim=32).shape == (3, 32)


@pytest.mark.parametrize("norm", [n for n in NORMS if n != "isqrt"])  # isqrt: tests/test_gcp.py
def test_gradcheck_in_float64(norm: str) -> None:
    torch.manual_seed(2)
    x = torch.randn(2, 4, 5, 5, dtype=torch.float64, requires_grad=True)  # M = 25 >> C: well conditioned
    layer = GCP(4, norm, **({"proj_dim": 16} if norm == "cbp" else {})).double().eval()
    # mpa's backward is the exact square root's (Lyapunov), its forward the [5/5] Pade
    # approximant: they differ by the approximant's derivative error (2e-4 relative here)
    atol = 1e-4 if norm == "mpa" else 1e-6
    assert torch.autograd.gradcheck(layer, (x,), atol=atol, rtol=1e-4)


def test_lyapunov_iteration_solves_the_lyapunov_equation() -> None:
    # root X + X root = G, solved in root's eigenbasis: X~_ij = G~_ij / (s_i + s_j)
    torch.manual_seed(4)
    a = torch.randn(2, 6, 6, dtype=torch.float64)
    sigma = a @ a.mT + 0.5 * torch.eye(6, dtype=torch.float64)
    lam, u = torch.linalg.eigh(sigma / torch.linalg.matrix_norm(sigma)[:, None, None])
    root = u @ torch.diag_embed(lam.sqrt()) @ u.mT
    grad = torch.randn(2, 6, 6, dtype=torch.float64)
    inner = u.mT @ grad @ u / (lam.sqrt()[:, :, None] + lam.sqrt()[:, None, :])
    exact = u @ inner @ u.mT
    assert float((lyapunov_grad(root, grad, steps=30) - exact).abs().max()) < 1e-10
    assert float((lyapunov_grad(root, grad) - exact).abs().max() / exact.abs().max()) < 1e-2  # the authors' 8 steps


def test_mpa_lyapunov_backward_is_the_exact_square_roots_gradient() -> None:
    # the same gradient by eigendecomposition (mpn with power 1/2, eps 1e-12 tr: negligible), up
    # to the Pade forward's error and the 8 Newton-Schulz steps (the authors' count)
    torch.manual_seed(3)
    x = torch.randn(2, 5, 4, 4, dtype=torch.float64)
    grad_out = torch.randn(2, 15, dtype=torch.float64)
    grads = []
    for norm in ("mpa", "mpn"):
        leaf = x.clone().requires_grad_(True)
        covariance_pool(leaf, norm).backward(grad_out)
        grads.append(leaf.grad)
    assert float((grads[0] - grads[1]).abs().max() / grads[1].abs().max()) < 2e-4


def test_gcp_layer_repr_options_and_errors() -> None:
    from gcpbench.errors import GcpbenchError

    layer = GCP(8, "mpn", power=0.3)
    assert layer.options == {"power": 0.3, "eps": 1e-12} and layer.output_dim == 36 and "norm=mpn" in repr(layer)
    assert GCP(8).norm == "isqrt" and GCP(8, "bcnn").output_dim == 64 and GCP(8, "cbp", proj_dim=100).output_dim == 100
    for bad, match in ((lambda: GCP(8, "svd"), "unknown GCP normalisation 'svd'"),
                       (lambda: GCP(8, "log", power=0.5), "no option 'power'"),
                       (lambda: GCP(8, "mpn", power=2.0), r"in \(0, 1\]"),
                       (lambda: GCP(8, "cbp", proj_dim="many"), "must be a int"),
                       (lambda: covariance_pool(torch.zeros(2, 3), "none"), "expects")):
        with pytest.raises(GcpbenchError, match=match):
            bad()
