"""`gcpbench detect` end to end on the synthetic COCO set: real mmdetection, pycocotools (slow)."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

pytest.importorskip("mmdet")
pytest.importorskip("mmcv.ops")
pytest.importorskip("pycocotools")
pytestmark = [pytest.mark.mmdet, pytest.mark.slow]

from gcpbench.data.synthetic_coco import make_detection_set  # noqa: E402
from gcpbench.detection.runner import DetectOptions, detect  # noqa: E402
from gcpbench.errors import GcpbenchError  # noqa: E402
from gcpbench.models import build, save_checkpoint  # noqa: E402

AP_NAMES = {"AP", "AP50", "AP75", "APs", "APm", "APl"}


@pytest.fixture(autouse=True)
def _keep_cuda_visible_devices(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", os.environ.get("CUDA_VISIBLE_DEVICES", ""))  # --device cpu edits it


@pytest.fixture()
def tiny(tmp_path):
    """4 train / 2 val images of 96 px (the default set has 8 / 4 of 128 px)."""
    return make_detection_set(tmp_path / "coco", num_train=4, num_val=2, image_size=96)


def _check_table(table: dict) -> None:
    assert set(table) == AP_NAMES
    for value in table.values():
        assert value is None or 0.0 <= value <= 100.0


def test_faster_rcnn_from_gcp_checkpoint_trains_evaluates_and_reloads(tmp_path, tiny) -> None:
    gcp = save_checkpoint(tmp_path / "r18_gcp.pt", build("resnet18_gcp", num_classes=5), "resnet18_gcp")
    run, result = detect(DetectOptions(framework="faster_rcnn", backbone="resnet18_gcp_m", ckpt=str(gcp), data=tiny, max_iters=2,
                                       work_dir=tmp_path / "run", device="cpu", quiet=True), say=lambda _: None)
    written = json.loads((run.path / "eval" / "detection_faster_rcnn.json").read_text())
    assert written == result
    assert (written["framework"], written["backbone"], written["method"], written["dataset"]) == ("faster_rcnn", "resnet18", "gcp_m", "synthetic")
    assert "segm" not in written
    _check_table(written["bbox"])
    config = json.loads((run.path / "config.json").read_text())
    assert config["command"] == "detect" and config["model"] == "resnet18_gcp_m" and config["head"] == "gcp"
    assert config["gcp_dim"] == 256 and config["backbone_weights"] == str(gcp)
    checkpoint = run.path / "iter_2.pth"
    assert written["checkpoint"] == str(checkpoint) and checkpoint.is_file()

    # mmengine checkpoints need the stand-ins under weights_only; they are scoped to mmengine's loader
    probe = ("import sys, torch, gcpbench.detection\n"
             "from mmengine.runner.checkpoint import _load_checkpoint\n"
             "print(sorted(_load_checkpoint(sys.argv[1], map_location='cpu')))\n"
             "try:\n    torch.load(sys.argv[1], weights_only=True)\nexcept Exception as exc:\n    print('plain:', type(exc).__name__)\n")
    out = subprocess.run([sys.executable, "-c", probe, str(checkpoint)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "'message_hub'" in out.stdout and "'state_dict'" in out.stdout and "plain: UnpicklingError" in out.stdout

    # the stand-ins give exactly what the unrestricted unpickler gives (this test wrote the file)
    from gcpbench.detection.checkpoints import read_mmengine_checkpoint
    from test_checkpoint_security import same_values

    loaded = read_mmengine_checkpoint(checkpoint)
    assert same_values(loaded, torch.load(checkpoint, weights_only=False))
    assert len(loaded["message_hub"]["log_scalars"]["train/loss"]._log_history) == 2

    # --resume continues from iter_2.pth: the message hub's history buffers come back and grow
    detect(DetectOptions(framework="faster_rcnn", backbone="resnet18_gcp_m", ckpt=str(gcp), data=tiny, max_iters=3,
                         work_dir=tmp_path / "run", device="cpu", quiet=True, resume=True), say=lambda _: None)
    resumed = read_mmengine_checkpoint(run.path / "iter_3.pth")
    assert resumed["meta"]["iter"] == 3
    assert len(resumed["message_hub"]["log_scalars"]["train/loss"]._log_history) == 3
    assert resumed["message_hub"]["log_scalars"]["train/loss"]._log_history[:2].tolist() == \
        loaded["message_hub"]["log_scalars"]["train/loss"]._log_history.tolist()

    # round trip: load_from the saved detector, evaluate it only: same numbers
    run2, again = detect(DetectOptions(framework="faster_rcnn", backbone="resnet18_gcp_m", data=tiny, eval_only=True, weights=checkpoint,
                                       work_dir=tmp_path / "eval", device="cpu", quiet=True), say=lambda _: None)
    assert again["bbox"] == result["bbox"] and again["checkpoint"] == str(checkpoint)
    assert (run2.path / "eval" / "detection_faster_rcnn.json").is_file()


def test_mask_rcnn_cli_trains_one_epoch_and_writes_bbox_and_segm(tmp_path, tiny) -> None:
    from typer.testing import CliRunner

    from gcpbench.cli import app

    out = CliRunner().invoke(app, ["detect", "--framework", "mask_rcnn", "--backbone", "resnet18_gap", "--epochs", "1", "--data", str(tiny),
                                   "--work-dir", str(tmp_path / "run"), "--device", "cpu"])
    assert out.exit_code == 0, out.output
    # mmengine's long log goes to its file in the work dir; the terminal shows gcpbench's summary
    logs = list((tmp_path / "run").glob("*/*.log"))
    assert len(logs) == 1 and "Epoch(train)" in logs[0].read_text()
    assert "Epoch(train)" not in out.output
    # mmengine's TensorBoard backend: the training losses read back from the event file
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    vis_data = next((tmp_path / "run").glob("*/vis_data"))
    events = EventAccumulator(str(vis_data))
    events.Reload()
    local = [json.loads(line) for line in (vis_data / "scalars.json").read_text().splitlines()]
    assert [e.value for e in events.Scalars("loss")] == pytest.approx([r["loss"] for r in local if "loss" in r], rel=1e-6)
    result = json.loads((tmp_path / "run" / "eval" / "detection_mask_rcnn.json").read_text())
    assert (result["method"], result["dataset"]) == ("gap", "synthetic")
    _check_table(result["bbox"])
    _check_table(result["segm"])
    assert (tmp_path / "run" / "epoch_1.pth").is_file()
    assert "segm" in out.output and "AP50" in out.output


def test_cli_errors_are_one_line(tmp_path) -> None:
    bad = subprocess.run([sys.executable, "-m", "gcpbench", "detect", "--framework", "faster_rcnn", "--backbone", "resnet50_gcpm"],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "did you mean 'resnet50_gcp_m'" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1
    with pytest.raises(GcpbenchError, match="does not exist"):
        detect(DetectOptions(framework="mask_rcnn", backbone="resnet18_gcp_d", eval_only=True, weights=tmp_path / "x.pth"))
    with pytest.raises(GcpbenchError, match="needs --weights"):
        detect(DetectOptions(framework="mask_rcnn", backbone="resnet18_gcp_d", eval_only=True))
    with pytest.raises(GcpbenchError, match="did you mean 'faster_rcnn'"):
        detect(DetectOptions(framework="faster-rcn", backbone="resnet18_gap"))
