"""The GCP meta-layer against independent float64 computations (docs/design.md section 3)."""
from __future__ import annotations

import pytest
import torch

from gcpbench.gcp import GCP, isqrt_cov, set_gcp_precision, triu_size


def textbook_isqrt_cov(x: torch.Tensor, iterations: int = 5) -> torch.Tensor:
    """The paper's equations literally, in the input's dtype: X I_hat X^T with the explicit
    M x M centring matrix, the coupled Newton-Schulz iteration, triu by index."""
    b, c, h, w = x.shape
    m = h * w
    feats = x.reshape(b, c, m)
    i_hat = (torch.eye(m, dtype=x.dtype) - torch.ones(m, m, dtype=x.dtype) / m) / m
    sigma = feats @ i_hat @ feats.mT
    trace = torch.diagonal(sigma, dim1=1, dim2=2).sum(-1)
    a = sigma / trace[:, None, None]
    eye3 = 3 * torch.eye(c, dtype=x.dtype).expand(b, c, c)
    if iterations < 2:
        y = a @ (0.5 * (eye3 - a))
    else:
        zy = 0.5 * (eye3 - a)
        y, z = a @ zy, zy
        for _ in range(1, iterations - 1):
            zy = 0.5 * (eye3 - z @ y)
            y, z = y @ zy, zy @ z
        y = 0.5 * y @ (eye3 - z @ y)
    y = y * trace.sqrt()[:, None, None]
    rows, cols = torch.triu_indices(c, c)
    return y[:, rows, cols]


def eig_sqrt_cov(x: torch.Tensor) -> torch.Tensor:
    """The exact matrix square root of the covariance (eigendecomposition), triu-vectorised."""
    b, c, h, w = x.shape
    feats = x.reshape(b, c, h * w)
    centred = feats - feats.mean(-1, keepdim=True)
    sigma = centred @ centred.mT / (h * w)
    vals, vecs = torch.linalg.eigh(sigma)
    root = vecs @ torch.diag_embed(vals.clamp_min(0).sqrt()) @ vecs.mT
    rows, cols = torch.triu_indices(c, c)
    return root[:, rows, cols]


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a.double() - b.double()).abs().max() / b.double().abs().max()).item()


@pytest.fixture
def features() -> torch.Tensor:
    torch.manual_seed(0)
    return torch.randn(3, 12, 5, 6, dtype=torch.float64)


def test_output_size_and_dtype() -> None:
    assert triu_size(256) == 32896 and triu_size(128) == 8256
    out = isqrt_cov(torch.randn(2, 16, 4, 4))
    assert out.shape == (2, 136) and out.dtype == torch.float32


def test_hand_worked_diagonal_example() -> None:
    # Two channels with independent +/-1 and +/-2 patterns: Sigma = diag(1, 4), tr = 5.
    # One Newton-Schulz step on A = diag(.2, .8): Y1 = A (3I - A)/2 = diag(.28, .88);
    # times sqrt(5) -> triu (row-major) = [.28 sqrt5, 0, .88 sqrt5].
    x = torch.tensor([[1.0, -1.0, 1.0, -1.0], [2.0, 2.0, -2.0, -2.0]], dtype=torch.float64).reshape(1, 2, 2, 2)
    out = isqrt_cov(x, iterations=1)
    expected = torch.tensor([[0.28 * 5**0.5, 0.0, 0.88 * 5**0.5]])
    assert torch.allclose(out.double(), expected.double(), atol=1e-6)


@pytest.mark.parametrize("iterations", [1, 2, 3, 5, 8])
def test_matches_float64_textbook(features: torch.Tensor, iterations: int) -> None:
    expected = textbook_isqrt_cov(features, iterations)
    # float32 through the layer (it always computes in float32)
    assert rel_err(isqrt_cov(features.float(), iterations), expected) <= 1e-4
    # float64 relative precision: run the layer's own Function in float64
    from gcpbench.gcp import _ISqrtCov

    assert rel_err(_ISqrtCov.apply(features, iterations, "float32"), expected) <= 1e-6


def test_row_major_upper_triangle_order(features: torch.Tensor) -> None:
    out = isqrt_cov(features.float(), 5)[0]
    full = textbook_isqrt_cov(features, 5)  # triu of the textbook result
    c = features.shape[1]
    # entry (0, c-1) is at position c-1; entry (1, 1) right after row 0
    assert torch.isclose(out[c - 1].double(), full[0, c - 1], rtol=1e-4)
    assert torch.isclose(out[c].double(), full[0, c], rtol=1e-4)


