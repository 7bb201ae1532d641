"""Issue 23, items 2-7: numbers that may be wrong, stale or partial are never shown as plain ones.

2. links in image trees: one walker, link cycles and files reached twice refused in every command;
3. the identity of a result covers what the data is (listing fingerprint, generation record);
4. a result whose checkpoint file changed is marked stale in the report (with how to refresh it);
5. partial means and trees missing files are marked wherever a mean is shown;
6. every -C / -P result records its source; data not made from ImageNet val is marked;
7. make-c / make-p give every source image the official geometry; native size is explicit.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gcpbench.errors import GcpbenchError
from robustness_tiny import (  # noqa: F401
    CLASSES, PER_CLASS, as_builtin_set, checkpoint, clean_tree, tiny_images, write_tree,
)

CYCLE = r"links back to .* \(a link cycle\)"
TWICE = r"are the same (file|folder) \(reached twice through a link\)"
CORRUPTIONS, SEVERITIES = ("gaussian_noise", "brightness"), (1, 2)


def c_tree(root: Path, seed: int = 1) -> Path:
    """A downloaded-style ImageNet-C tree (no generation record) of the tiny images, 2 x 2 subsets."""
    rng = np.random.default_rng(seed)
    for c in CORRUPTIONS:
        for s in SEVERITIES:
            noisy = {k: [np.clip(a + rng.normal(0, 12 * s, a.shape), 0, 255).astype(np.uint8) for a in v]
                     for k, v in tiny_images().items()}
            write_tree(root / c / str(s), noisy, ext="JPEG")
    return root


def c_request(checkpoint, data, **kw):
    from gcpbench.robustness.imagenet_c import CRequest

    return CRequest(checkpoint=checkpoint, data=data, corruptions=CORRUPTIONS, severities=SEVERITIES,
                    batch_size=6, workers=0, device="cpu", quiet=True, **kw)


# ----------------------------------------------------------------------------- 2. links


def test_a_link_cycle_is_refused_by_every_walk(tmp_path):
    from gcpbench.data.folders import image_folder
    from gcpbench.data.manifests import check_tree
    from gcpbench.robustness.generate import list_sources
    from gcpbench.robustness.trees import collect_items

    data = tmp_path / "data"
    for split in ("train", "val"):
        write_tree(data / split, tiny_images())
    (data / "val" / CLASSES[1] / "loop").symlink_to("..")            # relative: back to val/
    with pytest.raises(GcpbenchError, match=CYCLE):                 # eval-imagenet, variants, eval-c's clean data
        image_folder(data / "val")
    report = check_tree("imagefolder", data, full=True, raise_on_error=False)   # data check imagefolder --full
    assert not report.ok and any("a link cycle" in p for p in report.problems)
    with pytest.raises(GcpbenchError, match=CYCLE):                 # make-c / make-p sources
        list_sources(data / "val", None, 0)
    tree = c_tree(tmp_path / "c")
    (tree / "brightness" / "1" / CLASSES[0] / "self").symlink_to(tree / "brightness" / "1" / CLASSES[0])  # absolute
    folders = {f"{c}/{s}": tree / c / str(s) for c in CORRUPTIONS for s in SEVERITIES}
    with pytest.raises(GcpbenchError, match=CYCLE):                 # eval-c / eval-p trees
        collect_items(folders, CLASSES, {c: i for i, c in enumerate(CLASSES)}, {".jpeg"}, None, 0)
    report = check_tree("imagenet-c", tree, full=True, only=list(CORRUPTIONS), structure_only=True,
                        raise_on_error=False)                        # data check imagenet-c --full
    assert any("a link cycle" in p for p in report.problems), report.problems


def test_a_file_reached_twice_is_refused_by_every_walk(tmp_path):
    from gcpbench.data.folders import image_folder
    from gcpbench.data.manifests import check_tree
    from gcpbench.robustness.generate import list_sources
    from gcpbench.robustness.trees import collect_items

    val = tmp_path / "val"
    write_tree(val, tiny_images())
    (val / CLASSES[1] / "again.png").symlink_to(val / CLASSES[0] / "img_000.png")   # one image, two labels
    for walk in (lambda: image_folder(val), lambda: list_sources(val, None, 0)):
        with pytest.raises(GcpbenchError, match=TWICE):
            walk()
    tree = c_tree(tmp_path / "c")
    shutil.rmtree(tree / "brightness" / "2")
    (tree / "brightness" / "2").symlink_to(tree / "brightness" / "1")   # severity 2 = severity 1
    folders = {f"{c}/{s}": tree / c / str(s) for c in CORRUPTIONS for s in SEVERITIES}
    with pytest.raises(GcpbenchError, match=TWICE):
        collect_items(folders, CLASSES, {c: i for i, c in enumerate(CLASSES)}, {".jpeg"}, None, 0)
    report = check_tree("imagenet-c", tree, only=list(CORRUPTIONS), structure_only=True, raise_on_error=False)
    assert any("same folder" in p for p in report.problems), report.problems


@pytest.mark.parametrize("link,target", [
    (f"{CLASSES[0]}/later.png", f"{CLASSES[2]}/img_001.png"),     # the target's folder is listed later
    (f"{CLASSES[1]}/z_sibling.png", f"{CLASSES[1]}/img_002.png"),  # a sibling in the same folder
    (f"{CLASSES[1]}/deeper/img_000.png", f"{CLASSES[1]}/img_000.png"),  # the same name one level down
])
def test_a_file_reached_twice_is_refused_wherever_the_link_points(tmp_path, link, target):
    from gcpbench.data.walk import TreeWalk

    write_tree(tmp_path / "val", tiny_images())
    (tmp_path / "val" / link).parent.mkdir(exist_ok=True)
    (tmp_path / "val" / link).symlink_to(tmp_path / "val" / target)
    walk = TreeWalk()
    with pytest.raises(GcpbenchError, match=TWICE):
        for wnid in CLASSES:
            walk.sorted_files(tmp_path / "val" / wnid, [".png"])
    jpeg_only = TreeWalk()                                          # a file the walk does not list is no double
    assert [jpeg_only.sorted_files(tmp_path / "val" / w, [".jpeg"]) for w in CLASSES] == [[], [], []]


def test_a_cifar_array_under_two_names_is_refused(tmp_path):
    from gcpbench.robustness.benchmarks import get_npy_benchmark
    from gcpbench.robustness.cifar import c_items

    np.save(tmp_path / "labels.npy", np.zeros(5, np.uint8))
    np.save(tmp_path / "fog.npy", np.zeros((5, 32, 32, 3), np.uint8))
    (tmp_path / "contrast.npy").symlink_to(tmp_path / "fog.npy")
    with pytest.raises(GcpbenchError, match=TWICE):
        c_items(get_npy_benchmark("cifar10-c"), tmp_path, ["fog", "contrast"], [1])


def test_links_to_files_elsewhere_are_read_once_in_torchvisions_order(tmp_path):
    """A tree of links to files kept elsewhere (a common way to build ImageNet's val/) is fine;
    the samples and their order are torchvision's ImageFolder's."""
    from torchvision.datasets import ImageFolder

    from gcpbench.data.folders import image_folder

    flat = tmp_path / "flat"
    write_tree(flat, tiny_images())
    val = tmp_path / "val"
    for wnid in CLASSES:
        (val / wnid / "deeper").mkdir(parents=True)
        for i, image in enumerate(sorted((flat / wnid).iterdir())):
            (val / wnid / ("deeper" if i % 2 else "") / image.name).symlink_to(image)
    ours = image_folder(val)
    assert ours.samples == ImageFolder(str(val)).samples and len(ours.samples) == len(CLASSES) * PER_CLASS


# ----------------------------------------------------------------------------- 3. data identity


@pytest.mark.slow
def test_a_regenerated_tree_is_not_resumed(checkpoint, tmp_path):
    """Kill eval-c, regenerate the tree at the same path, rerun: nothing of the old tree is resumed,
    and the result equals a fresh run on the new tree."""
    from gcpbench.models import load_model
    from gcpbench.robustness.imagenet_c import evaluate_c

    model, ckpt = load_model(checkpoint)
    tree = c_tree(tmp_path / "c", seed=1)
    first, _ = evaluate_c(c_request(checkpoint, tree), tmp_path / "run", model=model, checkpoint=ckpt)
    shutil.rmtree(tree)
    c_tree(tree, seed=2)                                            # same path, same names, other images
    again, _ = evaluate_c(c_request(checkpoint, tree), tmp_path / "run", model=model, checkpoint=ckpt)
    fresh, _ = evaluate_c(c_request(checkpoint, tree), tmp_path / "fresh", model=model, checkpoint=ckpt)
    assert again["resumed_images"] == 0
    assert again["errors"] == fresh["errors"] and again["mCE"] == pytest.approx(fresh["mCE"])
    assert again["identity"]["data"]["listing"] != first["identity"]["data"]["listing"]
    unchanged, _ = evaluate_c(c_request(checkpoint, tree), tmp_path / "run", model=model, checkpoint=ckpt)
    assert unchanged["resumed_images"] == len(CORRUPTIONS) * len(SEVERITIES) * len(CLASSES) * PER_CLASS


def test_the_identity_names_the_generation_record_and_every_listing(clean_tree, tmp_path):
    from gcpbench.data.walk import folder_fingerprint
    from gcpbench.robustness.make_c import make_c
    from gcpbench.robustness.trees import generation_identity

    with as_builtin_set(clean_tree):
        make_c(None, tmp_path / "a", ["contrast"], [1], per_class=1, workers=0, quiet=True, seed=0, native=True)
        make_c(None, tmp_path / "b", ["contrast"], [1], per_class=1, workers=0, quiet=True, seed=1, native=True)
    a, b = generation_identity(tmp_path / "a"), generation_identity(tmp_path / "b")
    assert a["seed"] == 0 and b["seed"] == 1 and a["geometry_mode"] == "native" and a["source_kind"] == "synthetic"
    assert a["src"] == str(clean_tree) and generation_identity(tmp_path / "nothing") is None
    before = folder_fingerprint(tmp_path / "a", [".jpeg"])
    image = next((tmp_path / "a").rglob("*.JPEG"))
    os.utime(image, ns=(1, 1))                                      # same names and sizes, another time
    assert folder_fingerprint(tmp_path / "a", [".jpeg"]) != before


# ----------------------------------------------------------------------------- 4, 5, 6: the report


def _report(paths, out):
    from gcpbench.report.build import build_report

    return build_report(paths, out)


@pytest.mark.slow
def test_report_marks_stale_partial_incomplete_and_other_data(checkpoint, tmp_path):
    from gcpbench.models import build, save_checkpoint
    from gcpbench.robustness.imagenet_c import evaluate_c

    ckpt = tmp_path / "best.pt"
    shutil.copy(checkpoint, ckpt)
    tree = c_tree(tmp_path / "c")
    (tree / "brightness" / "2" / CLASSES[2] / "img_003.JPEG").unlink()   # a tree missing one image
    summary, run = evaluate_c(c_request(ckpt, tree, clean_error=0.1), tmp_path / "run")
    assert summary["missing_images"] == 1 and summary["partial"] is True and summary["source_kind"] == "other"
    assert "not comparable" in summary["normalisation"]

    report = _report([run.path], tmp_path / "report")
    row = report.table("robustness").frame.dropna(subset=["run"]).iloc[0]
    assert row["status (C)"] == "partial, incomplete, not ImageNet"
    assert np.isnan(row["Δ mCE"])
    text = (tmp_path / "report" / "robustness.md").read_text()
    assert f"{row['mCE']:.2f} [partial, incomplete, not ImageNet]" in text
    assert "[partial, incomplete, not ImageNet]" in (tmp_path / "report" / "robustness.tex").read_text()
    assert "status (C)" in (tmp_path / "report" / "robustness.csv").read_text().splitlines()[0]
    assert not any("stale" in w for w in report.warnings)
    figure = next(f for f in report.figures if f.title.startswith("ImageNet-C"))
    assert "not comparable with published CE" in figure.note                # no "AlexNet = 100" line for it

    save_checkpoint(ckpt, build("resnet18_gap", num_classes=3), "resnet18_gap")   # training wrote a new best.pt
    report = _report([run.path], tmp_path / "report2")
    row = report.table("robustness").frame.dropna(subset=["run"]).iloc[0]
    assert row["status (C)"].startswith("stale, ")
    assert any("marked stale; refresh them with `gcpbench eval-c --ckpt" in w and str(ckpt) in w
               for w in report.warnings)
    columns = report.table("corruption_ce").frame.columns
    assert any(c.endswith("[stale, partial, incomplete, not ImageNet]") for c in columns)
    assert f"{row['mCE']:.2f} [stale," in (tmp_path / "report2" / "report.md").read_text()


def test_report_marks_a_partial_perturbation_mean(tmp_path):
    """eval-p over 2 of 10 perturbations (the summary says partial): its mFP is marked, no Δ."""
    from gcpbench.identity import Producer, ResultIdentity
    from gcpbench.io import atomic_write_json
    from gcpbench.records import PerturbationResult

    run = tmp_path / "eval_run"
    atomic_write_json(run / "config.json", {"command": "eval-p", "model": "resnet18_gcp", "dataset": "imagenet-p"})
    identity = ResultIdentity(Producer("resnet18_gcp", str(tmp_path / "gone.pt"), "ab" * 32), "/data/p")
    result = PerturbationResult(model="resnet18_gcp", dataset="imagenet-p", mFP=6.5, mT5D=40.0,
                                FP={"gaussian_noise": 6.0, "rotate": 7.0}, partial=True, source_kind="imagenet-val",
                                identity=identity, extra={"geometry_mode": "native"})
    atomic_write_json(run / "eval" / "imagenet_p_summary.json", result.to_json())
    report = _report([run], tmp_path / "report")
    row = report.table("robustness").frame.dropna(subset=["run"]).iloc[0]
    assert row["status (P)"] == "partial" and np.isnan(row["Δ mFP"])
    assert row["dataset (P)"] == "imagenet-p (native size)"                 # the tree's geometry, shown
    assert "6.50 [partial]" in (tmp_path / "report" / "robustness.md").read_text()
    import io

    from rich.console import Console

    from gcpbench.cli.report_summary import print_summary

    console = Console(file=io.StringIO(), width=250, color_system=None)
    print_summary(report, console)                                   # the terminal table marks it too
    assert "6.50 [partial]" in console.file.getvalue()


def test_a_downloaded_tree_missing_the_same_image_everywhere_is_incomplete(tmp_path, caplog):
    """Every subset lacks one image: the subsets agree, but ImageNet-C holds 50 images per class."""
    from gcpbench.data.manifests import imagenet_classes
    from gcpbench.robustness.trees import tree_items

    wnids = imagenet_classes()[:2]
    pixel = Image.new("RGB", (4, 4))
    for severity in (1, 2):
        for k, wnid in enumerate(wnids):
            (tmp_path / "fog" / str(severity) / wnid).mkdir(parents=True)
            for i in range(50 - (k == 0)):
                pixel.save(tmp_path / "fog" / str(severity) / wnid / f"ILSVRC2012_val_{i:08d}.png")
    folders = {f"fog/{s}": tmp_path / "fog" / str(s) for s in (1, 2)}
    with caplog.at_level("WARNING", logger="gcpbench"):
        found = tree_items("ImageNet-C", tmp_path, folders, lambda: None, {"classes": wnids}, 2, {".png"}, None, 0)
    assert found.missing == 2 and len(found.items) == 2 * 99
    assert "is missing 2 file(s): 'fog/1' holds 99 of 100" in caplog.text


def test_console_tables_mark_partial_and_other_data():
    from gcpbench.cli.robustness_tables import c_table, marks

    summary = {"model": "m", "dataset": "synthetic", "severities": [1], "CE": {"fog": 80.0}, "errors": {"fog": {"1": 0.5}},
               "mCE": 80.0, "relative_mCE": None, "partial": True, "source_kind": "synthetic", "missing_images": 2,
               "normalisation": "AlexNet's ImageNet errors divide numbers measured on other data"}
    assert marks(summary) == "partial, incomplete, not ImageNet"
    rows = c_table(summary).columns[0]._cells
    assert rows[-1] == "mCE, relative mCE \\[partial, incomplete, not ImageNet]"
    assert marks({"partial": False, "source_kind": "imagenet-val"}) == ""


def test_implausible_clean_errors_and_negative_relative_ce_are_named():
    from gcpbench.robustness.imagenet_c import implausible

    assert implausible({"clean_error": 0.1, "relative_CE": {"fog": 20.0}}, 10, 1000) == []
    chance = implausible({"clean_error": 0.89, "relative_CE": {}}, 10, 1000)      # 1 - 1/10 = 0.9, 2 sigma 0.019
    assert len(chance) == 1 and "at chance for 10 classes" in chance[0]
    assert implausible({"clean_error": 0.85, "relative_CE": {}}, 10, 1000) == []
    negative = implausible({"clean_error": 0.3, "relative_CE": {"fog": -4.0, "snow": 10.0}}, 1000, 50000)
    assert len(negative) == 1 and "relative CE is negative for fog" in negative[0]


def test_generated_trees_record_their_source(tmp_path, clean_tree):
    """A toy tree and ImageNet's val/ gave the same label 'generated'; now each says what it is."""
    from gcpbench.data.manifests import imagenet_classes
    from gcpbench.robustness.make_c import make_c
    from gcpbench.robustness.trees import source_kind

    toy = make_c(clean_tree, tmp_path / "toy", ["contrast"], [1], per_class=1, workers=0, quiet=True)
    assert (toy["source_kind"], toy["dataset"]) == ("other", "generated from another tree")
    wnids = imagenet_classes()[:3]
    src = tmp_path / "imagenet" / "val"
    write_tree(src, {w: images[:1] for w, images in zip(wnids, tiny_images().values())})
    made = make_c(src, tmp_path / "imnet", ["contrast"], [1], workers=0, quiet=True)
    assert (made["source_kind"], made["dataset"]) == ("imagenet-val", "generated from ImageNet val")
    assert source_kind(tmp_path / "imnet", wnids) == "imagenet-val"
    write_tree(tmp_path / "downloaded" / "contrast" / "1", {w: [] for w in wnids})
    assert source_kind(tmp_path / "downloaded", wnids) == "imagenet-val"       # ImageNet-C proper
    assert source_kind(tmp_path / "downloaded", CLASSES) == "other"


# ----------------------------------------------------------------------------- 7. geometry


def test_small_sources_get_the_official_geometry_and_native_size_is_explicit(clean_tree, tmp_path):
    from gcpbench.robustness.make_c import make_c
    from gcpbench.robustness.make_p import make_p
    from gcpbench.robustness.video import read_mp4

    # a tree of 32 px images with one 300 px image first: every image gets Resize(256) + CenterCrop(224)
    src = tmp_path / "src"
    shutil.copytree(clean_tree, src)
    Image.new("RGB", (300, 260), (90, 20, 200)).save(src / CLASSES[0] / "a_big.png")
    record = make_c(src, tmp_path / "c", ["brightness"], [1], workers=0, quiet=True)
    sizes = {Image.open(p).size for p in (tmp_path / "c").rglob("*.JPEG")}
    assert sizes == {(224, 224)} and record["geometry_mode"] == "official"
    record = make_p(src, tmp_path / "p", ["brightness"], per_class=1, workers=0, quiet=True)
    assert {read_mp4(p).shape[1:] for p in (tmp_path / "p").rglob("*.mp4")} == {(224, 224, 3)}
    assert record["geometry_mode"] == "official" and "for every source image" in record["geometry"]
    with pytest.raises(GcpbenchError, match="--native-size applies to the built-in synthetic set only"):
        make_c(src, tmp_path / "n", ["brightness"], [1], workers=0, quiet=True, native=True)
    with as_builtin_set(clean_tree):
        native = make_c(None, tmp_path / "n", ["brightness"], [1], per_class=1, workers=0, quiet=True, native=True)
        with pytest.raises(GcpbenchError, match="geometry_mode native; files made with geometry_mode official"):
            make_c(None, tmp_path / "n", ["brightness"], [1], per_class=1, workers=0, quiet=True)
    assert native["geometry_mode"] == "native" and "native size" in native["geometry"]
    assert {Image.open(p).size for p in (tmp_path / "n").rglob("*.JPEG")} == {(32, 32)}
    marker = json.loads((tmp_path / "n" / "gcpbench_generated.json").read_text())
    assert marker["geometry_mode"] == "native"
    # a set made by `data synth` is the built-in synthetic set wherever it lies (the demo's)
    from gcpbench.data.synthetic import make_classification_set

    synth = make_classification_set(tmp_path / "synth", num_classes=2, image_size=24, train_per_class=1,
                                    val_per_class=1, seed=0)
    made = make_c(synth / "val", tmp_path / "s", ["brightness"], [1], workers=0, quiet=True, native=True)
    assert (made["source_kind"], made["geometry_mode"]) == ("synthetic", "native")
    assert {Image.open(p).size for p in (tmp_path / "s").rglob("*.JPEG")} == {(24, 24)}
