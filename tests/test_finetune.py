"""Fine-grained transfer: the official layouts (tiny generated trees), the published protocol, the
model transfer, the two-crop evaluation against an independent computation, faults, and an
end-to-end fine-tune through the command line for each layout."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fgvc_tiny import CARS, CLASSES, VARIANTS, make_aircraft, make_cars, make_cub, make_folder
from gcpbench.data.fgvc import read_dataset
from gcpbench.data.manifests import is_official_fgvc
from gcpbench.errors import GcpbenchError
from gcpbench.finetune.protocol import FinetuneSchedule, make_protocol, published
from gcpbench.models import build, save_checkpoint
from gcpbench.records import FgvcResult, FinetuneConfig
from gcpbench.runs import RunDir


# ------------------------------------------------------------------------------ layouts

def test_cub_official_layout(tmp_path) -> None:
    folder = make_cub(tmp_path)
    for root in (folder, tmp_path):  # the extracted folder, or the folder holding it
        data = read_dataset("cub", root)
        assert data.root == folder and data.classes == [f"{i + 1:03d}.{c.replace(' ', '_')}" for i, c in enumerate(CLASSES)]
        assert (len(data.train), len(data.test)) == (12, 6)
        assert sorted({label for _, label in data.train}) == [0, 1, 2]  # the files' 1..3, 0-based
        assert all("_0004" in p or "_0005" in p for p, _ in data.test)
        assert not is_official_fgvc(data)  # not the official 5,994 / 5,794


def test_aircraft_through_torchvision(tmp_path) -> None:
    folder = make_aircraft(tmp_path)
    data = read_dataset("aircraft", folder)
    assert data.classes == list(VARIANTS) and (len(data.train), len(data.test)) == (12, 6)
    assert data.test[0] == (str(folder / "data" / "images" / "1000005.jpg"), 0)
    assert read_dataset("aircraft", tmp_path).fingerprint() == data.fingerprint()


def test_cars_mat_files_through_torchvision(tmp_path) -> None:
    folder = make_cars(tmp_path)
    data = read_dataset("cars", folder)
    assert data.classes == list(CARS) and (len(data.train), len(data.test)) == (12, 6)
    assert data.train[0] == (str(folder / "cars_train" / "00001.jpg"), 0)
    assert data.test[-1] == (str(folder / "cars_test" / "00006.jpg"), 2)


def test_imagefolder_val_or_test(tmp_path) -> None:
    assert read_dataset("folder", make_folder(tmp_path / "a")).test_split == "val"
    data = read_dataset("folder", make_folder(tmp_path / "b", held_out="test"))
    assert data.test_split == "test" and len(data.test) == 6
    (tmp_path / "b" / "test").rename(tmp_path / "b" / "held_out")
    with pytest.raises(GcpbenchError, match="has no val/ or test/ folder"):
        read_dataset("folder", tmp_path / "b")


def test_resume_refuses_changed_data(tmp_path) -> None:
    from gcpbench.finetune.runner import _data_of

    folder = make_cub(tmp_path)
    config = FinetuneConfig(dataset="cub", data_root=str(folder), data_fingerprint=read_dataset("cub", folder).fingerprint())
    assert _data_of(config).fingerprint() == config.data_fingerprint
    (folder / "train_test_split.txt").write_text((folder / "train_test_split.txt").read_text().replace("1 1\n", "1 0\n", 1))
    with pytest.raises(GcpbenchError, match="splits under .* changed since the run started"):
        _data_of(config)


def test_fingerprint_follows_files_and_labels(tmp_path) -> None:
    folder = make_cub(tmp_path)
    before = read_dataset("cub", folder).fingerprint()
    labels = folder / "image_class_labels.txt"
    labels.write_text(labels.read_text().replace("1 1\n", "1 2\n", 1))
    assert read_dataset("cub", folder).fingerprint() != before


# ------------------------------------------------------------------------------ faults

@pytest.mark.parametrize("dataset, make, breakage, message", [
    ("cub", make_cub, lambda f: (f / "images.txt").unlink(), "has no images.txt"),
    ("cub", make_cub, lambda f: (f / "train_test_split.txt").unlink(), "has no train_test_split.txt"),
    ("cub", make_cub, lambda f: (f / "image_class_labels.txt").write_text("1 4\n" + "\n".join(
        f"{i} 1" for i in range(2, 19))), "label 4, outside the 3 classes"),
    ("cub", make_cub, lambda f: (f / "images" / "001.Black_footed_Albatross" / "Black_footed_Albatross_0000.jpg").unlink(),
     "does not exist"),
    ("aircraft", make_aircraft, lambda f: (f / "data" / "images_variant_test.txt").unlink(),
     "has no data/images_variant_test.txt"),
    ("aircraft", make_aircraft, lambda f: (f / "data" / "variants.txt").write_text("707-320\nA320\n"),
     "not in the class list"),
    ("aircraft", make_aircraft, lambda f: f.rename(f.parent / "aircraft"), "folder named fgvc-aircraft-2013b"),
    ("cars", lambda r: make_cars(r, bad_class=9), lambda f: None, "label 9, outside the 3 classes"),
    ("cars", make_cars, lambda f: (f / "devkit" / "cars_meta.mat").unlink(), "has no devkit/cars_meta.mat"),
    ("cars", make_cars, lambda f: (f / "devkit" / "cars_train_annos.mat").write_bytes(b"not a mat file"),
     "torchvision cannot read the dataset"),
])
def test_layout_faults_are_one_line(tmp_path, dataset, make, breakage, message) -> None:
    folder = make(tmp_path)
    breakage(folder)
    root = tmp_path / "aircraft" if message.startswith("folder named") else folder
    with pytest.raises(GcpbenchError, match=message) as info:
        read_dataset(dataset, root)
    assert "\n" not in str(info.value)


def test_a_tree_of_another_dataset_is_named(tmp_path) -> None:
    make_aircraft(tmp_path)
    with pytest.raises(GcpbenchError, match="has no images/ folder"):
        read_dataset("cub", tmp_path / "fgvc-aircraft-2013b")


def test_data_check_commands(tmp_path, run_cli) -> None:
    cub, cars = make_cub(tmp_path), make_cars(tmp_path)
    code, _, err = run_cli("data", "check", "cub", str(cub), "--quiet")
    assert code == 2 and "the train split lists 12 images, expected 5,994" in err
    code, out, _ = run_cli("data", "check", "cub", str(cub), "--structure-only", "--quiet")
    assert code == 0 and "OK, 18 files" in out
    code, out, _ = run_cli("data", "check", "cars", str(cars), "--structure-only")
    assert code == 0 and "train" in out and "test" in out
    (cub / "classes.txt").unlink()
    code, _, err = run_cli("data", "check", "cub", str(tmp_path), "--quiet")
    assert code == 2 and "has no classes.txt" in err and err.count("\n") == 1


def test_manifests_hold_the_official_counts() -> None:
    from gcpbench.data.manifests import load_manifest

    counts = {name: (load_manifest(name)["files"]["counts"], load_manifest(name)["num_classes"])
              for name in ("cub", "aircraft", "cars")}
    assert counts == {"cub": ({"train": 5994, "test": 5794}, 200), "aircraft": ({"train": 6667, "test": 3333}, 100),
                      "cars": ({"train": 8144, "test": 8041}, 196)}
    from gcpbench.data.fgvc import FgvcData

    def sized(dataset: str, train: int, test: int, classes: int) -> FgvcData:
        return FgvcData(dataset, Path("/x"), [str(i) for i in range(classes)], [("a", 0)] * train, [("b", 0)] * test)

    assert is_official_fgvc(sized("cub", 5994, 5794, 200)) and is_official_fgvc(sized("cars", 8144, 8041, 196))
    assert not is_official_fgvc(sized("cub", 5994, 5793, 200)) and not is_official_fgvc(sized("folder", 5994, 5794, 200))


# ------------------------------------------------------------------------------ protocol

def test_published_protocol_values() -> None:
    p = published("cub")
    assert (p.epochs, p.batch_size, p.lr, p.classifier_lr_factor, p.weight_decay, p.image_size) == \
        (100, 10, 1.2e-3, 5.0, 1e-3, 448)
    assert (p.train_resize, published("aircraft").train_resize, published("cars").train_resize) == \
        (448, (512, 512), (448, 448))
    assert (published("aircraft").val_resize, published("cars").val_resize, p.eval_resize) == ((512, 512), 448, 448)
    schedule = FinetuneSchedule(p)
    assert {schedule.lr(e) for e in range(100)} == {1.2e-3}  # the step at epoch 100 never acts
    stepped = FinetuneSchedule(make_protocol("cub", epochs=4, lr_steps=[2, 3]))
    assert [stepped.lr(e) for e in range(4)] == pytest.approx([1.2e-3, 1.2e-3, 1.2e-4, 1.2e-5])
    small = make_protocol("aircraft", image_size=64)
    assert (small.train_resize, small.eval_resize) == ((73, 73), 64)  # 512 * 64/448 = 73.1
    assert make_protocol("cub", vgg=True).head_weight_decay == 0.0 and p.head_weight_decay == 1e-3
    assert any("differs from the published protocol: epochs 4" in line for line in stepped.describe())


def test_protocol_rejects_bad_values() -> None:
    with pytest.raises(GcpbenchError, match="--select must be best or last"):
        make_protocol("cub", select="worst")
    with pytest.raises(GcpbenchError, match="--lr must be a positive number"):
        make_protocol("cub", lr=-1.0)
    with pytest.raises(GcpbenchError, match="--classifier-weight-decay must be 0 or more"):
        make_protocol("cub", classifier_weight_decay=float("nan"))


# ------------------------------------------------------------------------------ model transfer

def test_gap_checkpoint_gets_a_new_gcp_head_and_classifier(tmp_path) -> None:
    from gcpbench.finetune.model import finetune_model, parameter_groups

    torch.manual_seed(0)
    source = build("resnet18_gap")
    path = save_checkpoint(tmp_path / "gap.pt", source, "resnet18_gap")
    net, transfer = finetune_model(path, None, None, 7, head="gcp", gcp_dim=128)
    assert net.zoo_name == "resnet18_gcp128" and net.fc.out_features == 7
    assert torch.equal(net.layer4[1].conv2.weight, source.layer4[1].conv2.weight)
    assert "layer_reduce.weight" in transfer.initialised and "fc.weight" in transfer.initialised
    assert "fc.weight" in transfer.ignored
    groups = parameter_groups(net, 1e-3, 5.0, 1e-3, 0.0)
    assert [g["lr_factor"] for g in groups] == [1.0, 5.0] and groups[1]["lr"] == pytest.approx(5e-3)
    assert groups[1]["params"] == [net.fc.weight, net.fc.bias]


def test_gcp_head_trained_at_224_is_reused(tmp_path) -> None:
    from gcpbench.finetune.model import finetune_model

    source = build("resnet18_gcp128", num_classes=10)
    path = save_checkpoint(tmp_path / "gcp.pt", source, "resnet18_gcp128")
    net, transfer = finetune_model(path, None, None, 3)
    assert torch.equal(net.layer_reduce.weight, source.layer_reduce.weight)
    assert transfer.initialised == ["fc.weight", "fc.bias"]
    assert net(torch.randn(2, 3, 96, 96)).shape == (2, 3)  # any input size: the covariance is D x D
    with pytest.raises(GcpbenchError, match="keeps it"):
        finetune_model(path, None, None, 3, head="gap")


def test_torchvision_weights_keep_or_change_their_head(tmp_path) -> None:
    from gcpbench.finetune.model import classifier_prefix, finetune_model

    source = build("torchvision/resnet18")
    path = tmp_path / "resnet18.pth"
    torch.save(source.backbone.state_dict(), path)  # a torchvision weight file: plain keys
    gap, transfer = finetune_model(None, "torchvision/resnet18", path, 5)
    assert gap.zoo_name == "torchvision/resnet18" and classifier_prefix(gap) == "backbone.fc."
    assert transfer.initialised == ["backbone.fc.weight", "backbone.fc.bias"] and gap.backbone.fc.out_features == 5
    assert torch.equal(gap.backbone.layer3[0].conv1.weight, source.backbone.layer3[0].conv1.weight)
    gcp, transfer = finetune_model(None, "torchvision/resnet18", path, 5, head="gcp", gcp_dim=64)
    assert gcp.zoo_name == "torchvision/resnet18_gcp64" and gcp.fc.out_features == 5
    assert {"layer_reduce.weight", "fc.weight"} <= set(transfer.initialised)
    assert torch.equal(gcp.backbone.layer4[1].conv2.weight, source.backbone.layer4[1].conv2.weight)


def test_checkpoint_of_another_architecture_is_refused(tmp_path) -> None:
    from gcpbench.finetune.model import finetune_model

    path = save_checkpoint(tmp_path / "r18.pt", build("resnet18_gap"), "resnet18_gap")
    with pytest.raises(GcpbenchError, match="holds a resnet18_gap, but the model was given as resnet34_gap"):
        finetune_model(None, "resnet34", path, 3)


# ------------------------------------------------------------------------------ two-crop evaluation

def _reference_views(path: str, resize: int, crop: int) -> np.ndarray:
    """The two views by hand: shorter side to ``resize`` (PIL bilinear, as torchvision on PIL
    images), the centre crop of the image and of its mirror, ImageNet normalisation."""
    image = Image.open(path).convert("RGB")
    w, h = image.size
    size = (resize, int(h * resize / w)) if w <= h else (int(w * resize / h), resize)  # torchvision truncates
    image = image.resize(size, Image.BILINEAR)
    views = []
    for picture in (image, image.transpose(Image.FLIP_LEFT_RIGHT)):
        array = np.asarray(picture, dtype=np.float64) / 255.0
        top, left = int(round((array.shape[0] - crop) / 2.0)), int(round((array.shape[1] - crop) / 2.0))
        array = array[top:top + crop, left:left + crop]
        array = (array - [0.485, 0.456, 0.406]) / [0.229, 0.224, 0.225]
        views.append(array.transpose(2, 0, 1))
    return np.stack(views)


def test_two_crop_averages_logits_as_an_independent_computation(tmp_path) -> None:
    from gcpbench.data.folders import ImageList, make_loader
    from gcpbench.finetune.evaluation import evaluate_views
    from gcpbench.finetune.transforms import eval_transform

    data = read_dataset("cub", make_cub(tmp_path, train_per_class=0, test_per_class=3))
    protocol = make_protocol("cub", image_size=32)
    torch.manual_seed(0)
    net = build("resnet18_gap", num_classes=3).eval()
    loader = make_loader(ImageList(data.test, eval_transform(protocol)), 4, shuffle=False, workers=0)
    result = evaluate_views(net, loader, torch.device("cpu"), progress=False)
    assert not net.training  # the evaluation leaves the network in the mode it found it

    losses, hits = [], 0
    for path, label in data.test:
        views = torch.from_numpy(_reference_views(path, 32, 32)).float()
        with torch.no_grad():
            logits = net(views).double().numpy().mean(axis=0)  # the mean of the two views' logits
        shifted = logits - logits.max()
        losses.append(-(shifted[label] - math.log(np.exp(shifted).sum())))
        hits += int(np.argmax(logits) == label)
    assert result["images"] == 9
    assert result["top1"] == pytest.approx(100.0 * hits / 9)
    assert result["loss"] == pytest.approx(float(np.mean(losses)), rel=1e-4)


def test_mirror_view_is_the_flipped_image_not_the_flipped_crop(tmp_path) -> None:
    from gcpbench.finetune.transforms import CenterCropWithMirror

    image = Image.fromarray(np.arange(5 * 7 * 3, dtype=np.uint8).reshape(5, 7, 3))
    views = CenterCropWithMirror(4)(image)  # 7 - 4 is odd: the two crops sit one pixel apart
    first, second = views[0], views[1]
    assert views.shape == (2, 3, 4, 4) and not torch.equal(second, first.flip(-1))
    mirrored = CenterCropWithMirror(4)(image.transpose(Image.FLIP_LEFT_RIGHT))
    assert torch.equal(mirrored[1], first)


# ------------------------------------------------------------------------------ end to end

def _source(tmp_path, name: str = "resnet18_gap"):
    torch.manual_seed(1)
    return save_checkpoint(tmp_path / f"{name}.pt", build(name), name)


FAST = ["--epochs", "1", "--batch-size", "4", "--image-size", "64", "--workers", "0", "--quiet"]


@pytest.mark.slow
@pytest.mark.parametrize("dataset, make, extra", [("cub", make_cub, []), ("aircraft", make_aircraft, []),
                                                  ("cars", make_cars, []), ("folder", make_folder, ["--amp"])])
def test_finetune_end_to_end_on_each_layout(tmp_path, run_cli, dataset, make, extra) -> None:
    root = make(tmp_path / "data")
    out = tmp_path / "run"
    code, _, err = run_cli("finetune", "--dataset", dataset, "--data", str(root), "--ckpt", str(_source(tmp_path)),
                           "--out", str(out), *FAST, *extra)
    assert code == 0, err
    run = RunDir(out)
    config = run.run_config()
    assert config.amp == bool(extra)
    assert isinstance(config, FinetuneConfig) and config.num_classes == 3 and config.protocol["batch_size"] == 4
    assert config.data_fingerprint == read_dataset(dataset, root).fingerprint() and len(config.source_sha256) == 64
    result = run.read_result(FgvcResult)
    assert result.images == 6 and result.views == 2 and result.epoch == 1 and result.dataset == dataset
    assert result.identity.options["protocol"]["lr"] == 1.2e-3
    assert result.identity.producer.run_id == config.run_id
    groups = torch.load(run.last_checkpoint, weights_only=True)["optimizer"]["param_groups"]
    assert [g["lr"] for g in groups] == pytest.approx([1.2e-3, 6e-3])  # the classifier at 5x


@pytest.mark.slow
def test_gap_checkpoint_with_gcp_head_through_model_and_weights(tmp_path, run_cli) -> None:
    root = make_cub(tmp_path / "data")
    broken = root / "images" / "002.Laysan_Albatross" / "Laysan_Albatross_0005.jpg"  # a test image
    broken.write_bytes(b"not a jpeg")
    code, _, err = run_cli("finetune", "--dataset", "cub", "--data", str(root), "--model", "resnet18",
                           "--weights", str(_source(tmp_path)), "--head", "gcp", "--gcp-dim", "128",
                           "--out", str(tmp_path / "run"), "--one-crop", "--select", "last", *FAST)
    assert code == 0, err
    result = RunDir(tmp_path / "run").read_result(FgvcResult)
    assert result.model == "resnet18_gcp128" and result.views == 1 and result.select == "last"
    assert result.images == 5 and result.extra["unreadable"] == [str(broken)]  # skipped, counted, listed
    assert "warning: epoch 1: skipped 1 unreadable image" in err


@pytest.mark.slow
def test_kill_then_resume_equals_uninterrupted(tmp_path) -> None:
    import os
    import signal
    import subprocess
    import sys

    from gcpbench.finetune import FinetuneOptions, finetune
    from gcpbench.io import read_jsonl
    from hang import hang_env
    from test_train_resume import wait_for

    root, source = make_cub(tmp_path / "data"), _source(tmp_path)
    args = dict(dataset="cub", data=str(root), ckpt=str(source), epochs=2, batch_size=4, image_size=32, workers=0,
                deterministic=True, quiet=True)
    killed = RunDir(tmp_path / "killed")
    env = {**os.environ, **hang_env("2:2"), "OMP_NUM_THREADS": "1"}
    flags = [f for k, v in args.items() for f in ((f"--{k.replace('_', '-')}",) if v is True else
                                                   (f"--{k.replace('_', '-')}", str(v)))]
    process = subprocess.Popen([sys.executable, "-m", "gcpbench", "finetune", *flags, "--out", str(killed.path)],
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wait_for(lambda: (killed.path / ".hang").is_file(), process)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    assert not killed.eval.joinpath("fgvc.json").exists()

    finetune(FinetuneOptions(resume=str(killed.path), quiet=True))
    reference = finetune(FinetuneOptions(out=str(tmp_path / "reference"), **args))
    exact = ["epoch", "lr", "train_loss", "train_top1", "val_loss", "val_top1"]
    assert [{k: r[k] for k in exact} for r in read_jsonl(killed.metrics_jsonl)] == \
        [{k: r[k] for k in exact} for r in read_jsonl(reference.metrics_jsonl)]
    ours, theirs = (json.loads(r.eval_file("fgvc.json").read_text()) for r in (killed, reference))
    assert (ours["top1"], ours["loss"]) == (theirs["top1"], theirs["loss"])
    # a finished run resumes to nothing; its result is kept, not recomputed
    before = killed.eval_file("fgvc.json").stat().st_mtime_ns
    finetune(FinetuneOptions(resume=str(killed.path), quiet=True))
    assert killed.eval_file("fgvc.json").stat().st_mtime_ns == before


@pytest.mark.slow
def test_a_run_stopped_before_its_first_checkpoint_restarts_from_the_source_identically(tmp_path) -> None:
    """What a kill in epoch 1 leaves (config.json, no checkpoint): resume builds the start again
    from the source checkpoint and the seed, and ends where the uninterrupted run ended."""
    import shutil

    from gcpbench.finetune import FinetuneOptions, finetune
    from gcpbench.io import read_jsonl

    root = make_aircraft(tmp_path / "data")
    run = finetune(FinetuneOptions(dataset="aircraft", data=str(root), ckpt=str(_source(tmp_path)), epochs=2,
                                   batch_size=4, image_size=32, workers=0, deterministic=True, quiet=True,
                                   out=str(tmp_path / "run")))
    metrics, result = read_jsonl(run.metrics_jsonl), json.loads(run.eval_file("fgvc.json").read_text())
    weights = torch.load(run.last_checkpoint, weights_only=True)["state_dict"]
    for leftover in (run.checkpoints, run.eval):
        shutil.rmtree(leftover)
    run.metrics_jsonl.unlink()
    finetune(FinetuneOptions(resume=str(run.path), quiet=True))
    exact = ["epoch", "lr", "train_loss", "train_top1", "val_loss", "val_top1"]
    assert [{k: r[k] for k in exact} for r in read_jsonl(run.metrics_jsonl)] == [{k: r[k] for k in exact} for r in metrics]
    again = torch.load(run.last_checkpoint, weights_only=True)["state_dict"]
    assert all(torch.equal(again[key], tensor) for key, tensor in weights.items())
    assert json.loads(run.eval_file("fgvc.json").read_text())["top1"] == result["top1"]


@pytest.mark.slow
def test_resume_refuses_other_options_and_train_resume_refuses_finetune_runs(tmp_path, run_cli) -> None:
    root = make_folder(tmp_path / "data")
    out = tmp_path / "run"
    code, _, err = run_cli("finetune", "--dataset", "folder", "--data", str(root), "--ckpt", str(_source(tmp_path)),
                           "--out", str(out), *FAST)
    assert code == 0, err
    code, _, err = run_cli("finetune", "--resume", str(out), "--lr", "0.1", "--quiet")
    assert code == 2 and "--lr 0.1 differs from the run's 0.0012" in err
    code, _, err = run_cli("train", "--resume", str(out), "--quiet")
    assert code == 2 and "is a finetune run: continue it with `gcpbench finetune --resume" in err


def test_cli_faults_are_one_line(tmp_path, run_cli) -> None:
    root = make_cub(tmp_path / "data")
    code, _, err = run_cli("finetune", "--dataset", "dogs", "--data", str(root), "--ckpt", "x.pt")
    assert code == 2 and "unknown dataset 'dogs'" in err
    code, _, err = run_cli("finetune", "--dataset", "cub", "--data", str(root), "--out", str(tmp_path / "r"))
    assert code == 2 and "--ckpt FILE, or --model NAME --weights FILE" in err
    other = save_checkpoint(tmp_path / "r18.pt", build("resnet18_gap"), "resnet18_gap")
    code, _, err = run_cli("finetune", "--dataset", "cub", "--data", str(root), "--model", "resnet34",
                           "--weights", str(other), "--out", str(tmp_path / "r2"), "--quiet")
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 2 and len(errors) == 1 and "looks like a 'resnet18_gap' checkpoint" in errors[0]
    assert "Traceback" not in err


# ------------------------------------------------------------------------------ report

def _finetune_run(path, model: str, arch: str, head: str, dim, dataset: str, top1: float, subset: bool = False,
                  sha: str = "a" * 64, result_model: str | None = None) -> None:
    run = RunDir(path)
    path.mkdir(parents=True)
    run.write_config(FinetuneConfig(run_id=path.name, model=model, arch=arch, head=head, gcp_dim=dim,
                                    schedule="finetune", dataset=dataset, subset=subset, data_root=str(path / "data"),
                                    source_sha256=sha))
    run.write_result(FgvcResult(model=result_model or model, dataset=dataset, subset=subset, top1=top1, top5=99.0,
                                images=10, views=2, epoch=3, source_sha256=sha))


def test_report_table_is_laid_out_like_the_published_one(tmp_path) -> None:
    from gcpbench.report import build_report
    from gcpbench.report.tables import DELTA

    _finetune_run(tmp_path / "runs" / "gcp_cub", "resnet50_gcp", "resnet50", "gcp", 256, "cub", 87.5)
    _finetune_run(tmp_path / "runs" / "gcp_air", "resnet50_gcp", "resnet50", "gcp", 256, "aircraft", 40.0,
                  subset=True)
    _finetune_run(tmp_path / "runs" / "gap_cub", "resnet50_gap", "resnet50", "gap", None, "cub", 80.0, sha="b" * 64)
    _finetune_run(tmp_path / "runs" / "foreign", "resnet50_gap", "resnet50", "gap", None, "cub", 1.0,
                  sha="c" * 64, result_model="resnet18_gap")
    from gcpbench.records import EpochRecord

    RunDir(tmp_path / "runs" / "gcp_cub").write_epochs([EpochRecord(
        epoch=1, lr=1e-3, train_loss=1.0, train_top1=50.0, val_loss=1.0, val_top1=50.0, val_top5=90.0,
        images_per_s=1.0, wall_time_s=1.0)])
    result = build_report([tmp_path / "runs"], tmp_path / "report")
    assert result.table("imagenet").frame["run"].dropna().empty  # a fine-tuning is no ImageNet training
    table = result.table("fgvc").frame
    # per backbone: our GAP row, then the GCP rows, theirs beside ours
    assert list(table["source"]) == ["ours", "paper (iSQRT-COV)", "authors' reproduction", "ours"]
    assert list(table["head"]) == ["GAP", "GCP", "GCP", "GCP"] and set(table["backbone"]) == {"ResNet-50"}
    gap, gcp = table.iloc[0], table.iloc[3]
    assert gcp["CUB-200-2011"] == 87.5 and gcp["FGVC-Aircraft"] == 40.0 and gcp["run"] == "gcp_air, gcp_cub"
    assert gcp[f"{DELTA} CUB-200-2011"] == pytest.approx(87.5 - 88.1)
    assert math.isnan(gcp[f"{DELTA} FGVC-Aircraft"]) and "aircraft: not the official splits" in gcp["data"]
    assert gap["CUB-200-2011"] == 80.0 and math.isnan(gap[f"{DELTA} CUB-200-2011"])  # no published GAP number
    assert table.iloc[2]["Stanford Cars"] == 92.3
    assert any("foreign" in w and "results of resnet18_gap" in w for w in result.warnings)
    assert "## Fine-grained transfer" in result.report.read_text() and (tmp_path / "report" / "fgvc.csv").is_file()


# ------------------------------------------------------------------------------ sweep

def test_paper_fgvc_sweep_is_the_published_backbones_by_head_by_dataset(tmp_path) -> None:
    from gcpbench.report.paper import paper_fgvc
    from gcpbench.sweep import SweepDir, paper_spec
    from gcpbench.sweep.evaluations import command
    from gcpbench.sweep.spec import Evaluation
    from gcpbench.sweep.sweep import with_overrides

    spec = paper_spec(["fgvc"])
    assert [r.train["arch"] for r in spec.runs] == ["resnet50_gap", "resnet50_gcp", "resnet101_gap", "resnet101_gcp"]
    assert all(r.evaluations == ["finetune:cub", "finetune:aircraft", "finetune:cars"] for r in spec.runs)
    assert set(paper_fgvc()["backbone"]) == {"VGG-D", "ResNet-50", "ResNet-101"}
    assert any("VGG-D has no zoo model" in note for note in spec.notes)
    # the trainings are the imagenet grid's LRnorm runs (one sweep folder shares them)
    imagenet = {r.name for r in paper_spec(["imagenet"]).runs}
    assert {r.name for r in spec.runs} <= imagenet

    spec = with_overrides(spec, {}, None, {}, {"cub": str(tmp_path / "CUB_200_2011"), "cars": None})
    assert spec.eval_options == {"finetune": {"cub": str(tmp_path / "CUB_200_2011")}}
    run = SweepDir(tmp_path / "sweep").run(spec.runs[1].name)
    args = command(run, spec.runs[1], Evaluation.parse("finetune:cub"), {**spec.eval_options["finetune"], "amp": True})
    assert args == ["finetune", "--dataset", "cub", "--data", str(tmp_path / "CUB_200_2011"), "--ckpt",
                    str(run.best_checkpoint), "--out", str(run.path / "finetune" / "cub"), "--resume", "auto",
                    "--quiet", "--amp"]
    with pytest.raises(GcpbenchError, match="finetune:cars needs the dataset's root: `gcpbench sweep --cars ROOT`"):
        command(run, spec.runs[1], Evaluation.parse("finetune:cars"), spec.eval_options["finetune"])
    with pytest.raises(GcpbenchError, match="must read finetune:<cub|aircraft|cars|folder>"):
        Evaluation.parse("finetune:dogs")


# ------------------------------------------------------------------------------ torchrun

@pytest.mark.slow
def test_two_gloo_processes_and_the_final_evaluation_over_both(tmp_path) -> None:
    """DDP through torchrun: every rank tests its stride of the test split; the all-reduced
    result equals one process evaluating the saved checkpoint on the whole split."""
    import os
    import subprocess
    import sys

    from gcpbench.data.folders import ImageList, make_loader
    from gcpbench.finetune.evaluation import evaluate_views
    from gcpbench.finetune.transforms import eval_transform
    from gcpbench.models import load_model
    from test_ddp import free_port

    root, out = make_cub(tmp_path / "data"), tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MASTER_ADDR": "127.0.0.1"}
    done = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nnodes=1", "--nproc_per_node=2", "--master_addr=127.0.0.1",
         f"--master_port={free_port()}", "-m", "gcpbench", "finetune", "--dataset", "cub", "--data", str(root),
         "--ckpt", str(_source(tmp_path)), "--out", str(out), "--device", "cpu", *FAST],
        env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    run = RunDir(out)
    assert run.run_config().world_size == 2
    result = run.read_result(FgvcResult)
    net, _ = load_model(run.best_checkpoint)
    data = read_dataset("cub", root)
    loader = make_loader(ImageList(data.test, eval_transform(make_protocol("cub", image_size=64))), 3, shuffle=False,
                         workers=0)
    single = evaluate_views(net.eval(), loader, torch.device("cpu"), progress=False)
    assert result.images == single["images"] == 6
    assert (result.top1, result.top5) == (single["top1"], single["top5"])
    assert result.loss == pytest.approx(single["loss"], rel=1e-5)
