"""Top-1 / top-5 evaluation, device selection and `gcpbench eval-imagenet` end to end."""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from gcpbench.cli import app
from gcpbench.data.folders import image_folder, make_loader
from gcpbench.data.synthetic import make_classification_set
from gcpbench.data.transforms import eval_transform
from gcpbench.errors import GcpbenchError
from gcpbench.evaluate import evaluate_classification, resolve_device, topk_correct
from gcpbench.models import build, save_checkpoint

REPO = Path(__file__).resolve().parents[1]


def test_resolve_device(monkeypatch):
    assert resolve_device("cpu") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
    with pytest.raises(GcpbenchError, match="no CUDA GPU is visible"):
        resolve_device("cuda")
    with pytest.raises(GcpbenchError, match="unknown device 'tpu'"):
        resolve_device("tpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("AUTO") == torch.device("cuda")


def test_topk_by_hand():
    logits = torch.tensor([[0.1, 0.9, 0.3, 0.2, 0.0, 0.5],   # order 1,5,2,3,0,4
                           [0.8, 0.1, 0.2, 0.3, 0.4, 0.5],   # order 0,5,4,3,2,1
                           [0.0, 0.1, 0.2, 0.3, 0.4, 0.5]])  # order 5,4,3,2,1,0
    targets = torch.tensor([1, 1, 0])
    # sample 0: top-1 hit; sample 1: class 1 is last (rank 6) -> miss both; sample 2: class 0 last -> miss both
    assert topk_correct(logits, targets) == [1, 1]
    assert topk_correct(logits, torch.tensor([5, 3, 1])) == [0, 3]  # ranks 2, 4, 5
    three = torch.tensor([[3.0, 2.0, 1.0], [1.0, 2.0, 3.0]])
    assert topk_correct(three, torch.tensor([2, 0])) == [0, 2]  # fewer than 5 classes: top-5 = top-3


class MeanColour(torch.nn.Module):
    def __init__(self, classes: int = 3):
        super().__init__()
        torch.manual_seed(0)
        self.fc = torch.nn.Linear(3, classes)

    def forward(self, x):
        return self.fc(x.mean(dim=(2, 3)))


def test_evaluate_matches_an_independent_float64_computation():
    torch.manual_seed(1)
    images, targets = torch.randn(10, 3, 4, 4), torch.randint(0, 3, (10,))
    batches = [(images[:4], targets[:4]), (images[4:], targets[4:])]
    model = MeanColour().train()
    result = evaluate_classification(model, batches, "cpu", progress=False)
    assert model.training  # mode restored
    with torch.no_grad():
        logits = model.double()(images.double())
    expected_loss = -torch.log_softmax(logits, 1)[torch.arange(10), targets].mean().item()
    expected_top1 = 100.0 * (logits.argmax(1) == targets).sum().item() / 10
    assert result["images"] == 10 and "unreadable" not in result
    assert math.isclose(result["loss"], expected_loss, rel_tol=1e-5)
    assert result["top1"] == expected_top1 and result["top5"] == 100.0


def test_evaluate_with_bf16_autocast_runs():
    batches = [(torch.randn(4, 3, 4, 4), torch.tensor([0, 1, 2, 0]))]
    result = evaluate_classification(MeanColour(), batches, "cpu", amp=True, progress=False)
    assert result["images"] == 4 and math.isfinite(result["loss"])


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory) -> Path:
    return make_classification_set(tmp_path_factory.mktemp("data") / "set", num_classes=3, image_size=32,
                                   train_per_class=1, val_per_class=2, seed=0)


