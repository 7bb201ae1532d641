"""`gcpbench train`: run directory, metrics, checkpoints, learning, NaN and bad-input errors.

Tiny synthetic trees (32-64 px, 4 classes, a few dozen images) and resnet18 keep this on the CPU.
"""
from __future__ import annotations

import json
from importlib.metadata import version
import math
import subprocess
import sys

import pytest
import torch

from gcpbench.data.synthetic import make_classification_set
from gcpbench.errors import GcpbenchError
from gcpbench.io import read_jsonl
from gcpbench.models import load_model
from gcpbench.models.weights import read_checkpoint
from gcpbench.runs import RunDir
from gcpbench.train import TrainOptions, train
from gcpbench.train import trainer as trainer_module

COLUMNS = ["epoch", "lr", "train_loss", "train_top1", "val_loss", "val_top1", "val_top5", "images_per_s", "wall_time_s"]




@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """4 classes, 32 px, 8 train / 4 val images per class."""
    return make_classification_set(tmp_path_factory.mktemp("data") / "tiny", num_classes=4, image_size=32,
                                   train_per_class=8, val_per_class=4, seed=0)


def options(data, out, **extra) -> TrainOptions:
    base = dict(arch="resnet18", head="gap", schedule="LRnorm", data=str(data), out=str(out), epochs=1,
                batch_size=8, workers=0, quiet=True, deterministic=True)
    return TrainOptions(**{**base, **extra})


