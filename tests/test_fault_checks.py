"""The library checks behind the fault suite (tests/test_faults.py), in-process: unreadable
checkpoint files, COCO annotation validation, writable / folder checks, stray ImageNet-C
folders, option validation, and corrupt images skipped by eval-imagenet with exact results."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from gcpbench.data.coco_check import check_annotations, check_coco_root
from gcpbench.errors import GcpbenchError
from gcpbench.models import build, load_model, save_checkpoint
from gcpbench.models.weights import read_checkpoint
from gcpbench.paths import require_folder, require_writable, require_writable_file
from gcpbench.robustness.trees import stray_folders, warn_c_strays, warn_p_strays
from gcpbench.train.config import TrainOptions
from robustness_tiny import CLASSES, PER_CLASS, checkpoint, clean_tree, tiny_images, write_tree  # noqa: F401

# ----------------------------------------------------------------------------- checkpoints


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("weights") / "good.pt"
    save_checkpoint(path, build("resnet18_gap", num_classes=3), "resnet18_gap")
    return path


def garbage(tmp_path: Path, saved: Path) -> dict[str, tuple[bytes, str]]:
    """File name -> (content, expected reason) for files that are no checkpoint."""
    data = saved.read_bytes()
    return {
        "notes.pt": (b"first line of my notes\n", "it is not a PyTorch checkpoint (it holds text)"),
        "hello.pt": (b"hello world", "it is not a PyTorch checkpoint (it holds text)"),
        "random.pt": (bytes(range(7, 256)) * 9, "it is not a PyTorch checkpoint;"),
        "empty.pt": (b"", "the file is empty"),
        "cut.pt": (data[: len(data) // 3], "it is a damaged or truncated PyTorch checkpoint"),
        "pickle.pt": (b"\x80\x02" + bytes(40), "it is a damaged or truncated pickle"),
    }


def test_unreadable_checkpoints_are_one_line_without_torch_advice(tmp_path, saved):
    for name, (content, reason) in garbage(tmp_path, saved).items():
        path = tmp_path / name
        path.write_bytes(content)
        with pytest.raises(GcpbenchError) as caught:
            read_checkpoint(path)
        text = str(caught.value)
        assert reason in text and f"'{path}'" in text, (name, text)
        assert "weights_only" not in text and "\n" not in text, (name, text)


def test_a_pickled_module_is_named_as_such(tmp_path):
    torch.save(torch.nn.Linear(2, 2), tmp_path / "whole.pt")
    with pytest.raises(GcpbenchError, match=r"holds Python objects that gcpbench will not execute .* save model.state_dict\(\) instead"):
        read_checkpoint(tmp_path / "whole.pt")


def test_unknown_model_suggests_convert_not_an_option_the_command_lacks(tmp_path):
    torch.save({"encoder.weight": torch.zeros(2, 2)}, tmp_path / "other.pt")
    with pytest.raises(GcpbenchError) as caught:
        load_model(tmp_path / "other.pt")
    assert "`gcpbench convert" in str(caught.value) and "pass --model" not in str(caught.value)
    torch.save({"state_dict": {"a": 1}}, tmp_path / "numbers.pt")
    with pytest.raises(GcpbenchError, match="numbers.pt' has no state_dict of tensors"):
        load_model(tmp_path / "numbers.pt")


# ----------------------------------------------------------------------------- COCO annotations


@pytest.fixture(scope="module")
def coco(tmp_path_factory) -> Path:
    from gcpbench.data.synthetic_coco import make_detection_set

    return make_detection_set(tmp_path_factory.mktemp("coco") / "set", num_train=2, num_val=2, image_size=64)


def test_valid_set_passes_with_its_counts(coco):
    stats = check_coco_root(coco)
    for one, split in zip(stats, ("train", "val")):
        data = json.loads((coco / "annotations" / f"instances_{split}2017.json").read_text())
        assert (one.images, one.annotations, one.categories) == (len(data["images"]), len(data["annotations"]),
                                                                 len(data["categories"]))


def _broken(coco: Path, tmp_path: Path, change) -> Path:
    data = json.loads((coco / "annotations" / "instances_val2017.json").read_text())
    change(data)
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize("change,message", [
    (lambda d: d.pop("images"), r"no 'images' list"),
    (lambda d: d.update(annotations={}), r"'annotations' must be a list, got an object"),
    (lambda d: d["images"][0].pop("file_name"), r"images\[0\] has no 'file_name'"),
    (lambda d: d["images"][1].update(width=0), r"images\[1\]: 'width' must be a positive integer, got an integer 0"),
    (lambda d: d["images"].append(dict(d["images"][0])), r"image 2 repeats id"),
    (lambda d: d["annotations"][0].update(bbox=[1, 2, -3, 4]), r"annotations\[0\]: 'bbox' must be 4 numbers"),
    (lambda d: d["annotations"][0].update(bbox=[1, 2, "3", 4]), r"annotations\[0\]: 'bbox' must be 4 numbers"),
    (lambda d: d["annotations"][0].update(area="big"), r"annotations\[0\]: 'area' must be a number >= 0, got a string"),
    (lambda d: d["annotations"][0].update(image_id=12345), r"annotations\[0\] refers to image_id 12345, which is not in 'images'"),
    (lambda d: d["annotations"][0].update(segmentation="poly"), r"annotations\[0\]: 'segmentation' must be polygons or an RLE object"),
    (lambda d: d.update(categories=[]), r"'categories' is empty"),
    (lambda d: d["categories"][0].pop("name"), r"categories\[0\] has no 'name'"),
])
def test_each_malformed_field_is_named(coco, tmp_path, change, message):
    path = _broken(coco, tmp_path, change)
    with pytest.raises(GcpbenchError, match=f"annotation file '{path}': {message}"):
        check_annotations(path)


def test_rle_segmentation_and_crowd_flag_are_accepted(coco, tmp_path):
    def crowd(d):
        d["annotations"][0].update(iscrowd=1, segmentation={"counts": "abc", "size": [64, 64]})

    assert check_annotations(_broken(coco, tmp_path, crowd)).annotations > 0


def test_unparsable_and_missing_files(coco, tmp_path):
    text = (coco / "annotations" / "instances_val2017.json").read_text()
    (tmp_path / "cut.json").write_text(text[:-10])
    with pytest.raises(GcpbenchError, match=r"is not valid JSON: .* at line \d+ column \d+ \(the file ends early"):
        check_annotations(tmp_path / "cut.json")
    with pytest.raises(GcpbenchError, match="does not exist"):
        check_annotations(tmp_path / "none.json")
    (tmp_path / "empty.json").write_text("  \n")
    with pytest.raises(GcpbenchError, match="is empty"):
        check_annotations(tmp_path / "empty.json")


def test_missing_image_files_are_counted(coco, tmp_path):
    copy = tmp_path / "coco"
    shutil.copytree(coco, copy)
    images = sorted((copy / "val2017").iterdir())
    for image in images:
        image.unlink()
    with pytest.raises(GcpbenchError, match=rf"lists image '{images[0].name}' and {len(images) - 1} more, missing from"):
        check_coco_root(copy, ["val"])


# ----------------------------------------------------------------------------- paths


def test_require_folder_tells_a_file_from_a_missing_folder(tmp_path):
    (tmp_path / "f.txt").write_text("x")
    assert require_folder(tmp_path, "data root") == tmp_path
    with pytest.raises(GcpbenchError, match=r"data root '.*f.txt' is a file, not a folder: expected X$"):
        require_folder(tmp_path / "f.txt", "data root", "X")
    with pytest.raises(GcpbenchError, match=r"data root '.*nope' does not exist$"):
        require_folder(tmp_path / "nope", "data root")


def test_require_writable_creates_nothing_and_refuses_files(tmp_path):
    target = tmp_path / "a" / "b"
    assert require_writable(target) == target
    assert list(tmp_path.iterdir()) == []  # checked on the nearest existing folder, nothing left behind
    (tmp_path / "file").write_text("x")
    with pytest.raises(GcpbenchError, match=r"output folder '.*file' is a file, not a folder; choose another --out"):
        require_writable(tmp_path / "file")
    with pytest.raises(GcpbenchError, match=r"cannot create output folder .* is a file"):
        require_writable(tmp_path / "file" / "run")
    with pytest.raises(GcpbenchError, match=r"is a folder, not a file"):
        require_writable_file(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


# ----------------------------------------------------------------------------- strays and options


def test_stray_folders_are_listed(tmp_path):
    for folder in ("fog/1", "fog/5", "fog/6", "fog/.hidden", "stray_folder/1", "snow/1", ".cache"):
        (tmp_path / folder).mkdir(parents=True)
    known = ("fog", "snow")
    assert stray_folders(tmp_path, known, {"fog": {"1", "2", "3", "4", "5"}}) == ["stray_folder", "fog/6"]
    assert stray_folders(tmp_path, known + ("stray_folder",)) == []


def test_stray_warnings_are_one_line_each(tmp_path, capsys):
    for folder in ("fog/1", "fog/6", "translate", "gaussian_noise_2", "gaussian_noise_3", "notes", *(f"x{i}" for i in range(6))):
        (tmp_path / folder).mkdir(parents=True)
    assert warn_c_strays(tmp_path, ["fog"])[-1] == "fog/6"
    assert warn_p_strays(tmp_path) == ["fog", "notes", *(f"x{i}" for i in range(6))]
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 2 and all(line.startswith("warning: ") for line in lines)
    assert lines[1].endswith("ignored: fog, notes, x0, x1, x2 and 3 more")
    assert "translate" not in lines[1] and "gaussian_noise" not in lines[1]


@pytest.mark.parametrize("options,message", [
    (dict(arch="resnet18", image_size=0), "--image-size must be a positive number, got 0"),
    (dict(arch="resnet18", landscape_num_eta=0), "--landscape-num-eta must be a positive number"),
    (dict(arch="resnet18", workers=-1), "--workers must be 0 or more"),
    (dict(arch="resnet18", head="gap", gcp_dim=128), "--gcp-dim 128 applies to GCP heads only"),
    (dict(arch="resnet18_gcp", gcp_dim=128), "'resnet18_gcp' means --gcp-dim 256, but --gcp-dim 128 was given: "
     "drop --gcp-dim, or name resnet18_gcp128"),
    # issue 23.8: every option that contradicts the model name
    (dict(arch="resnet34_gcp", head="gap"), "'resnet34_gcp' means --head gcp, but --head gap was given: drop --head, "
     "or name resnet34_gap"),
    (dict(arch="resnet34_gap", head="gcp"), "'resnet34_gap' means --head gap, but --head gcp was given"),
    (dict(arch="resnet34_gcp128", head="gcp", gcp_dim=256), "'resnet34_gcp128' means --gcp-dim 128, but --gcp-dim 256"),
    (dict(arch="resnet34_gap", gcp_dim=128), "--gcp-dim 128 applies to GCP heads only, and resnet34_gap has a GAP head"),
    (dict(arch="mobilenetv2_gcp", head="GAP"), "'mobilenetv2_gcp' means --head gcp, but --head gap was given"),
])
def test_train_options_refuse_silent_values(options, message):
    with pytest.raises(GcpbenchError, match=message):
        TrainOptions(**options)


def test_train_options_accept_consistent_values():
    TrainOptions(arch="resnet18", head="gcp", gcp_dim=128, image_size=32)
    TrainOptions(arch="resnet18_gcp128", head="GCP", gcp_dim=128)  # repeating what the name says is fine
    TrainOptions(arch="resnet18_gap", head="gap")
    TrainOptions(resume="runs/x", gcp_dim=128)  # checked against the stored run instead


# ----------------------------------------------------------------------------- corrupt images


def test_eval_imagenet_skips_a_corrupt_image_exactly(tmp_path, checkpoint):  # noqa: F811
    from gcpbench.evaluate import eval_imagenet

    write_tree(tmp_path / "clean" / "val", tiny_images(1))
    shutil.copytree(tmp_path / "clean", tmp_path / "bad")
    broken = tmp_path / "bad" / "val" / CLASSES[2] / "zz_broken.JPEG"
    broken.write_bytes(b"\xff\xd8\xff\xe0 cut short")
    kw = dict(batch_size=5, workers=0, device="cpu", quiet=True, image_size=32)
    clean, _ = eval_imagenet(checkpoint, tmp_path / "clean", tmp_path / "clean.json", **kw)
    skipped, path = eval_imagenet(checkpoint, tmp_path / "bad", tmp_path / "bad.json", **kw)
    assert skipped["unreadable"] == [str(broken)] and skipped["unreadable_count"] == 1
    assert skipped["images"] == clean["images"] == len(CLASSES) * PER_CLASS
    for key in ("top1", "top5"):
        assert skipped[key] == clean[key]
    assert abs(skipped["loss"] - clean["loss"]) < 1e-6
    assert json.loads(path.read_text())["unreadable"] == [str(broken)]
    with pytest.raises(GcpbenchError, match="zz_broken.JPEG"):
        eval_imagenet(checkpoint, tmp_path / "bad", tmp_path / "strict.json", strict=True, **kw)