@pytest.fixture(scope="module")
def run_checkpoint(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("run") / "checkpoints" / "last.pt"
    save_checkpoint(path, build("resnet18_gap", num_classes=3), "resnet18_gap")
    return path


def invoke(args: list[str]):
    return CliRunner().invoke(app, args, catch_exceptions=True)


def test_eval_imagenet_writes_into_the_run_directory(tiny_data, run_checkpoint):
    result = invoke(["eval-imagenet", "--ckpt", str(run_checkpoint), "--data", str(tiny_data), "--workers", "0",
                     "--quiet"])
    assert result.exit_code == 0, result.output
    written = run_checkpoint.parent.parent / "eval" / "imagenet.json"
    assert f"wrote {written}" in result.output and "resnet18_gap" in result.output
    record = json.loads(written.read_text())
    assert {"model", "checkpoint", "dataset", "top1", "top5", "images"} <= set(record)
    assert record["model"] == "resnet18_gap" and record["dataset"] == "synthetic" and record["images"] == 6
    assert record["image_size"] == 32 and record["resize"] == 37 and record["top5"] == 100.0
    # the same numbers as evaluating directly
    model = build("resnet18_gap", num_classes=3, weights=run_checkpoint)
    loader = make_loader(image_folder(tiny_data / "val", eval_transform(32)), 4, shuffle=False, workers=0)
    direct = evaluate_classification(model, loader, "cpu", progress=False)
    assert record["top1"] == direct["top1"] and math.isclose(record["loss"], direct["loss"], rel_tol=1e-6)
    config = json.loads((run_checkpoint.parent.parent / "config.json").read_text())
    assert config["command"] == "eval-imagenet" and config["head"] == "gap" and config["gcp_dim"] is None


def test_eval_imagenet_named_outputs(tmp_path, tiny_data, run_checkpoint):
    out_file = tmp_path / "result.json"
    assert invoke(["eval-imagenet", "--ckpt", str(run_checkpoint), "--data", str(tiny_data), "--out", str(out_file),
                   "--workers", "0", "--quiet"]).exit_code == 0
    assert json.loads(out_file.read_text())["images"] == 6
    run = tmp_path / "run"
    assert invoke(["eval-imagenet", "--ckpt", str(run_checkpoint), "--data", str(tiny_data), "--out", str(run),
                   "--workers", "0", "--quiet", "--image-size", "24"]).exit_code == 0
    assert json.loads((run / "eval" / "imagenet.json").read_text())["image_size"] == 24


def test_eval_imagenet_without_data_uses_the_synthetic_set(tmp_path, monkeypatch, run_checkpoint):
    from gcpbench.data import synthetic

    monkeypatch.setenv("GCPBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(synthetic, "DEFAULTS", {"num_classes": 3, "image_size": 32, "train_per_class": 1,
                                                "val_per_class": 1, "seed": 0})
    result = invoke(["eval-imagenet", "--ckpt", str(run_checkpoint), "--out", str(tmp_path / "r.json"),
                     "--workers", "0"])  # an info line: shown without --quiet
    assert result.exit_code == 0, result.output
    assert "no --data given: using the built-in synthetic set" in result.output
    assert json.loads((tmp_path / "r.json").read_text())["data_root"] == str(tmp_path / "cache" / "synthetic" / "imagenet")


def test_eval_imagenet_class_count_mismatch_and_missing_val(tmp_path, tiny_data):
    ckpt = save_checkpoint(tmp_path / "five.pt", build("resnet18_gap", num_classes=5), "resnet18_gap")
    result = invoke(["eval-imagenet", "--ckpt", str(ckpt), "--data", str(tiny_data), "--quiet"])
    assert isinstance(result.exception, GcpbenchError)
    assert "predicts 5 classes but" in str(result.exception) and "has 3 class folders" in str(result.exception)
    (tmp_path / "empty" / "train").mkdir(parents=True)
    result = invoke(["eval-imagenet", "--ckpt", str(ckpt), "--data", str(tmp_path / "empty"), "--quiet"])
    assert "has no val/ folder" in str(result.exception)


@pytest.mark.slow
def test_wrong_architecture_checkpoint_is_one_line_through_the_real_cli(tmp_path, tiny_data):
    """A resnet18_gap state dict labelled resnet18_gcp: exit 2, one line on stderr, no traceback."""
    bad = save_checkpoint(tmp_path / "bad.pt", build("resnet18_gap", num_classes=3), "resnet18_gcp")
    env = {**os.environ, "GCPBENCH_RUNS": str(tmp_path / "runs")}
    proc = subprocess.run([sys.executable, "-m", "gcpbench", "eval-imagenet", "--ckpt", str(bad), "--data",
                           str(tiny_data), "--quiet"], capture_output=True, text=True, cwd=REPO, env=env,
                          timeout=120)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr
    assert lines[0].startswith("error: checkpoint") and "does not fit 'resnet18_gcp'" in lines[0]
    assert "looks like a 'resnet18_gap' checkpoint" in lines[0]