def test_converges_to_true_square_root() -> None:
    torch.manual_seed(1)
    # Well-conditioned covariances (many samples per channel) so Newton-Schulz converges.
    x = torch.randn(2, 6, 10, 10, dtype=torch.float64)
    exact = eig_sqrt_cov(x)
    errors = [rel_err(textbook_isqrt_cov(x, n), exact) for n in (1, 2, 3, 5, 8)]
    assert all(later < earlier for earlier, later in zip(errors, errors[1:]))
    from gcpbench.gcp import _ISqrtCov

    assert rel_err(_ISqrtCov.apply(x, 12, "float32"), exact) < 1e-6


def test_gradcheck_float64() -> None:
    from gcpbench.gcp import _ISqrtCov

    torch.manual_seed(2)
    x = torch.randn(2, 4, 3, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: _ISqrtCov.apply(t, 5, "float32"), (x,), eps=1e-6, atol=1e-6)
    assert torch.autograd.gradcheck(lambda t: _ISqrtCov.apply(t, 1, "float32"), (x,), eps=1e-6, atol=1e-6)


@pytest.mark.parametrize("iterations", [1, 3, 5])
def test_gradient_matches_autograd_of_textbook(features: torch.Tensor, iterations: int) -> None:
    torch.manual_seed(3)
    grad_out = torch.randn(features.shape[0], triu_size(features.shape[1]), dtype=torch.float64)
    ref_in = features.clone().requires_grad_()
    textbook_isqrt_cov(ref_in, iterations).backward(grad_out)
    ours_in = features.float().requires_grad_()
    isqrt_cov(ours_in, iterations).backward(grad_out.float())
    assert rel_err(ours_in.grad, ref_in.grad) <= 1e-4


def test_autocast_runs_in_float32() -> None:
    torch.manual_seed(4)
    x = torch.randn(2, 8, 4, 4, requires_grad=True)
    conv = torch.nn.Conv2d(8, 8, 1)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        feats = conv(x)
        assert feats.dtype == torch.bfloat16
        out = isqrt_cov(feats)
    assert out.dtype == torch.float32
    expected = textbook_isqrt_cov(feats.detach().double())
    assert rel_err(out, expected) <= 1e-4  # float32 accuracy on the bf16 features
    out.sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


def test_zero_trace_gives_zero_not_nan() -> None:
    out = isqrt_cov(torch.ones(1, 4, 3, 3))
    assert torch.equal(out, torch.zeros_like(out))


def test_module_wrapper() -> None:
    layer = GCP(8, iterations=3)
    assert layer.output_dim == 36 and not list(layer.parameters())
    x = torch.randn(2, 8, 3, 3)
    assert torch.equal(layer(x), isqrt_cov(x, 3))
    with pytest.raises(ValueError):
        isqrt_cov(x, precision="fp16")


def test_set_gcp_precision_reaches_every_gcp_layer() -> None:
    from gcpbench.models import build

    net = build("resnet18_gcp", num_classes=10)
    assert set_gcp_precision(net, "tf32") == 1
    assert [m.precision for m in net.modules() if isinstance(m, GCP)] == ["tf32"]
    assert set_gcp_precision(build("resnet18_gap", num_classes=10), "tf32") == 0
    with pytest.raises(ValueError, match="precision must be one of"):
        set_gcp_precision(net, "fp16")


def test_tf32_is_exact_float32_off_cuda() -> None:
    """TF32 only changes CUDA products: on the CPU the opt-in mode returns the same bits."""
    torch.manual_seed(1)
    x = torch.randn(2, 16, 4, 4, requires_grad=True)
    exact = isqrt_cov(x)
    (grad_exact,) = torch.autograd.grad(exact.square().sum(), x)
    fast = isqrt_cov(x, precision="tf32")
    (grad_fast,) = torch.autograd.grad(fast.square().sum(), x)
    assert torch.equal(exact, fast) and torch.equal(grad_exact, grad_fast)


# ----------------------------------------------------------------------------- scale (issue 23.10)

