"""Model zoo: parameter counts of the original definitions (docs/design.md section 4), shapes,
the stem split, names and suggestions."""
from __future__ import annotations

import pytest
import torch

from gcpbench.errors import GcpbenchError
from gcpbench.models import build, list_models, model_info, model_name
from gcpbench.models.complexity import complexity

# The original definitions' parameter counts (docs/design.md section 4).
EXPECTED_PARAMS = {
    "resnet18_gap": 11_689_512, "resnet34_gap": 21_797_672,
    "resnet50_gap": 25_557_032, "resnet101_gap": 44_549_160,
    "resnet18_gcp": 44_205_096, "resnet34_gcp": 54_313_256,
    "resnet50_gcp": 56_929_832, "resnet101_gcp": 75_921_960,
    "resnet18_gcp128": 19_499_304, "resnet50_gcp128": 32_027_432,
    "mobilenetv2_gap": 3_504_872, "mobilenetv2_gcp": 35_449_064, "mobilenetv2_gcp128": 10_644_968,
    "shufflenetv2_gap": 2_278_604, "shufflenetv2_gcp": 34_413_260,
}


def param_count(name: str) -> int:
    with torch.device("meta"):
        return sum(p.numel() for p in build(name).parameters())


@pytest.mark.parametrize("name", sorted(EXPECTED_PARAMS))
def test_parameter_counts_equal_original_definitions(name: str) -> None:
    assert param_count(name) == EXPECTED_PARAMS[name]


@pytest.mark.parametrize("depth,expansion", [(34, 1), (101, 4)])
def test_gcp128_counts_without_a_published_figure(depth: int, expansion: int) -> None:
    # No published count: derive it from the GCP-256 count (reduction conv + BN + classifier).
    c = 512 * expansion
    delta = (c * 256 + 2 * 256 + 32896 * 1000) - (c * 128 + 2 * 128 + 8256 * 1000)
    assert param_count(f"resnet{depth}_gcp128") == param_count(f"resnet{depth}_gcp") - delta


def test_every_name_is_registered() -> None:
    from gcpbench.pooling import NORMS

    isqrt = set(EXPECTED_PARAMS) | {"resnet34_gcp128", "resnet101_gcp128"}
    variants = {f"{name}_{norm}" for name in isqrt if "_gcp" in name for norm in NORMS if norm != "isqrt"}
    assert set(list_models()) == isqrt | variants


@pytest.mark.parametrize(
    "name,feature_hw", [("resnet18_gcp", 4), ("resnet18_gap", 2), ("mobilenetv2_gcp128", 2), ("shufflenetv2_gcp", 2)]
)
def test_forward_shapes_and_gcp_keeps_resolution(name: str, feature_hw: int) -> None:
    torch.manual_seed(0)
    model = build(name, num_classes=7).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        logits = model(x)
        body = model.forward_body(model.forward_stem(x))
        assert torch.equal(model.forward_from_stem(model.forward_stem(x)), logits)
    assert logits.shape == (2, 7)
    # ResNet GCP keeps layer4 at stride 1: 64 px -> 4x4 instead of 2x2.
    assert body.shape[-1] == feature_hw


def test_gcp_head_layout() -> None:
    model = build("resnet50_gcp128", num_classes=10)
    assert model.fc.in_features == 8256 and model.layer_reduce.out_channels == 128
    assert model.layer_reduce.bias is None
    assert model.layer4[0].conv2.stride == (1, 1) and model.layer4[0].downsample[0].stride == (1, 1)
    mobile = build("mobilenetv2_gcp", num_classes=10)
    assert isinstance(mobile.dimension_reduction[2], torch.nn.ReLU6)
    assert isinstance(mobile.classifier[0], torch.nn.Dropout) and mobile.classifier[0].p == 0.2
    assert isinstance(build("shufflenetv2_gcp").dimension_reduction[2], torch.nn.ReLU6)


def test_cli_spelling_and_suggestions() -> None:
    assert model_name("resnet34", "gcp") == "resnet34_gcp"
    assert model_name("resnet18", "gcp", 128) == "resnet18_gcp128"
    assert model_name("mobilenet_v2", "gap") == "mobilenetv2_gap"
    with pytest.raises(GcpbenchError, match="did you mean 'resnet50'"):
        model_name("resnet05", "gcp")
    assert model_name("shufflenetv2", "gcp", 128) == "shufflenetv2_gcp128"  # any D >= 2, as timm models take
    with pytest.raises(GcpbenchError, match="--gcp-dim must be at least 2"):
        model_name("resnet18", "gcp", 1)
    with pytest.raises(GcpbenchError, match="did you mean 'resnet50_gcp'"):
        model_info("resnet50_gpc")


def test_flops_resnet50_matches_published() -> None:
    # ResNet-50 is 4.1 GFLOPs (multiply-adds) in the literature; GCP adds the reduction layer,
    # the larger layer4 at 14x14 and the meta-layer.
    assert complexity("resnet50_gap")["gflops"] == pytest.approx(4.09, abs=0.02)
    assert complexity("resnet50_gcp")["gflops"] > complexity("resnet50_gap")["gflops"]
