"""The GCP family in the zoo and the checkpoints: names, parameter counts, options, refusals."""
from __future__ import annotations

import pytest
import torch

from gcpbench.errors import GcpbenchError
from gcpbench.models import build, load_model, model_name, save_checkpoint
from gcpbench.models.external import parse_name
from gcpbench.pooling import NORMS


def params(name: str, **options) -> int:
    with torch.device("meta"):
        return sum(p.numel() for p in build(name, gcp_options=options or None).parameters())


def test_parameter_counts_follow_each_methods_output_size() -> None:
    base = params("resnet18_gcp")
    fc_in = 256 * 257 // 2
    for norm in ("mpn", "log", "mpa", "none"):
        assert params(f"resnet18_gcp_{norm}") == base
    assert params("resnet18_gcp_dropcov") == base + 3  # ECA's 1-D convolution, kernel 3, no bias
    assert params("resnet18_gcp_bcnn") == base + (256 * 256 - fc_in) * 1000
    assert params("resnet18_gcp_cbp") == base + (8192 - fc_in) * 1000
    assert params("resnet18_gcp_cbp", proj_dim=1024) == base + (1024 - fc_in) * 1000


def test_cli_spelling_maps_to_zoo_names_and_refuses_contradictions() -> None:
    assert model_name("resnet50", "gcp", 256) == "resnet50_gcp"  # iSQRT-COV stays the plain name
    assert model_name("resnet50", "gcp", 256, "mpn") == "resnet50_gcp_mpn"
    assert model_name("resnet18", "gcp", 128, "log") == "resnet18_gcp128_log"
    assert model_name("resnet50_gcp_mpn", "gcp", 256, "mpn") == "resnet50_gcp_mpn"
    for bad, match in ((lambda: model_name("resnet50_gcp_mpn", "gcp", 256, "log"), "means --gcp-norm mpn, but --gcp-norm log"),
                       (lambda: model_name("resnet50_gcp", "gcp", 256, "mpn"), "means --gcp-norm isqrt"),
                       (lambda: model_name("resnet50", "gap", None, "mpn"), "GCP heads only"),
                       (lambda: model_name("resnet50", "gcp", 256, "svd"), "unknown GCP normalisation"),
                       (lambda: build("resnet18_gap", gcp_options={"power": 0.3}), "GCP heads only"),
                       (lambda: build("resnet18_gcp_log", gcp_options={"power": 0.3}), "no option 'power'")):
        with pytest.raises(GcpbenchError, match=match):
            bad()


def test_external_names_carry_the_normalisation() -> None:
    assert parse_name("timm/convnext_tiny_gcp_dropcov").head.norm == "dropcov"
    assert parse_name("timm/resnet18_gcp128_mpn_s1").name == "timm/resnet18_gcp128_mpn_s1"
    assert parse_name("timm/resnet18", "gcp", gcp_norm="cbp").name == "timm/resnet18_gcp_cbp"
    assert parse_name("timm/resnet18_gcp").head.norm == "isqrt"
    with pytest.raises(GcpbenchError, match="means --gcp-norm mpn, but --gcp-norm log"):
        parse_name("timm/resnet18_gcp_mpn", gcp_norm="log")


@pytest.mark.parametrize("norm", [n for n in NORMS if n != "isqrt"])
def test_checkpoint_round_trip_keeps_the_method_and_its_options(tmp_path, norm: str) -> None:
    options = {"mpn": {"power": 0.3}, "log": {"eps": 1e-2}, "cbp": {"proj_dim": 64, "seed": 7}}.get(norm)
    torch.manual_seed(0)
    model = build(f"resnet18_gcp128_{norm}", num_classes=3, gcp_options=options).eval()
    path = save_checkpoint(tmp_path / "m.pt", model, model.zoo_name)
    loaded, checkpoint = load_model(path)
    assert loaded.zoo_name == f"resnet18_gcp128_{norm}" and checkpoint.get("gcp_options") == (options or None)
    assert loaded.gcp.options == model.gcp.options
    x = torch.randn(2, 3, 32, 32)
    assert torch.equal(loaded.eval()(x), model(x))


def test_resolve_refuses_a_gcp_norm_or_option_the_checkpoint_contradicts(tmp_path) -> None:
    from gcpbench.models.resolve import resolve_model

    model = build("resnet18_gcp128_mpn", num_classes=3, gcp_options={"power": 0.3})
    path = save_checkpoint(tmp_path / "m.pt", model, model.zoo_name)
    assert resolve_model(path, gcp_norm="mpn", gcp_options={"power": 0.3}).name == "resnet18_gcp128_mpn"
    with pytest.raises(GcpbenchError, match="mpn normalisation.*--gcp-norm log"):
        resolve_model(path, gcp_norm="log")
    with pytest.raises(GcpbenchError, match="power=0.3, but power=0.5"):
        resolve_model(path, gcp_options={"power": 0.5})
    with pytest.raises(GcpbenchError, match="means --gcp-norm mpn, but --gcp-norm log"):
        resolve_model(model="resnet18_gcp128_mpn", weights=path, gcp_norm="log")
