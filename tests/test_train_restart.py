"""Restarts without a human: `train --resume auto`, and torchrun --max-restarts after a worker is
killed (two CPU processes on gloo), which must go on from last.pt to the uninterrupted metrics."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
import torch.distributed as dist

from gcpbench.data.synthetic import make_classification_set
from gcpbench.errors import GcpbenchError
from gcpbench.io import read_jsonl
from gcpbench.runs import RunDir
from gcpbench.train import TrainOptions, train
from gcpbench.train.distributed import attempt_store
from gcpbench.train.trainer import HANG_ENV
from test_ddp import free_port

EXACT = ["epoch", "lr", "train_loss", "train_top1", "val_loss", "val_top1", "val_top5"]  # not speed / wall time


@pytest.fixture
def tiny_data(tmp_path):
    return make_classification_set(tmp_path / "data", num_classes=4, image_size=32, train_per_class=8,
                                   val_per_class=2, seed=0)


def test_resume_auto_starts_then_continues_and_refuses_another_model(tmp_path, tiny_data, capsys) -> None:
    out = tmp_path / "run"
    common = dict(schedule="LRfast", batch_size=8, workers=0, data=str(tiny_data), out=str(out), resume="auto",
                  quiet=True, device="cpu")
    train(TrainOptions(arch="resnet18", epochs=1, **common))  # nothing there yet: starts
    assert [r["epoch"] for r in read_jsonl(RunDir(out).metrics_jsonl)] == [1]
    capsys.readouterr()
    train(TrainOptions(arch="resnet18_gap", epochs=1, **common))  # the same run again: nothing left to do
    assert "already finished all 1 epochs" in capsys.readouterr().out
    with pytest.raises(GcpbenchError, match="model resnet18_gcp differs from the run's resnet18_gap"):
        train(TrainOptions(arch="resnet18_gcp", epochs=1, **common))
    with pytest.raises(GcpbenchError, match="--epochs 3 differs from the run's 1"):
        train(TrainOptions(arch="resnet18", epochs=3, **common))
    with pytest.raises(GcpbenchError, match="--resume auto needs --out RUN_DIR"):
        train(TrainOptions(arch="resnet18", resume="auto", data=str(tiny_data), quiet=True))


def test_each_restart_gets_its_own_store_keys(monkeypatch) -> None:
    """The cause of "Gloo connectFullMesh failed ... Connection refused" after a torchrun restart:
    the static rendezvous keeps one store, so the first attempt's addresses must not be read again."""
    store = dist.HashStore()
    monkeypatch.delenv("TORCHELASTIC_RESTART_COUNT", raising=False)
    attempt_store(store).set("rank0_address", "old")
    monkeypatch.setenv("TORCHELASTIC_RESTART_COUNT", "1")
    restarted = attempt_store(store)
    assert not restarted.check(["rank0_address"])
    restarted.set("rank0_address", "new")
    monkeypatch.setenv("TORCHELASTIC_RESTART_COUNT", "0")
    assert attempt_store(store).get("rank0_address") == b"old"


def _torchrun(out, data, port: int, extra_env: dict[str, str], max_restarts: int) -> subprocess.Popen:
    env = {**os.environ, **extra_env, "OMP_NUM_THREADS": "1"}
    env.pop("TORCHELASTIC_RESTART_COUNT", None)
    command = [sys.executable, "-m", "torch.distributed.run", "--nnodes=1", "--nproc_per_node=2",
               f"--max-restarts={max_restarts}", "--master_addr=127.0.0.1", f"--master_port={port}",
               "-m", "gcpbench", "train", "resnet18", "--schedule", "LRadju", "--epochs", "2", "--batch-size", "8",
               "--workers", "0", "--deterministic", "--device", "cpu", "--quiet", "--data", str(data),
               "--out", str(out), "--resume", "auto"]
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


@pytest.mark.slow
def test_torchrun_restart_after_a_killed_worker_continues_from_last_pt(tmp_path, tiny_data) -> None:
    killed, reference = RunDir(tmp_path / "killed"), RunDir(tmp_path / "reference")
    # The test hook blocks a worker after iteration 2 of epoch 2's 4 (writing RUN/.hang with its
    # pid, once per run directory, so the restarted workers go on).
    victim = _torchrun(killed.path, tiny_data, free_port(), {HANG_ENV: "2:2"}, max_restarts=1)
    uninterrupted = _torchrun(reference.path, tiny_data, free_port(), {}, max_restarts=0)
    hang = killed.path / ".hang"
    deadline = time.monotonic() + 300
    while not (hang.is_file() and hang.read_text()):
        assert victim.poll() is None, victim.stdout.read()
        assert time.monotonic() < deadline, "no worker reached the hang point"
        time.sleep(0.05)
    assert [r["epoch"] for r in read_jsonl(killed.metrics_jsonl)] == [1]
    os.kill(int(hang.read_text()), signal.SIGKILL)
    log, _ = victim.communicate(timeout=600)
    assert victim.returncode == 0, log[-4000:]
    assert "resuming at epoch 2/2" in log and "connectFullMesh" not in log, log[-4000:]
    reference_log, _ = uninterrupted.communicate(timeout=600)
    assert uninterrupted.returncode == 0, reference_log[-4000:]

    resumed, expected = read_jsonl(killed.metrics_jsonl), read_jsonl(reference.metrics_jsonl)
    assert [r["epoch"] for r in resumed] == [1, 2]
    assert [{k: r[k] for k in EXACT} for r in resumed] == [{k: r[k] for k in EXACT} for r in expected]
