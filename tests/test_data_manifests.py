"""Manifests of ImageNet, ImageNet-C, ImageNet-P, COCO 2017 and tree checks against them."""
from __future__ import annotations

import csv
import hashlib
from importlib import resources
from pathlib import Path

import pytest

from gcpbench.data import manifests
from gcpbench.data.manifests import check_tree, load_manifest
from gcpbench.errors import GcpbenchError

REPO = Path(__file__).resolve().parents[1]
FAKE_WNIDS = ["n01440764", "n01443537", "n15075141"]


def reference_rows(name: str) -> list[dict[str, str]]:
    text = resources.files("gcpbench").joinpath("reference_data", name).read_text()
    return list(csv.DictReader(text.splitlines()))


def test_the_package_reads_the_repository_manifests_and_configs_no_copies():
    for packaged, top in (("manifests", "data_manifests"), ("configs", "configs")):
        assert (REPO / "gcpbench" / packaged).resolve() == (REPO / top).resolve()
    names = sorted(p.name for p in resources.files("gcpbench").joinpath("manifests").iterdir())
    assert names == ["aircraft.json", "cars.json", "cifar100_c.json", "cifar10_c.json", "cifar10_p.json", "coco.json",
                     "cub.json", "imagenet.json", "imagenet_a.json", "imagenet_c.json", "imagenet_p.json",
                     "imagenet_r.json", "imagenet_sketch.json", "imagenet_v2.json"]


def test_imagenet_manifest():
    m = load_manifest("imagenet")
    wnids = m["levels"][1]["required"]
    assert len(wnids) == 1000 == len(set(wnids)) == m["num_classes"]
    assert wnids == sorted(wnids) and all(len(w) == 9 and w[0] == "n" and w[1:].isdigit() for w in wnids)
    assert wnids[0] == "n01440764" and wnids[-1] == "n15075141"
    assert hashlib.sha256("\n".join(wnids).encode()).hexdigest() == m["classes_sha256"]
    assert m["files"]["counts"] == {"train": 1_281_167, "val": 50_000}
    assert m["file"] == "data_manifests/imagenet.json"


def test_imagenet_c_manifest_matches_the_reference_table():
    m = load_manifest("ImageNet_C")
    rows = reference_rows("alexnet_imagenet_c.csv")
    corruption, severity, classes = m["levels"]
    assert corruption["required"] == [r["corruption"] for r in rows if r["benchmark"] == "yes"]
    assert corruption["optional"] == [r["corruption"] for r in rows if r["benchmark"] == "no"]
    assert len(corruption["required"]) == 15 and len(corruption["optional"]) == 4
    assert severity["required"] == ["1", "2", "3", "4", "5"]
    assert len(classes["required"]) == 1000
    assert m["files"] == {"depth": 2, "each": 50_000}


def test_imagenet_p_manifest_matches_the_reference_table():
    m = load_manifest("imagenet-p")
    rows = reference_rows("alexnet_imagenet_p.csv")
    benchmark = [r["perturbation"] for r in rows if r["benchmark"] == "yes"]
    assert m["benchmark"] == benchmark and len(benchmark) == 10
    required = m["levels"][0]["required"]
    assert required[:10] == benchmark
    assert required[10:] == ["gaussian_noise_2", "gaussian_noise_3", "shot_noise_2", "shot_noise_3"]
    extras = {r["perturbation"] for r in rows if r["benchmark"] == "no"}
    assert extras <= set(m["levels"][0]["optional"])
    assert {r["perturbation"]: int(r["frames"]) for r in rows} == {p: m["frames"][p] for p in m["benchmark"] + sorted(extras)}


def test_coco_manifest():
    m = load_manifest("coco")
    assert m["files"]["counts"] == {"train2017": 118_287, "val2017": 5_000}
    assert m["required_files"] == ["annotations/instances_train2017.json", "annotations/instances_val2017.json"]


def test_unknown_name_is_one_line():
    with pytest.raises(GcpbenchError, match="unknown dataset 'imagenet-x': choose one of imagenet, imagenet-c"):
        check_tree("imagenet-x", "/tmp")


@pytest.fixture
def few_wnids(monkeypatch):
    """Three wnids stand in for the 1000, so fake trees stay tiny."""
    monkeypatch.setattr(manifests, "imagenet_classes", lambda: list(FAKE_WNIDS))


def make_c_tree(root: Path, corruptions, files_per_leaf: int = 0, classes=FAKE_WNIDS) -> Path:
    for c in corruptions:
        for s in "12345":
            for w in classes:
                (root / c / s / w).mkdir(parents=True)
                for i in range(files_per_leaf):
                    (root / c / s / w / f"{i}.JPEG").write_bytes(b"x")
    return root


