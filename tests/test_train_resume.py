"""Exact resume: SIGKILL a training process in the middle of epoch 2, resume, compare with a run
that was never interrupted (deterministic CPU, one thread)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from gcpbench.data.synthetic import make_classification_set
from gcpbench.io import read_jsonl
from gcpbench.models.weights import read_checkpoint
from gcpbench.runs import RunDir
from gcpbench.train import TrainOptions, train
from hang import hang_env

ARGS = dict(arch="resnet18", head="gcp", gcp_dim=128, schedule="LRadju", epochs=2, batch_size=8, workers=0,
            deterministic=True, quiet=True)
EXACT = ["epoch", "lr", "train_loss", "train_top1", "val_loss", "val_top1", "val_top5"]  # not speed / wall time


def cli_args(opts: dict) -> list[str]:
    args = [opts["arch"]]
    for key, value in opts.items():
        if key == "arch":
            continue
        flag = "--" + key.replace("_", "-")
        args += [flag] if value is True else [flag, str(value)]
    return args


def wait_for(predicate, process: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if process.poll() is not None:
            raise AssertionError(f"training exited early ({process.returncode}): {process.stderr.read()}")
        if time.monotonic() > deadline:
            process.kill()
            raise AssertionError("training did not reach the kill point in time")
        time.sleep(0.05)


@pytest.mark.slow
def test_sigkill_mid_epoch_two_then_resume_equals_uninterrupted(tmp_path) -> None:
    data = make_classification_set(tmp_path / "data", num_classes=4, image_size=32, train_per_class=6,
                                   val_per_class=2, seed=0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        killed = RunDir(tmp_path / "killed")
        # The test hook blocks the process after iteration 2 of epoch 2's 3 (writing RUN/.hang),
        # so the kill lands mid-epoch whatever the machine's speed.
        env = {**os.environ, **hang_env("2:2"), "OMP_NUM_THREADS": "1"}
        command = [sys.executable, "-m", "gcpbench", "train", *cli_args({**ARGS, "data": data, "out": killed.path})]
        process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        wait_for(lambda: (killed.path / ".hang").is_file(), process)
        assert [r["epoch"] for r in read_jsonl(killed.metrics_jsonl)] == [1]  # epoch 1 done, epoch 2 running
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=60)
        assert process.returncode == -signal.SIGKILL
        assert read_checkpoint(killed.last_checkpoint)["epoch"] == 1

        train(TrainOptions(resume=str(killed.path), quiet=True))
        reference = train(TrainOptions(data=str(data), out=str(tmp_path / "reference"), **ARGS))
    finally:
        torch.set_num_threads(threads)

    resumed_records, reference_records = read_jsonl(killed.metrics_jsonl), read_jsonl(reference.metrics_jsonl)
    assert [r["epoch"] for r in resumed_records] == [1, 2]
    assert [{k: r[k] for k in EXACT} for r in resumed_records] == [{k: r[k] for k in EXACT} for r in reference_records]
    resumed, uninterrupted = read_checkpoint(killed.last_checkpoint), read_checkpoint(reference.last_checkpoint)
    assert resumed["epoch"] == uninterrupted["epoch"] == 2
    for key, tensor in uninterrupted["state_dict"].items():
        assert torch.equal(resumed["state_dict"][key], tensor), key
    momentum = [s["momentum_buffer"] for s in resumed["optimizer"]["state"].values()]
    expected = [s["momentum_buffer"] for s in uninterrupted["optimizer"]["state"].values()]
    assert all(torch.equal(a, b) for a, b in zip(momentum, expected)) and len(momentum) == len(expected)
    assert torch.equal(resumed["rng"][0]["torch"], uninterrupted["rng"][0]["torch"])
