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
from hang import hang_env

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
    assert "already finished all 1 epochs" in capsys.readouterr().err  # logged, shown as the CLI shows it
    with pytest.raises(GcpbenchError, match="model resnet18_gcp differs from the run's resnet18_gap"):
        train(TrainOptions(arch="resnet18_gcp", epochs=1, **common))
    with pytest.raises(GcpbenchError, match="--epochs 3 differs from the run's 1"):
        train(TrainOptions(arch="resnet18", epochs=3, **common))
    with pytest.raises(GcpbenchError, match="--resume auto needs --out RUN_DIR"):
        train(TrainOptions(arch="resnet18", resume="auto", data=str(tiny_data), quiet=True))


# One rank of an attempt: join the group through gcpbench's setup, all-reduce, leave without
# cleaning up (as a killed worker does). The store is the launcher's, as under torchrun.
RANK_SCRIPT = """
import os, sys, time, torch, torch.distributed as dist
from gcpbench.train import distributed as ddp
time.sleep(float(sys.argv[1]))
ctx = ddp.setup("cpu")
value = torch.ones(1)
dist.all_reduce(value)
print(int(value.item()), flush=True)
os._exit(0)
"""


def test_a_restarted_group_does_not_read_the_last_attempts_addresses(tmp_path) -> None:
    """The cause of "Gloo connectFullMesh failed ... Connection refused" after a torchrun restart:
    with --master_addr/--master_port torchrun keeps one store for every attempt, so a restarted
    rank that looks up a peer before the peer has re-registered finds the dead process's address.
    Here rank 1 of the second attempt starts a second late, which makes that lookup certain."""
    from test_ddp import free_port

    port = free_port()
    store = dist.TCPStore("127.0.0.1", port, 3, is_master=True, wait_for_workers=False)  # the launcher's
    base = {**os.environ, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "WORLD_SIZE": "2",
            "TORCHELASTIC_USE_AGENT_STORE": "True", "OMP_NUM_THREADS": "1"}
    for attempt, delays in ((0, (0, 0)), (1, (0, 1.5))):
        ranks = [subprocess.Popen([sys.executable, "-c", RANK_SCRIPT, str(delay)],
                                  env={**base, "RANK": str(rank), "LOCAL_RANK": str(rank),
                                       "TORCHELASTIC_RESTART_COUNT": str(attempt)},
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                 for rank, delay in enumerate(delays)]
        try:
            outputs = [process.communicate(timeout=120)[0] for process in ranks]
        finally:
            for process in ranks:
                process.kill()  # no-op for a finished rank; a rank stuck connecting to a dead peer ends here
        assert [process.returncode for process in ranks] == [0, 0], f"attempt {attempt}: {outputs}"
        assert [out.strip().splitlines()[-1] for out in outputs] == ["2", "2"]
    del store


def _torchrun(out, data, port: int, extra_env: dict[str, str], max_restarts: int) -> subprocess.Popen:
    env = {**os.environ, **extra_env, "OMP_NUM_THREADS": "1"}
    env.pop("TORCHELASTIC_RESTART_COUNT", None)
    command = [sys.executable, "-m", "torch.distributed.run", "--nnodes=1", "--nproc_per_node=2",
               f"--max-restarts={max_restarts}", "--master_addr=127.0.0.1", f"--master_port={port}",
               "-m", "gcpbench", "train", "resnet18", "--schedule", "LRadju", "--epochs", "2", "--batch-size", "8",
               "--workers", "0", "--deterministic", "--device", "cpu", "--data", str(data),  # info lines are checked
               "--out", str(out), "--resume", "auto"]
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


@pytest.mark.slow
def test_torchrun_restart_after_a_killed_worker_continues_from_last_pt(tmp_path, tiny_data) -> None:
    from test_ddp import free_port

    killed, reference = RunDir(tmp_path / "killed"), RunDir(tmp_path / "reference")
    # The test hook blocks a worker after iteration 2 of epoch 2's 4 (writing RUN/.hang with its
    # pid, once per run directory, so the restarted workers go on).
    victim = _torchrun(killed.path, tiny_data, free_port(), hang_env("2:2"), max_restarts=1)
    uninterrupted = _torchrun(reference.path, tiny_data, free_port(), {}, max_restarts=0)
    try:
        hang = killed.path / ".hang"
        deadline = time.monotonic() + 300
        while not (hang.is_file() and hang.read_text()):
            assert victim.poll() is None, victim.stdout.read()
            assert time.monotonic() < deadline, "no worker reached the hang point"
            time.sleep(0.05)
        assert [r["epoch"] for r in read_jsonl(killed.metrics_jsonl)] == [1]
        os.kill(int(hang.read_text()), signal.SIGKILL)
        log, _ = victim.communicate(timeout=600)
        reference_log, _ = uninterrupted.communicate(timeout=600)
    finally:
        for process in (victim, uninterrupted):
            process.terminate()  # no-op once finished; torchrun stops its workers when the test fails
    assert victim.returncode == 0, log[-4000:]
    assert "resuming at epoch 2/2" in log and "connectFullMesh" not in log, log[-4000:]
    assert uninterrupted.returncode == 0, reference_log[-4000:]

    resumed, expected = read_jsonl(killed.metrics_jsonl), read_jsonl(reference.metrics_jsonl)
    assert [r["epoch"] for r in resumed] == [1, 2]
    assert [{k: r[k] for k in EXACT} for r in resumed] == [{k: r[k] for k in EXACT} for r in expected]
