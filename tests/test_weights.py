"""Strict checkpoint loading: gcpbench form, the original key layout, wrong architectures."""
from __future__ import annotations

import csv
from importlib import resources

import pytest
import torch

from gcpbench.errors import GcpbenchError
from gcpbench.models import build, convert, load_model, save_checkpoint
from gcpbench.models.weights import guess_model


def original_layout(original_model: str) -> dict[str, tuple[int, ...]]:
    """Key -> shape of a released iSQRT-COV checkpoint (reference CSV shipped with gcpbench)."""
    text = resources.files("gcpbench").joinpath("reference_data/original_checkpoint_keys.csv").read_text()
    layout = {}
    for row in csv.DictReader(text.splitlines()):
        if row["original_model"] == original_model:
            shape = () if row["shape"] == "scalar" else tuple(int(s) for s in row["shape"].split("x"))
            layout[row["state_dict_key"]] = shape
    return layout


def synthetic_original_checkpoint(original_model: str, seed: int = 0) -> dict:
    """A checkpoint with the original layout (DataParallel 'module.' keys), random values."""
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in original_layout(original_model).items():
        if key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(7)
        else:
            state[key] = torch.randn(shape, generator=gen)
    return {"epoch": 100, "arch": original_model, "state_dict": state, "best_prec1": torch.tensor(73.1), "optimizer": {}}


@pytest.mark.parametrize("original,name", [("resnet18_mpncov", "resnet18_gcp"), ("mobilenet_v2_mpncov_128", "mobilenetv2_gcp128"),
                                           ("shufflenet_v2_mpncov_x1_0", "shufflenetv2_gcp")])
def test_original_layout_loads_strictly(tmp_path, original: str, name: str) -> None:
    checkpoint = synthetic_original_checkpoint(original)
    path = tmp_path / "model_best.pth.tar"
    torch.save(checkpoint, path)
    model = build(name, weights=path)
    for key, value in checkpoint["state_dict"].items():
        assert torch.equal(model.state_dict()[key[len("module."):]], value)
    # the layout is recognised without a name too
    assert guess_model({k[7:]: v for k, v in checkpoint["state_dict"].items()}) == name


def test_without_module_prefix_and_convert_round_trip(tmp_path) -> None:
    checkpoint = synthetic_original_checkpoint("resnet18_mpncov_128", seed=1)
    checkpoint["state_dict"] = {k[7:]: v for k, v in checkpoint["state_dict"].items()}
    src = tmp_path / "orig.pth.tar"
    torch.save(checkpoint, src)
    dst = convert(src, "resnet18_gcp128", tmp_path / "converted.pt")
    model, saved = load_model(dst)
    assert saved["format"] == "gcpbench" and saved["model"] == "resnet18_gcp128" and saved["epoch"] == 100
    assert torch.equal(model.fc.weight, checkpoint["state_dict"]["fc.weight"])


def test_gcpbench_checkpoint_round_trip_with_classes(tmp_path) -> None:
    torch.manual_seed(0)
    model = build("resnet18_gcp", num_classes=5)
    path = save_checkpoint(tmp_path / "ck" / "last.pt", model, "resnet18_gcp", epoch=3)
    loaded, meta = load_model(path)
    assert meta["epoch"] == 3 and loaded.fc.out_features == 5
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value)


def test_torchvision_keys_load_into_gap_resnet(tmp_path) -> None:
    import torchvision

    reference = torchvision.models.resnet34(num_classes=1000)
    path = tmp_path / "resnet34.pth"
    torch.save(reference.state_dict(), path)
    model = build("resnet34_gap", weights=path)
    assert torch.equal(model.layer3[5].conv2.weight, reference.layer3[5].conv2.weight)


def test_wrong_architecture_is_one_line_error_naming_key_and_owner(tmp_path) -> None:
    checkpoint = synthetic_original_checkpoint("resnet50_mpncov")
    path = tmp_path / "r50.pth.tar"
    torch.save(checkpoint, path)
    with pytest.raises(GcpbenchError) as info:
        build("resnet18_gcp", weights=path)
    message = str(info.value)
    assert "\n" not in message
    assert "layer1.0.conv1.weight" in message and "resnet50_gcp" in message


def test_missing_and_unexpected_keys(tmp_path) -> None:
    model = build("resnet18_gap", num_classes=4)
    state = model.state_dict()
    del state["bn1.running_mean"]
    with pytest.raises(GcpbenchError, match="missing key 'bn1.running_mean'"):
        build("resnet18_gap", num_classes=4, weights={"state_dict": state})
    state = model.state_dict()
    state["extra.weight"] = torch.zeros(1)
    with pytest.raises(GcpbenchError, match="unexpected key 'extra.weight'"):
        build("resnet18_gap", num_classes=4, weights=state)


def test_unreadable_checkpoint_is_one_line(tmp_path) -> None:
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(GcpbenchError, match="cannot read checkpoint"):
        load_model(bad)
    with pytest.raises(GcpbenchError, match="does not exist"):
        load_model(tmp_path / "missing.pt")
