"""The Python API in its own terms: build's errors name arguments, GCP checks its input, any GCP
size D >= 2 for zoo models, list_models(pattern), pretrained_cfg, and gcpbench.benchmark()."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import gcpbench
from gcpbench import GCP, build, list_models
from gcpbench.errors import GcpbenchError, InputShapeError
from gcpbench.gcp import triu_size
from gcpbench.models import load_model, save_checkpoint
from gcpbench.models.preprocess import for_model
from gcpbench.models.registry import model_identity, model_name
from gcpbench.records import CorruptionResult


def test_build_errors_name_arguments_and_the_cli_names_flags() -> None:
    with pytest.raises(GcpbenchError, match=r"^gcp_dim must be at least 2") as info:
        build("resnet18", head="gcp", gcp_dim=1)
    assert "--" not in str(info.value)
    with pytest.raises(GcpbenchError, match=r"use head='gap' or head='gcp'"):
        build("resnet18", head="gcx")
    with pytest.raises(GcpbenchError, match=r"add head='gcp'"):
        build("torchvision/resnet18", head="gap", last_stride_one=True)
    with pytest.raises(GcpbenchError, match=r"^--gcp-dim must be at least 2"):  # outside the API: the flag
        model_name("resnet18", "gcp", 1)


def test_gcp_checks_its_input_channels() -> None:
    layer = GCP(8)
    with pytest.raises(InputShapeError, match=r"GCP\(dim=8\) expects \(B, 8, H, W\), got 16 channels") as info:
        layer(torch.randn(2, 16, 3, 3))
    assert isinstance(info.value, ValueError) and isinstance(info.value, GcpbenchError)
    with pytest.raises(InputShapeError, match="got shape"):
        layer(torch.randn(2, 8, 9))
    with pytest.raises(InputShapeError, match="at least 2"):
        GCP(1)
    assert layer(torch.randn(2, 8, 3, 3)).shape == (2, triu_size(8))


@pytest.mark.parametrize("name, dim", [("resnet18_gcp48", 48), ("mobilenetv2_gcp20", 20), ("shufflenetv2_gcp128", 128)])
def test_zoo_models_take_any_gcp_size(name, dim, tmp_path) -> None:
    model = build(name, num_classes=5)
    assert model_identity(name).head.dim == dim
    assert model.zoo_name == name
    classifier = [m for m in model.modules() if isinstance(m, torch.nn.Linear)][-1]
    assert classifier.in_features == dim * (dim + 1) // 2
    model.eval()
    x = torch.randn(2, 3, 64, 64)
    path = save_checkpoint(tmp_path / "m.pt", model, name)
    loaded, _ = load_model(path)
    with torch.no_grad():
        assert torch.equal(loaded.eval()(x), model(x))
    assert build("resnet18", head="gcp", gcp_dim=dim).zoo_name == f"resnet18_gcp{dim}"


def test_list_models_takes_a_shell_pattern() -> None:
    assert list_models("*_gcp128") == ["resnet18_gcp128", "resnet34_gcp128", "resnet50_gcp128", "resnet101_gcp128",
                                       "mobilenetv2_gcp128"]
    norms = ("mpn", "log", "mpa", "bcnn", "cbp", "none", "dropcov")  # isqrt is the unsuffixed name
    assert list_models("RESNET50_*") == ["resnet50_gap", "resnet50_gcp", "resnet50_gcp128"] + [
        name for norm in norms for name in (f"resnet50_gcp_{norm}", f"resnet50_gcp128_{norm}")]
    # the 17 models of the paper, and each of the 11 GCP ones with every other normalisation
    assert list_models() == gcpbench.list_models(None) and len(list_models()) == 17 + 11 * len(norms)


def test_every_model_carries_its_preprocessing() -> None:
    model = build("resnet18_gcp", num_classes=3)
    cfg = model.pretrained_cfg
    prep = for_model(model)
    assert cfg["input_size"] == (3, 224, 224) and cfg["crop_pct"] == pytest.approx(224 / 256)
    assert (cfg["interpolation"], cfg["mean"], cfg["std"]) == (prep.interpolation, prep.mean, prep.std)
    assert cfg["weights"] is None and "Resize 256" in cfg["preprocessing_source"]


def errors_by_hand(model, folder: Path) -> float:
    """Top-1 error over FOLDER/<class>/*.JPEG at the stored size, ImageNet-normalised."""
    classes = sorted(p.name for p in folder.iterdir())
    mean, std = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1), torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)
    wrong = total = 0
    model.eval()
    for label, name in enumerate(classes):
        for image in sorted((folder / name).iterdir()):
            x = torch.from_numpy(np.asarray(Image.open(image).convert("RGB"), dtype=np.float32) / 255).permute(2, 0, 1)
            with torch.no_grad():
                wrong += int(model(((x - mean) / std)[None]).argmax(1).item() != label)
            total += 1
    return wrong / total


@pytest.mark.slow
def test_benchmark_returns_the_typed_result(tmp_path) -> None:
    from gcpbench.data.synthetic import make_classification_set
    from gcpbench.robustness.make_c import make_c

    data = make_classification_set(tmp_path / "data", num_classes=4, image_size=32, train_per_class=1,
                                   val_per_class=3, seed=0)
    make_c(data / "val", tmp_path / "c", ["gaussian_noise"], [1, 2], workers=0, quiet=True)
    torch.manual_seed(0)
    model = build("resnet18_gcp16", num_classes=4)
    result = gcpbench.benchmark(model, "imagenet-c", data=tmp_path / "c", corruptions=["gaussian_noise"],
                                severities=[1, 2], workers=0, out=tmp_path / "out")
    assert isinstance(result, CorruptionResult) and result.partial
    errors = result.extra["severity_error_pct"]["gaussian_noise"]  # percent, as its key says
    for severity in (1, 2):
        assert errors[str(severity)] == pytest.approx(
            100 * errors_by_hand(model, tmp_path / "c" / "gaussian_noise" / str(severity)))
    assert result.identity.producer.model == "resnet18_gcp16"
    again = gcpbench.benchmark(model, "imagenet-c", data=tmp_path / "c", corruptions=["gaussian_noise"],
                               severities=[1, 2], workers=0, out=tmp_path / "out")
    assert again.CE_pct == result.CE_pct  # resumed from the same saved weights
    with torch.no_grad():
        model.fc.weight.add_(1.0)
    with pytest.raises(GcpbenchError, match="holds results of other weights"):
        gcpbench.benchmark(model, "imagenet-c", data=tmp_path / "c", out=tmp_path / "out")
    with pytest.raises(GcpbenchError, match="takes no argument 'corruption'"):
        gcpbench.benchmark(tmp_path / "out" / "model.pt", "imagenet-c", corruption=["fog"])
    with pytest.raises(GcpbenchError, match="unknown benchmark 'imagenet-x'"):
        gcpbench.benchmark(model, "imagenet-x")