def benchmark_corruptions() -> list[str]:
    return [r["corruption"] for r in reference_rows("alexnet_imagenet_c.csv") if r["benchmark"] == "yes"]


def test_imagenet_c_first_missing_folder_names_the_manifest(tmp_path, few_wnids):
    root = make_c_tree(tmp_path / "c", benchmark_corruptions())
    assert check_tree("imagenet-c", root).ok
    (root / "fog" / "3" / FAKE_WNIDS[0]).rmdir()
    (root / "fog" / "3" / FAKE_WNIDS[1]).rmdir()
    (root / "fog" / "3" / FAKE_WNIDS[2]).rmdir()
    (root / "fog" / "3").rmdir()
    with pytest.raises(GcpbenchError) as exc:
        check_tree("imagenet-c", root)
    assert str(exc.value) == (f"ImageNet-C tree {root}: missing folder 'fog/3' "
                              "(checked against data_manifests/imagenet_c.json)")
    report = check_tree("imagenet-c", root, raise_on_error=False)
    assert report.top["fog"] == "incomplete" and report.top["snow"] == "ok"


def test_missing_class_and_extra_folders(tmp_path, few_wnids):
    root = make_c_tree(tmp_path / "c", benchmark_corruptions())
    (root / "contrast" / "5" / "n15075141").rmdir()
    (root / "noise").mkdir()
    report = check_tree("imagenet-c", root, raise_on_error=False)
    assert report.problems[0] == "missing folder 'contrast/5/n15075141'"
    assert report.problems[1].startswith("extra folder 'noise' (corruption folders sit directly under ROOT")
    assert report.summary().endswith("(checked against data_manifests/imagenet_c.json; 1 more problem)")
    assert report.top["noise"] == "extra"
    # an extra class folder inside a leaf level
    (root / "contrast" / "5" / "n15075141").mkdir()
    (root / "snow" / "2" / "n99999999").mkdir()
    (root / "noise").rmdir()
    with pytest.raises(GcpbenchError, match="extra folder 'snow/2/n99999999'"):
        check_tree("imagenet-c", root)


def test_optional_extras_are_checked_when_present(tmp_path, few_wnids):
    root = make_c_tree(tmp_path / "c", benchmark_corruptions() + ["saturate"])
    report = check_tree("imagenet-c", root)
    assert report.top["saturate"] == "ok (optional)" and "speckle_noise" not in report.top
    (root / "saturate" / "4" / FAKE_WNIDS[1]).rmdir()
    with pytest.raises(GcpbenchError, match="missing folder 'saturate/4/n01443537'"):
        check_tree("imagenet-c", root)


def test_full_mode_counts_files(tmp_path, few_wnids):
    root = make_c_tree(tmp_path / "c", benchmark_corruptions(), files_per_leaf=2)
    assert check_tree("imagenet-c", root).ok  # quick mode: folders only
    report = check_tree("imagenet-c", root, full=True, raise_on_error=False)
    assert report.images["gaussian_noise/1"] == 6 and report.expected["gaussian_noise/1"] == 50_000
    assert report.problems[0] == "'gaussian_noise/1' holds 6 files, expected 50,000"
    for f in (root / "zoom_blur" / "2" / FAKE_WNIDS[2]).iterdir():
        f.unlink()
    report = check_tree("imagenet-c", root, full=True, raise_on_error=False)
    assert report.problems[0] == f"empty folder 'zoom_blur/2/{FAKE_WNIDS[2]}': no .jpeg/.jpg/.png files"


def test_only_restricts_the_first_level(tmp_path, few_wnids):
    root = make_c_tree(tmp_path / "c", ["fog", "snow"])
    (root / "notes").mkdir()
    report = check_tree("imagenet-c", root, only=["fog"])
    assert list(report.top) == ["fog"] and report.folders == 1 + 5 + 15
    with pytest.raises(GcpbenchError, match="missing folder 'frost'"):
        check_tree("imagenet-c", root, only=["fog", "frost"])
    with pytest.raises(GcpbenchError, match="'fgo' is not a corruption of ImageNet-C"):
        check_tree("imagenet-c", root, only=["fgo"])