def eig_newton_schulz(x: torch.Tensor, iterations: int = 5) -> torch.Tensor:
    """The layer's output through the eigendecomposition, in float64: Newton-Schulz maps A =
    U diag(l) U^T to U diag(p(l)) U^T, with p the same iteration on each eigenvalue l."""
    b, c, h, w = x.shape
    centred = x.reshape(b, c, h * w) - x.reshape(b, c, h * w).mean(-1, keepdim=True)
    sigma = centred @ centred.mT / (h * w)
    trace = torch.diagonal(sigma, dim1=1, dim2=2).sum(-1)
    vals, vecs = torch.linalg.eigh(sigma / trace[:, None, None])
    y, z = vals, torch.ones_like(vals)
    for k in range(max(iterations, 1)):
        t = (3 - z * y) / 2
        y, z = y * t, t * z
    root = vecs @ torch.diag_embed(y) @ vecs.mT * trace.sqrt()[:, None, None]
    rows, cols = torch.triu_indices(c, c)
    return root[:, rows, cols]


@pytest.mark.parametrize("exponent", range(-30, 31, 5))
def test_any_scale_matches_float64_eigendecomposition(exponent: int) -> None:
    """1e-30 .. 1e30: the float32 layer equals the float64 eigendecomposition of the same input
    (before: 34 % off at 1e-20, the trace clamped to float32's smallest normal; NaN at 1e20)."""
    torch.manual_seed(5)
    x = (torch.randn(2, 10, 4, 5, dtype=torch.float64) * 10.0 ** exponent).float()
    out = isqrt_cov(x)
    assert out.dtype == torch.float32 and torch.isfinite(out).all()
    assert rel_err(out, eig_newton_schulz(x.double())) <= 2e-6


def test_powers_of_two_scale_the_output_exactly() -> None:
    """f(2^k x) = 2^k f(x) bit for bit, and the gradient does not change (degree-1 homogeneity)."""
    torch.manual_seed(6)
    x = torch.randn(2, 6, 3, 3)
    weights = torch.randn(2, triu_size(6))
    base = x.clone().requires_grad_()
    out = isqrt_cov(base)
    out.backward(weights)
    for k in (-100, -64, -20, 20, 64, 100):  # outputs stay normal floats (2^-120 makes some subnormal)
        scaled = (x * 2.0 ** k).requires_grad_()
        scaled_out = isqrt_cov(scaled)
        scaled_out.backward(weights)
        assert torch.equal(scaled_out, out.detach() * 2.0 ** k), k
        assert torch.equal(scaled.grad, base.grad), k


@pytest.mark.parametrize("scale", [1e-30, 1e-20, 1e20, 1e30])
def test_gradient_at_extreme_scales_matches_autograd_of_textbook(features: torch.Tensor, scale: float) -> None:
    """The gradient is scale-free: at s x it is the float64 textbook gradient at x."""
    torch.manual_seed(7)
    grad_out = torch.randn(features.shape[0], triu_size(features.shape[1]), dtype=torch.float64)
    ref_in = features.clone().requires_grad_()
    textbook_isqrt_cov(ref_in).backward(grad_out)
    ours_in = (features * scale).float().requires_grad_()
    isqrt_cov(ours_in).backward(grad_out.float())
    assert rel_err(ours_in.grad, ref_in.grad) <= 1e-4


def test_gradcheck_float64_on_scaled_features() -> None:
    """The hand-written backward with the per-sample scaling, against finite differences."""
    from gcpbench.gcp import _ISqrtCov

    torch.manual_seed(8)
    x = (torch.randn(2, 4, 3, 3, dtype=torch.float64) * torch.tensor([3.0, 0.01]).view(2, 1, 1, 1)).requires_grad_()
    assert torch.autograd.gradcheck(lambda t: _ISqrtCov.apply(t, 5, "float32"), (x,), eps=1e-8, atol=1e-6)


def test_an_evaluation_first_leaves_the_layer_trainable() -> None:
    """The layer's cached index tensors made inside ``torch.inference_mode`` (an evaluation that
    runs before any training in the process) must not be inference tensors: autograd saves them."""
    from gcpbench import covariance_pool

    dim = 11  # a size no other test uses, so this test makes the caches
    x = torch.randn(2, dim, 3, 3)
    with torch.inference_mode():
        covariance_pool(x, norm="isqrt")
        covariance_pool(x, norm="dropcov")
    for norm in ("isqrt", "none", "dropcov", "mpn"):
        y = x.clone().requires_grad_(True)
        covariance_pool(y, norm=norm).sum().backward()
        assert y.grad is not None and bool(torch.isfinite(y.grad).all()), norm
