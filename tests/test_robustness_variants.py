"""ImageNet variants (V2, Sketch, R, A) end to end on tiny trees: labels, the 200-class logit
subset, result files with identity, data check, report rows."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from gcpbench.data.manifests import check_tree, imagenet_classes, load_manifest
from gcpbench.errors import GcpbenchError
from gcpbench.robustness.variants import VARIANTS, eval_variant, get_variant

SIZE = 16


def write_images(root, folders, per_class=2, seed=0):
    rng = np.random.default_rng(seed)
    for folder in folders:
        (root / folder).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            Image.fromarray(rng.integers(0, 256, (SIZE + 4, SIZE + 6, 3), dtype=np.uint8)).save(root / folder / f"{i}.png")
    return root


@pytest.fixture(scope="module")
def model_1k(tmp_path_factory):
    """An untrained 1000-class ResNet-18 (deterministic weights), saved as a gcpbench checkpoint."""
    from gcpbench.models import build, save_checkpoint

    torch.manual_seed(0)
    model = build("resnet18_gap", num_classes=1000)
    return save_checkpoint(tmp_path_factory.mktemp("m1k") / "model.pt", model, "resnet18_gap")


def expected_scores(checkpoint, root, folder_to_output, subset=None):
    """Top-1 / top-5 (%) computed here: each image through the model's own transform, logits kept
    at ``subset`` (or all), target = ``folder_to_output`` of its folder (an index into the kept logits)."""
    from gcpbench.models.resolve import resolve_model

    resolved = resolve_model(checkpoint)
    transform = resolved.preprocessing.at_size(SIZE).transform()
    model = resolved.model.eval()
    top1 = top5 = n = 0
    with torch.no_grad():
        for folder in sorted(p.name for p in root.iterdir()):
            for image in sorted((root / folder).iterdir()):
                logits = model(transform(Image.open(image).convert("RGB"))[None])[0]
                if subset is not None:
                    logits = logits[subset]
                order = logits.argsort(descending=True).tolist()
                target = folder_to_output[folder]
                top1 += order[0] == target
                top5 += target in order[:5]
                n += 1
    return 100 * top1 / n, 100 * top5 / n, n


def run(variant, checkpoint, root, out, **kwargs):
    return eval_variant(variant, checkpoint, root, out, workers=0, device="cpu", image_size=SIZE, quiet=True, **kwargs)


def test_imagenet_r_scores_on_its_classes_logits_only(tmp_path, model_1k):
    r_wnids = load_manifest("imagenet-r")["levels"][0]["required"]
    folders = [r_wnids[0], r_wnids[5], r_wnids[199]]
    root = write_images(tmp_path / "imagenet-r", folders)
    result, path = run("r", model_1k, root, tmp_path / "run")
    wnids = imagenet_classes()
    subset = [wnids.index(w) for w in folders]
    top1, top5, n = expected_scores(model_1k, root, {f: i for i, f in enumerate(folders)}, subset)
    assert (result["top1"], result["top5"], result["images"]) == pytest.approx((top1, top5, n))
    assert result["top5"] == 100.0  # 3 logits kept: top-5 holds them all
    assert path == tmp_path / "run" / "eval" / "imagenet_r.json"
    stored = json.loads(path.read_text())
    assert stored["identity"]["options"]["variant"] == "r" and stored["complete"] is False
    assert stored["scored_on"] == "the logits of its 3 classes"


def test_imagenet_v2_index_folders_map_to_labels(tmp_path, model_1k):
    folders = ["0", "10", "999"]  # label indices, sorted as text by the loader
    root = write_images(tmp_path / "v2", folders)
    result, path = run("v2", model_1k, root, tmp_path / "run")
    top1, top5, n = expected_scores(model_1k, root, {f: int(f) for f in folders})
    assert (result["top1"], result["top5"], result["images"]) == pytest.approx((top1, top5, n))
    assert json.loads(path.read_text())["dataset"] == "imagenet-v2"


def test_checkpoint_class_list_maps_folders(tmp_path):
    """A model trained on 3 named classes is scored on ImageNet-A folders of those classes."""
    from gcpbench.models import build, save_checkpoint

    a_wnids = load_manifest("imagenet-a")["levels"][0]["required"]
    torch.manual_seed(1)
    trained_on = [a_wnids[3], a_wnids[1], a_wnids[2]]
    checkpoint = save_checkpoint(tmp_path / "m.pt", build("resnet18_gap", num_classes=3), "resnet18_gap",
                                 classes=trained_on)
    folders = [a_wnids[1], a_wnids[3]]
    root = write_images(tmp_path / "imagenet-a", folders)
    result, _ = run("imagenet-a", checkpoint, root, tmp_path / "run")
    top1, _, n = expected_scores(checkpoint, root, {folders[0]: 0, folders[1]: 1}, [1, 0])
    assert (result["top1"], result["images"]) == pytest.approx((top1, n))


def test_wrong_model_and_wrong_tree_are_one_line(tmp_path, model_1k):
    from gcpbench.models import build, save_checkpoint

    other = save_checkpoint(tmp_path / "m3.pt", build("resnet18_gap", num_classes=3), "resnet18_gap")
    root = write_images(tmp_path / "sketch", ["n01440764"], per_class=1)
    with pytest.raises(GcpbenchError, match="predicts 3 classes"):
        run("sketch", other, root, tmp_path / "run")
    with pytest.raises(GcpbenchError, match="'n01440764' is not a class folder of ImageNet-R"):
        run("r", model_1k, root, tmp_path / "run")
    with pytest.raises(GcpbenchError, match="unknown variant 'x'"):
        get_variant("x")
    with pytest.raises(GcpbenchError, match="needs --data"):
        run("v2", model_1k, None, tmp_path / "run")


def test_manifests_name_the_first_missing_class(tmp_path):
    for variant in VARIANTS.values():
        manifest = load_manifest(variant.manifest)
        classes = manifest["levels"][0]["required"]
        assert len(classes) == manifest["num_classes"]
        root = write_images(tmp_path / variant.key, classes[:1] + classes[2:3], per_class=1)
        report = check_tree(variant.manifest, root, raise_on_error=False)
        assert report.problems[0] == f"missing folder '{classes[1]}'"
        assert f"data_manifests/{variant.manifest.replace('-', '_')}.json" in report.summary()
    r = load_manifest("imagenet-r")
    assert [imagenet_classes()[i] for i in r["imagenet_indices"]] == r["levels"][0]["required"]


def test_cli_and_report_show_the_variant(tmp_path, model_1k):
    from typer.testing import CliRunner

    from gcpbench.cli import app
    from gcpbench.report.collect import collect, variants_frame

    root = write_images(tmp_path / "imagenet-a", load_manifest("imagenet-a")["levels"][0]["required"][:2])
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["eval-imagenet", "--variant", "a", "--ckpt", str(model_1k), "--data", str(root),
                                      "--out", str(out), "--image-size", str(SIZE), "--workers", "0",
                                      "--device", "cpu", "--quiet"])
    assert result.exit_code == 0, result.output
    stored = json.loads((out / "eval" / "imagenet_a.json").read_text())
    frame = variants_frame(collect([out]))
    row = frame.iloc[0]
    assert row["variant"] == "ImageNet-A" and row["top1"] == pytest.approx(stored["top1"])
    assert not row["complete"]
    from gcpbench.report.build import build_report

    report = build_report([out], tmp_path / "report")
    table = report.table("imagenet_variants").frame
    assert list(table["variant"]) == ["ImageNet-A"] and list(table["data"]) == ["subset of classes"]
    assert "ImageNet variants" in report.report.read_text()
