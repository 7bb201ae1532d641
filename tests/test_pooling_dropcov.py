"""DropCov (mingzeG/DropCov CNNs/models/ResNet_ACD.py): the rate formula against a hand
computation, no effect in eval mode, and the training-mode statistics of the paper
(whole channels dropped with probability p, the kept ones scaled by 1/(1-p))."""
from __future__ import annotations

import math

import torch

from gcpbench.pooling.dropcov import DropCov, drop_rate, eca_attention
from gcpbench.pooling.plain import plain_cov


def python_rate(x: list[list[list[float]]], weights: list[float]) -> float:
    """The rate in plain Python (lists, no torch): channel means, the 3-tap convolution with zero
    padding, softmax, x*y + x, covariance row sums, cosine, batch mean, clamp."""
    cosines = []
    for sample in x:  # sample: C lists of M values
        c = len(sample)
        means = [sum(ch) / len(ch) for ch in sample]
        padded = [0.0] + means + [0.0]
        conv = [sum(w * padded[i + k] for k, w in enumerate(weights)) for i in range(c)]
        exps = [math.exp(v) for v in conv]
        y = [e / sum(exps) for e in exps]
        attended = [[v * y[i] + v for v in ch] for i, ch in enumerate(sample)]
        centred = [[v - sum(ch) / len(ch) for v in ch] for ch in attended]
        m = len(centred[0])
        row_sums = [sum(sum(a * b for a, b in zip(centred[i], centred[j])) / m for j in range(c)) for i in range(c)]
        dot = sum(a * b for a, b in zip(y, row_sums))
        cosines.append(dot / (math.sqrt(sum(a * a for a in y)) * math.sqrt(sum(b * b for b in row_sums))))
    rate = sum(cosines) / len(cosines)
    return min(max(1 - 10 / math.log2(len(x[0])) * rate, 0.0), 1.0)


def test_rate_formula_equals_a_hand_computation() -> None:
    torch.manual_seed(0)
    layer = DropCov(8).double()
    with torch.no_grad():
        layer.eca.weight.copy_(torch.tensor([[[0.2, -0.5, 0.7]]]))
    for shift in (0.0, 2.0):  # two batches giving different rates
        x = torch.randn(3, 8, 2, 3, dtype=torch.float64) + shift * torch.arange(8, dtype=torch.float64).view(1, 8, 1, 1)
        attention = eca_attention(layer.eca, x)
        attended = x * attention[:, :, None, None] + x
        expected = python_rate(x.reshape(3, 8, 6).tolist(), [0.2, -0.5, 0.7])
        assert abs(drop_rate(attended, attention) - expected) < 1e-12


def test_rate_worked_by_hand_for_a_dead_map_and_a_known_cosine() -> None:
    # constant maps: Sigma = 0, cos = 0 (torch's eps), p = 1 - 0 = 1: everything dropped
    assert drop_rate(torch.ones(2, 16, 3, 3), torch.full((2, 16), 1 / 16)) == 1.0
    # y parallel to Sigma's row sums (cos = 1): p = clamp(1 - 10/log2(1024)) = 0 for C = 1024;
    # C = 4096 gives 1 - 10/12 = 1/6
    for channels, p in ((1024, 0.0), (4096, 1 / 6)):
        x = torch.zeros(1, channels, 1, 2, dtype=torch.float64)
        x[0, :, 0, 0], x[0, :, 0, 1] = 1.0, -1.0  # every pair covaries by 1: row sums all C
        assert abs(drop_rate(x, torch.full((1, channels), 1.0 / channels, dtype=torch.float64)) - p) < 1e-12


def test_no_effect_in_eval_mode() -> None:
    torch.manual_seed(1)
    layer = DropCov(8).eval()
    x = torch.randn(4, 8, 3, 3)
    rng = torch.get_rng_state()
    assert torch.equal(layer(x), plain_cov(x))
    assert torch.equal(rng, torch.get_rng_state())  # no random draw at inference
    assert layer.last_rate is None


def test_training_statistics_match_the_paper() -> None:
    torch.manual_seed(2)
    channels, batch = 64, 64
    layer = DropCov(channels).double().train()
    x = torch.randn(batch, channels, 3, 3, dtype=torch.float64).abs() + 0.1
    attention = eca_attention(layer.eca, x)
    attended = x * attention[:, :, None, None] + x
    p = drop_rate(attended, attention)
    assert 0.05 < p < 0.95  # an informative rate for this check
    out = layer(x)
    assert abs(layer.last_rate - p) < 1e-12
    rows, cols = torch.triu_indices(channels, channels)
    sigma = torch.zeros(batch, channels, channels, dtype=torch.float64)
    sigma[:, rows, cols] = out
    kept = sigma.diagonal(dim1=1, dim2=2) != 0  # a dropped channel has a zero row and column
    dropped_fraction = 1 - kept.double().mean().item()
    sd = math.sqrt(p * (1 - p) / kept.numel())
    assert abs(dropped_fraction - p) < 4 * sd  # Dropout2d: each channel of each sample, probability p
    # the kept channels: the attended features scaled by 1/(1-p), so Sigma entries by 1/(1-p)^2
    reference = torch.zeros_like(sigma)
    reference[:, rows, cols] = plain_cov(attended)
    both = kept.unsqueeze(2) & kept.unsqueeze(1)
    assert torch.allclose(sigma[both] * (1 - p) ** 2, reference[both], rtol=1e-10, atol=1e-14)
    assert not sigma[~both].any()


def test_attention_gets_gradients_in_training_only() -> None:
    torch.manual_seed(3)
    layer = DropCov(16)
    x = torch.randn(4, 16, 3, 3)
    layer.train()(x).sum().backward()
    assert layer.eca.weight.grad is not None and bool(torch.isfinite(layer.eca.weight.grad).all())
    layer.zero_grad(set_to_none=True)
    layer.eval()(x.requires_grad_(True)).sum().backward()
    assert layer.eca.weight.grad is None
