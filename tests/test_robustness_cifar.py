"""CIFAR-10-C / CIFAR-100-C / CIFAR-10-P (.npy release layout) end to end on tiny arrays:
scores against a computation written here, resume, identity, data check, report rows."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from gcpbench.data.manifests import check_tree
from gcpbench.errors import GcpbenchError
from gcpbench.robustness.benchmarks import CIFAR10_CLASSES
from gcpbench.robustness.cifar import NpyRequest, evaluate_npy

PER_SEVERITY, SEQUENCES, FRAMES = 3, 3, 4
MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


@pytest.fixture(scope="module")
def cifar_model(tmp_path_factory):
    """A 10-class ResNet-18 checkpoint that names the CIFAR-10 classes (as `train` on a CIFAR tree writes)."""
    from gcpbench.models import build, save_checkpoint

    torch.manual_seed(0)
    return save_checkpoint(tmp_path_factory.mktemp("cifar") / "model.pt", build("resnet18_gap", num_classes=10),
                           "resnet18_gap", classes=list(CIFAR10_CLASSES))


def logits_of(checkpoint, frames: np.ndarray) -> np.ndarray:
    """The model's logits of uint8 [n, 32, 32, 3] frames, normalised here with ImageNet's mean / std."""
    from gcpbench.models import load_model

    model, _ = load_model(checkpoint)
    x = torch.from_numpy(((frames.astype(np.float32) / 255 - MEAN) / STD).transpose(0, 3, 1, 2).copy())
    with torch.no_grad():
        return model.eval()(x).numpy()


def resolved(checkpoint):
    from gcpbench.models.resolve import resolve_model

    return resolve_model(checkpoint)


def test_cifar10_c_mean_error_and_resume(tmp_path, cifar_model):
    rng = np.random.default_rng(0)
    root = tmp_path / "CIFAR-10-C"
    root.mkdir()
    labels = np.tile(rng.integers(0, 10, PER_SEVERITY), 5).astype(np.uint8)
    np.save(root / "labels.npy", labels)
    arrays = {}
    for name in ("fog", "contrast"):
        arrays[name] = rng.integers(0, 256, (5 * PER_SEVERITY, 32, 32, 3), dtype=np.uint8)
        np.save(root / f"{name}.npy", arrays[name])
    request = NpyRequest("cifar10-c", root, only=("fog", "contrast"), workers=0, device="cpu", quiet=True)
    summary, run = evaluate_npy(request, resolved(cifar_model), tmp_path / "run")
    expected = {}
    for name, frames in arrays.items():
        wrong = logits_of(cifar_model, frames).argmax(1) != labels
        expected[name] = 100 * np.mean([wrong[(s - 1) * PER_SEVERITY:s * PER_SEVERITY].mean() for s in range(1, 6)])
    assert summary["error"] == pytest.approx(expected)
    assert summary["mean_error"] == pytest.approx(np.mean(list(expected.values())))
    assert summary["partial"] and summary["images"] == 2 * 5 * PER_SEVERITY
    assert "unnormalised" in summary["normalisation"]
    stored = json.loads((run.eval / "cifar10_c_summary.json").read_text())
    assert stored["identity"]["options"]["benchmark"] == "cifar10-c"
    again, _ = evaluate_npy(request, resolved(cifar_model), tmp_path / "run")
    assert again["resumed_items"] == 2 * 5 * PER_SEVERITY and again["mean_error"] == summary["mean_error"]
    # the arrays rewritten at the same path (issue 23, item 3): other data, nothing resumed
    np.save(root / "fog.npy", arrays["fog"][::-1].copy())
    third, _ = evaluate_npy(request, resolved(cifar_model), tmp_path / "run")
    assert third["resumed_items"] == 0 and third["identity"]["data"]["listing"] != stored["identity"]["data"]["listing"]
    wrong = logits_of(cifar_model, arrays["fog"][::-1]).argmax(1) != labels          # the new file, not a cached map
    assert third["error"]["fog"] == pytest.approx(100 * np.mean([wrong[(s - 1) * PER_SEVERITY:s * PER_SEVERITY].mean()
                                                                 for s in range(1, 6)]))


def flip_and_t5d(logits: np.ndarray, noise: bool) -> tuple[float, float]:
    """FP and T5D of sequences [n, frames, classes], written out with loops."""
    fps, dists = [], []
    for seq in logits:
        pairs = [(0, j) if noise else (j - 1, j) for j in range(1, len(seq))]
        top5 = [list(np.argsort(-frame, kind="stable")[:5]) for frame in seq]
        fps.append(np.mean([top5[a][0] != top5[b][0] for a, b in pairs]))
        per_pair = []
        for a, b in pairs:
            per_pair.append(sum(abs(i - (top5[b].index(c) if c in top5[b] else 5)) for i, c in enumerate(top5[a])))
        dists.append(np.mean(per_pair))
    return float(np.mean(fps)), float(np.mean(dists))


def test_cifar10_p_flip_probability_and_report(tmp_path, cifar_model):
    from gcpbench.report.build import build_report

    rng = np.random.default_rng(1)
    root = tmp_path / "CIFAR-10-P"
    root.mkdir()
    base = rng.integers(0, 256, (SEQUENCES, 1, 32, 32, 3))
    arrays = {"gaussian_noise": np.clip(base + rng.normal(0, 40, (SEQUENCES, FRAMES, 32, 32, 3)), 0, 255),
              "translate": np.roll(np.repeat(base, FRAMES, 1), 3, axis=3)}
    arrays["translate"][:, 1::2] = np.roll(arrays["translate"][:, 1::2], 5, axis=2)
    for name, a in arrays.items():
        arrays[name] = a.astype(np.uint8)
        np.save(root / f"{name}.npy", arrays[name])
    request = NpyRequest("cifar10-p", root, only=("gaussian_noise", "translate"), workers=0, device="cpu", quiet=True)
    summary, run = evaluate_npy(request, resolved(cifar_model), tmp_path / "run")
    for name, frames in arrays.items():
        logits = logits_of(cifar_model, frames.reshape(-1, 32, 32, 3)).reshape(SEQUENCES, FRAMES, 10)
        fp, t5d = flip_and_t5d(logits, noise="noise" in name)
        assert summary["FP"][name] == pytest.approx(100 * fp) and summary["T5D"][name] == pytest.approx(t5d)
    assert summary["mFP"] == pytest.approx(np.mean(list(summary["FP"].values())))
    header = (run.eval / "cifar10_p.csv").read_text().splitlines()[0]
    assert header == "perturbation,difficulty,FP,T5D"  # no AlexNet-relative columns for CIFAR
    report = build_report([run.path], tmp_path / "report")
    table = report.table("cifar").frame
    assert list(table["benchmark"]) == ["CIFAR-10-P"] and table["mFP"].iloc[0] == pytest.approx(summary["mFP"])


def test_wrong_model_and_missing_files_are_one_line(tmp_path, cifar_model):
    from gcpbench.models import build, save_checkpoint

    root = tmp_path / "CIFAR-100-C"
    root.mkdir()
    with pytest.raises(GcpbenchError, match="predicts 10 classes; CIFAR-100-C has 100"):
        evaluate_npy(NpyRequest("cifar100-c", root, workers=0, device="cpu"), resolved(cifar_model), tmp_path / "r")
    other = save_checkpoint(tmp_path / "o.pt", build("resnet18_gap", num_classes=10), "resnet18_gap",
                            classes=[f"c{i}" for i in range(10)])
    with pytest.raises(GcpbenchError, match="CIFAR order"):
        evaluate_npy(NpyRequest("cifar10-c", root, workers=0, device="cpu"), resolved(other), tmp_path / "r")
    with pytest.raises(GcpbenchError, match="missing file 'labels.npy'.*data_manifests/cifar10_c.json"):
        evaluate_npy(NpyRequest("cifar10-c", root, workers=0, device="cpu"), resolved(cifar_model), tmp_path / "r")
    np.save(root / "labels.npy", np.zeros(10, dtype=np.uint8))
    report = check_tree("cifar10-c", root, raise_on_error=False)
    assert report.problems[0] == "missing file 'gaussian_noise.npy'" and "cifar10_c.json" in report.summary()


def test_cli_runs_cifar10_c_and_names_a_missing_file(tmp_path, cifar_model, run_cli):
    root = tmp_path / "CIFAR-10-C"
    root.mkdir()
    rng = np.random.default_rng(2)
    np.save(root / "labels.npy", np.tile(np.arange(2), 5).astype(np.uint8))
    np.save(root / "fog.npy", rng.integers(0, 256, (10, 32, 32, 3), dtype=np.uint8))
    common = ["eval-cifar", "--benchmark", "cifar10-c", "--ckpt", str(cifar_model), "--data", str(root),
              "--out", str(tmp_path / "run"), "--workers", "0", "--device", "cpu", "--quiet"]
    code, out, err = run_cli(*common, "--only", "fog", "--severities", "1,2")
    assert code == 0, err
    assert "mean error" in out and "unnormalised" in out
    code, _, err = run_cli(*common)
    assert code == 2 and "missing file 'gaussian_noise.npy'" in err and len(err.strip().splitlines()) == 1


def test_a_zoo_model_trained_on_a_cifar_tree_evaluates_into_its_run(tmp_path):
    """`train --data <CIFAR ImageFolder tree, 32 px>` then eval-cifar: the result lands in the training run."""
    from PIL import Image

    from gcpbench.train import TrainOptions, train

    rng = np.random.default_rng(3)
    for split, count in (("train", 2), ("val", 1)):
        for name in CIFAR10_CLASSES:
            (tmp_path / "cifar" / split / name).mkdir(parents=True)
            for i in range(count):
                Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(
                    tmp_path / "cifar" / split / name / f"{i}.png")
    run = train(TrainOptions(arch="resnet18", head="gap", schedule="LRnorm", data=str(tmp_path / "cifar"),
                             out=str(tmp_path / "run"), epochs=1, batch_size=10, workers=0, quiet=True,
                             deterministic=True))
    root = tmp_path / "CIFAR-10-C"
    root.mkdir()
    np.save(root / "labels.npy", np.tile(np.arange(2), 5).astype(np.uint8))
    np.save(root / "snow.npy", rng.integers(0, 256, (10, 32, 32, 3), dtype=np.uint8))
    summary, evaluated = evaluate_npy(NpyRequest("cifar10-c", root, only=("snow",), workers=0, device="cpu",
                                                 quiet=True), resolved(run.last_checkpoint))
    assert evaluated.path == run.path and (run.eval / "cifar10_c_summary.json").is_file()
    assert summary["preprocessing"]["input_size"] == 32 and summary["identity"]["run_id"] is not None