def test_structure_only_for_user_made_trees(tmp_path):
    """Any subset of the known names, classes taken from the tree itself (no wnid patch needed)."""
    root = make_c_tree(tmp_path / "c", ["brightness", "fog"], files_per_leaf=1, classes=["n00000000", "n00000001"])
    report = check_tree("imagenet-c", root, structure_only=True, full=True)
    assert report.ok and report.expected["fog/3"] is None and report.images["fog/3"] == 2
    assert report.summary().endswith("(checked against data_manifests/imagenet_c.json, structure only)")
    (root / "fog" / "3" / "n00000001" / "0.JPEG").unlink()
    (root / "fog" / "3" / "n00000001").rmdir()
    with pytest.raises(GcpbenchError, match="missing folder 'fog/3/n00000001'"):
        check_tree("imagenet-c", root, structure_only=True)
    (root / "fog" / "3" / "n00000001").mkdir()
    (root / "blurry").mkdir()
    with pytest.raises(GcpbenchError, match="extra folder 'blurry'"):
        check_tree("imagenet-c", root, structure_only=True)


def test_imagenet_p_and_a_nested_root_hint(tmp_path, few_wnids):
    required = load_manifest("imagenet-p")["levels"][0]["required"]
    root = tmp_path / "p"
    for p in required:
        for w in FAKE_WNIDS:
            (root / p / w).mkdir(parents=True)
            (root / p / w / "seq.mp4").write_bytes(b"x")
    report = check_tree("imagenet-p", root, full=True)
    assert report.ok and report.images["translate"] == 3 and report.expected["translate"] is None
    (root / "shot_noise_3" / FAKE_WNIDS[0] / "seq.mp4").unlink()
    with pytest.raises(GcpbenchError, match=r"empty folder 'shot_noise_3/n01440764': no \.mp4 files"):
        check_tree("imagenet-p", root, full=True)
    wrapper = tmp_path / "download"
    wrapper.mkdir()
    root.rename(wrapper / "ImageNet-P")
    with pytest.raises(GcpbenchError, match=r"missing folder 'gaussian_noise' \(is the tree one level down, in 'ImageNet-P'\?\)"):
        check_tree("imagenet-p", wrapper)


def test_imagenet_tree_and_ignored_test_folder(tmp_path, few_wnids):
    root = tmp_path / "imagenet"
    for split in ("train", "val"):
        for w in FAKE_WNIDS:
            (root / split / w).mkdir(parents=True)
            (root / split / w / "a.JPEG").write_bytes(b"x")
    (root / "test").mkdir()  # flat test images: ignored
    report = check_tree("imagenet", root, full=True, raise_on_error=False)
    assert report.problems == ["'train' holds 3 files, expected 1,281,167", "'val' holds 3 files, expected 50,000"]
    assert check_tree("imagenet", root, only=["val"]).ok
    (root / "val" / "n15075141" / "a.JPEG").unlink()
    (root / "val" / "n15075141").rmdir()
    with pytest.raises(GcpbenchError, match="missing folder 'val/n15075141'"):
        check_tree("imagenet", root)


def test_coco_tree(tmp_path):
    root = tmp_path / "coco"
    for split in ("train2017", "val2017"):
        (root / split).mkdir(parents=True)
        (root / split / "000000000001.jpg").write_bytes(b"x")
    (root / "annotations").mkdir()
    (root / "annotations" / "instances_train2017.json").write_text("{}")
    with pytest.raises(GcpbenchError, match="missing file 'annotations/instances_val2017.json'"):
        check_tree("coco", root)
    (root / "annotations" / "instances_val2017.json").write_text("{}")
    report = check_tree("coco", root, full=True, raise_on_error=False)
    assert report.images == {"train2017": 1, "val2017": 1}
    assert report.problems[0] == "'train2017' holds 1 files, expected 118,287"


def test_missing_root(tmp_path):
    with pytest.raises(GcpbenchError, match=r"COCO 2017 tree .*nowhere: folder does not exist"):
        check_tree("coco", tmp_path / "nowhere")


def test_imagefolder_check_on_the_synthetic_layout(tmp_path):
    from gcpbench.data.synthetic import make_classification_set

    root = make_classification_set(tmp_path / "s", num_classes=2, image_size=16, train_per_class=1, val_per_class=1)
    report = check_tree("imagefolder", root, full=True)
    assert report.ok and report.images == {"train": 2, "val": 2} and report.folders == 4
    assert check_tree("imagenet", root, structure_only=True).ok
    (root / "val" / "n00000001" / "n00000001_00000.png").unlink()
    with pytest.raises(GcpbenchError) as exc:
        check_tree("imagefolder", root)
    assert str(exc.value) == f"class folder '{root / 'val' / 'n00000001'}' holds no images " \
        "(.jpg, .jpeg, .png, .ppm, .bmp, .pgm, .tif, .tiff, .webp); add images or remove the folder"