def test_run_directory_config_metrics_checkpoints(tiny, tmp_path, capsys) -> None:
    run = train(options(tiny, tmp_path / "run", head="gcp", gcp_dim=128, schedule="LRadju", epochs=2))
    config = json.loads(run.config.read_text())
    assert config["command"] == "train" and config["model"] == "resnet18_gcp128" and config["arch"] == "resnet18"
    assert (config["head"], config["gcp_dim"], config["schedule"], config["dataset"]) == ("gcp", 128, "LRadju", "synthetic")
    assert (config["num_classes"], config["train_images"], config["val_images"], config["image_size"]) == (4, 32, 16, 32)
    assert config["batch_size"] == 8 and config["base_lr"] == pytest.approx(0.1 * 8 / 256, rel=1e-12)
    made = config["provenance"]  # which code and stack made the run (gcpbench.provenance)
    assert made["torch"] == version("torch") and made["device"] == config["device"] and made["gcpbench_version"]
    assert set(made) >= {"argv", "command_line", "git_commit", "git_dirty", "torchvision", "cuda", "cudnn", "mmcv",
                         "hardware"}

    records = read_jsonl(run.metrics_jsonl)
    assert [list(r) for r in records] == [COLUMNS, COLUMNS]
    assert [r["epoch"] for r in records] == [1, 2]
    # LRadju stretched from 50 to 2 epochs, x 8/256: epochs 0 and 1 read the curve at e = 0 and 25
    assert records[0]["lr"] == pytest.approx(0.1 * (50 / 49) ** 2 * 8 / 256, rel=1e-12)
    assert records[1]["lr"] == pytest.approx(0.1 * (25 / 49) ** 2 * 8 / 256, rel=1e-12)
    assert records[1]["wall_time_s"] > records[0]["wall_time_s"] > 0
    assert all(0 <= r["val_top1"] <= r["val_top5"] <= 100 and math.isfinite(r["train_loss"]) for r in records)
    csv_lines = run.metrics_csv.read_text().splitlines()
    assert csv_lines[0] == ",".join(COLUMNS)
    assert [float(v) for v in csv_lines[2].split(",")] == pytest.approx([records[1][c] for c in COLUMNS], rel=1e-12)
    assert (run.plots / "convergence.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    last = read_checkpoint(run.last_checkpoint)  # weights_only=True
    assert last["epoch"] == 2 and last["model"] == "resnet18_gcp128" and last["config"]["schedule"] == "LRadju"
    assert last["metrics"] == records and last["best_top1"] == max(r["val_top1"] for r in records)
    assert last["classes"] == [f"n{i:08d}" for i in range(4)]
    rng = last["rng"][0]
    assert rng["torch"].dtype == torch.uint8 and isinstance(rng["python"][1], list) and rng["numpy"][0] == "MT19937"
    assert last["optimizer"]["param_groups"][0]["momentum"] == 0.9
    assert last["optimizer"]["param_groups"][0]["weight_decay"] == 1e-4
    model, best = load_model(run.best_checkpoint)
    assert best["epoch"] in (1, 2) and model.fc.out_features == 4

    capsys.readouterr()
    train(TrainOptions(resume=str(run.path), quiet=True))  # a finished run: nothing to do
    assert "already finished all 2 epochs" in capsys.readouterr().err  # logged, shown as the CLI shows it
    assert len(read_jsonl(run.metrics_jsonl)) == 2


@pytest.mark.slow
def test_two_epochs_on_the_synthetic_set_beat_chance(tmp_path) -> None:
    """4 classes (chance 25 %); pairs differ by shape and colour, partners by channel correlation."""
    data = make_classification_set(tmp_path / "synthetic", num_classes=4, image_size=64, train_per_class=24,
                                   val_per_class=8, seed=0)
    run = train(options(data, tmp_path / "run", epochs=2, lr=0.01, deterministic=False))
    records = read_jsonl(run.metrics_jsonl)
    assert records[1]["train_loss"] < records[0]["train_loss"]
    assert records[1]["val_top1"] > 34.0, records  # seeds 0-3 give 44-56 %


def test_nan_loss_stops_with_one_line_error_and_keeps_last_checkpoint(tiny, tmp_path, monkeypatch) -> None:
    real = trainer_module.F.cross_entropy
    calls = {"n": 0}

    def poisoned(outputs, targets, **kwargs):  # epoch 1 has 4 iterations; the 2nd of epoch 2 diverges
        loss = real(outputs, targets, **kwargs)
        if not torch.is_grad_enabled():  # validation
            return loss
        calls["n"] += 1
        return loss * float("nan") if calls["n"] == 6 else loss

    monkeypatch.setattr(trainer_module.F, "cross_entropy", poisoned)
    out = tmp_path / "run"
    with pytest.raises(GcpbenchError) as info:
        train(options(tiny, out, epochs=2))
    message = str(info.value)
    assert "\n" not in message
    assert message == (f"loss became NaN at epoch 2 iteration 2; last good checkpoint kept at "
                       f"{RunDir(out).last_checkpoint}; lower --lr")
    assert read_checkpoint(RunDir(out).last_checkpoint)["epoch"] == 1
    assert [r["epoch"] for r in read_jsonl(RunDir(out).metrics_jsonl)] == [1]


def test_real_divergence_in_the_first_epoch(tiny, tmp_path) -> None:
    with pytest.raises(GcpbenchError, match=r"loss became (NaN|infinite) at epoch 1 iteration \d; no checkpoint "
                                            r"was written yet .*; lower --lr$"):
        train(options(tiny, tmp_path / "run", lr=1e30))


def test_amp_and_channels_last_train_one_epoch(tiny, tmp_path) -> None:
    run = train(options(tiny, tmp_path / "run", head="gcp", gcp_dim=128, amp=True, channels_last=True,
                        gcp_precision="tf32"))
    config = json.loads(run.config.read_text())
    assert config["amp"] is True and config["channels_last"] is True and config["gcp_precision"] == "tf32"
    assert math.isfinite(read_jsonl(run.metrics_jsonl)[0]["train_loss"])


def test_landscape_probe_records_without_changing_training(tiny, tmp_path, monkeypatch) -> None:
    import gcpbench.landscape.recorder as recorder

    monkeypatch.setattr(recorder, "default_etas", lambda family: [0.1, 1.0])  # 2 step sizes keep it fast
    probed = train(options(tiny, tmp_path / "probed", landscape_every=2))
    plain = train(options(tiny, tmp_path / "plain"))
    rows = probed.landscape.read_text().splitlines()
    assert rows[0].startswith("step,epoch,train_loss") and [r.split(",")[:2] for r in rows[1:]] == [["0", "1"], ["2", "1"]]
    exact = [k for k in COLUMNS if k not in ("images_per_s", "wall_time_s")]
    assert [{k: r[k] for k in exact} for r in read_jsonl(probed.metrics_jsonl)] == \
        [{k: r[k] for k in exact} for r in read_jsonl(plain.metrics_jsonl)]


def test_resume_refuses_changed_options_and_reused_out(tiny, tmp_path) -> None:
    run = train(options(tiny, tmp_path / "run"))
    with pytest.raises(GcpbenchError, match="--epochs 3 differs from the run's 1; --resume continues the stored"):
        train(TrainOptions(resume=str(run.path), epochs=3, quiet=True))
    with pytest.raises(GcpbenchError, match="already holds a run; continue it with --resume"):
        train(options(tiny, run.path))
    with pytest.raises(GcpbenchError, match="not a training run directory"):
        train(TrainOptions(resume=str(tmp_path), quiet=True))


def gcpbench(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gcpbench", *args], capture_output=True, text=True, timeout=300)


def test_cli_unknown_schedule_is_one_line_error(tiny, tmp_path) -> None:
    result = gcpbench("train", "resnet18", "--schedule", "LRfats", "--data", str(tiny), "--out", str(tmp_path / "x"))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().count("\n") == 0
    assert "unknown schedule 'LRfats' (did you mean 'LRfast'?)" in result.stderr
    assert not (tmp_path / "x").exists()


def test_missing_data_and_architecture_errors(tmp_path) -> None:
    with pytest.raises(GcpbenchError, match="does not exist") as info:
        train(options(tmp_path / "nowhere", tmp_path / "y"))
    assert "\n" not in str(info.value) and not (tmp_path / "y").exists()
    with pytest.raises(GcpbenchError, match="name an architecture"):
        train(TrainOptions(quiet=True))


def test_gcp_precision_errors(tiny, tmp_path) -> None:
    with pytest.raises(GcpbenchError, match="--gcp-precision must be one of float32, tf32, got 'fp16'"):
        train(options(tiny, tmp_path / "a", head="gcp", gcp_precision="fp16"))
    with pytest.raises(GcpbenchError, match="applies to GCP heads only; resnet18_gap has a GAP head"):
        train(options(tiny, tmp_path / "b", gcp_precision="tf32"))
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
