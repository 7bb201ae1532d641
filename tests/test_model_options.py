"""Options that contradict the model name are refused (issue 23.8), in the one place where a name
and its options resolve (gcpbench.models.options.check_agrees) and in every path that uses it.
The command lines: tests/test_faults.py, contradiction/*."""
from __future__ import annotations

import pytest

from gcpbench.errors import GcpbenchError
from gcpbench.models import build, save_checkpoint
from gcpbench.models.registry import MODELS, model_name
from gcpbench.models.resolve import resolve_model
from gcpbench.models.training import family_for, train_model


@pytest.mark.parametrize("name", list(MODELS))
def test_every_zoo_name_accepts_what_it_says_and_refuses_the_rest(name):
    info = MODELS[name]
    dim = info.head.dim if info.head.is_gcp else None
    assert model_name(name) == name and model_name(name, info.head.kind.upper(), dim) == name
    other_head = "gap" if info.head.is_gcp else "gcp"
    with pytest.raises(GcpbenchError, match=rf"^'{name}' means --head {info.head.kind}, but --head {other_head} was given"):
        model_name(name, other_head)
    for wrong in (128, 256, 64):
        if wrong == dim:
            continue
        expected = (rf"^'{name}' means --gcp-dim {dim}, but --gcp-dim {wrong}" if info.head.is_gcp
                    else rf"^--gcp-dim {wrong} applies to GCP heads only, and {name} has a GAP head")
        with pytest.raises(GcpbenchError, match=expected):
            model_name(name, None, wrong)
        with pytest.raises(GcpbenchError):  # the same through every builder / resolver
            build(name, num_classes=2, gcp_dim=wrong)


def test_the_refusal_names_the_model_that_has_the_option():
    with pytest.raises(GcpbenchError, match="drop --head, or name resnet34_gap$"):
        model_name("resnet34_gcp", "gap")
    with pytest.raises(GcpbenchError, match="drop --gcp-dim, or name mobilenetv2_gcp128$"):
        model_name("mobilenetv2_gcp", "gcp", 128)
    with pytest.raises(GcpbenchError, match="drop --gcp-dim, or name shufflenetv2_gcp64$"):  # any size D >= 2
        model_name("shufflenetv2_gcp", None, 64)
    with pytest.raises(GcpbenchError, match="drop --gcp-dim$"):  # no model has a GCP size below 2
        model_name("shufflenetv2_gcp", None, 1)


def test_an_architecture_takes_the_options_and_a_gap_head_no_gcp_size():
    assert model_name("resnet34", "gcp", 128) == "resnet34_gcp128" and model_name("resnet34") == "resnet34_gap"
    with pytest.raises(GcpbenchError, match="--gcp-dim 128 applies to GCP heads only"):
        model_name("resnet34", "gap", 128)
    assert train_model("resnet34", None, None, None, None) == ("resnet34_gap", "resnet")
    with pytest.raises(GcpbenchError, match="means --head gcp"):
        train_model("resnet34_gcp", "gap", None, None, None)


def test_external_names_refuse_what_their_suffixes_contradict():
    from gcpbench.models.external import parse_name

    assert parse_name("torchvision/resnet18", "gcp", 64, True).name == "torchvision/resnet18_gcp64_s1"
    assert parse_name("torchvision/resnet18_gcp64_s1", "gcp", 64, True).name == "torchvision/resnet18_gcp64_s1"
    for args, message in [(("gap",), "means --head gcp, but --head gap"), ((None, 32), "means --gcp-dim 64, but --gcp-dim 32"),
                          ((None, None, False), "means --last-stage-stride-1, but --no-last-stage-stride-1")]:
        with pytest.raises(GcpbenchError, match=message):
            parse_name("torchvision/resnet18_gcp64_s1", *args)
    with pytest.raises(GcpbenchError, match="--gcp-dim 128 applies to GCP heads only"):
        parse_name("torchvision/resnet18", None, 128)


def test_weights_that_name_another_model_are_refused(tmp_path):
    path = save_checkpoint(tmp_path / "gap.pt", build("resnet18_gap", num_classes=3), "resnet18_gap")
    assert resolve_model(model="resnet18_gap", weights=path).name == "resnet18_gap"
    assert resolve_model(model="resnet18", weights=path).name == "resnet18_gap"
    for model, head in (("resnet18_gcp", None), ("resnet18", "gcp")):
        with pytest.raises(GcpbenchError, match="holds a resnet18_gap, but the model was given as resnet18_gcp"):
            resolve_model(model=model, weights=path, head=head)


def test_a_zoo_model_keeps_its_schedule_family():
    assert family_for("mobilenetv2_gcp", None) == "mobilenetv2" and family_for("torchvision/resnet18", None) == "resnet"
    assert family_for("torchvision/resnet18", "shufflenetv2") == "shufflenetv2"
    with pytest.raises(GcpbenchError, match="mobilenetv2_gcp is a mobilenetv2 model .* --schedule-family resnet contradicts"):
        family_for("mobilenetv2_gcp", "resnet")


def test_sweep_grids_refuse_contradicting_heads_and_sizes():
    from gcpbench.sweep.spec import expand_grid

    names = [r.name.split("_LR")[0] for r in expand_grid({"models": ["resnet18"], "heads": ["gap", "gcp"],
                                                           "gcp_dims": [256, 128]}, {}, "grid")]
    assert names == ["resnet18_gap", "resnet18_gcp", "resnet18_gcp128"]  # a GAP model appears once
    assert [r.name.split("_LR")[0] for r in expand_grid({"models": ["resnet18_gcp128"]}, {}, "grid")] == ["resnet18_gcp128"]
    with pytest.raises(GcpbenchError, match="^grid: 'resnet18_gcp' means --head gcp, but --head gap"):
        expand_grid({"models": ["resnet18_gcp"], "heads": ["gap"]}, {}, "grid")
    with pytest.raises(GcpbenchError, match="^grid: 'resnet18_gcp' means --gcp-dim 256, but --gcp-dim 128"):
        expand_grid({"models": ["resnet18_gcp"], "gcp_dims": [128]}, {}, "grid")


def test_detection_backbone_mode_must_match_the_weights_head(tmp_path):
    pytest.importorskip("mmdet")
    from gcpbench.detection.weights import fit_backbone_state

    import torch

    gcp = save_checkpoint(tmp_path / "gcp.pt", build("resnet18_gcp", num_classes=3), "resnet18_gcp")
    from gcpbench.models.weights import read_checkpoint

    checkpoint = read_checkpoint(gcp)
    with torch.device("meta"):
        expected = {k: v for k, v in build("resnet18_gap", num_classes=3).state_dict().items() if not k.startswith("fc.")}
    for mode in ("gcp_d", "gcp_m"):
        fit_backbone_state(expected, checkpoint, 18, str(gcp), mode=mode)
    with pytest.raises(GcpbenchError, match=r"hold a 'resnet18_gcp' \(GCP head\), but the backbone resnet18_gap reads GAP "
                                            r"weights: pick --backbone resnet18_gcp_d or resnet18_gcp_m"):
        fit_backbone_state(expected, checkpoint, 18, str(gcp), mode="gap")
