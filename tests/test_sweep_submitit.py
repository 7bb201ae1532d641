"""Sweeps through submitit's local executor: the code path of the Slurm launcher (SweepJob,
TorchDistributedEnvironment, checkpoint-and-requeue), run on this machine with real jobs."""
from __future__ import annotations

import json
import os
import signal
import time

import pytest
import torch

from gcpbench.data.synthetic import make_classification_set
from gcpbench.io import read_jsonl
from gcpbench.models.weights import read_checkpoint
from gcpbench.robustness.make_c import make_c
from gcpbench.sweep import SweepDir, parse_spec, sweep_status
from gcpbench.sweep.launchers import ClusterOptions, launch_submitit
from gcpbench.sweep.state import read_job
from gcpbench.train import TrainOptions, train
from hang import HANG_ENV, hang_env

TRAIN = {"epochs": 2, "batch_size": 8, "workers": 0, "deterministic": True}
EXACT = ["epoch", "lr", "train_loss", "train_top1", "val_loss", "val_top1", "val_top5"]  # not speed / wall time


@pytest.fixture
def tiny_data(tmp_path):
    return make_classification_set(tmp_path / "data", num_classes=4, image_size=32, train_per_class=6,
                                   val_per_class=2, seed=0)


@pytest.fixture(autouse=True)
def one_thread_children(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # jobs and evaluations inherit it


def wait_for(predicate, jobs, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if all(job.done() for job in jobs):
            raise AssertionError(f"the job ended early: {jobs[0].stdout()}\n{jobs[0].stderr()}")
        if time.monotonic() > deadline:
            for job in jobs:
                job.cancel(check=False)
            raise AssertionError("the job did not reach the hang point in time")
        time.sleep(0.05)


@pytest.mark.slow
def test_two_run_ddp_grid_through_submitit_local_with_evaluations(tmp_path, tiny_data, run_cli) -> None:
    imagenet_c = tmp_path / "imagenet-c"
    make_c(tiny_data / "val", imagenet_c, ["gaussian_noise"], [1], workers=0, quiet=True, native=True)  # 32 px: fast
    # two grids of one run each: the GAP run is evaluated on ImageNet (its val tree), the GCP run on ImageNet-C
    spec = parse_spec({"schedules": ["LRadju"], "data": str(tiny_data), "train": {**TRAIN, "epochs": 1},
                       "grid": [{"models": ["resnet18"], "evaluations": ["eval-imagenet"]},
                                {"models": ["resnet18_gcp128"], "evaluations": ["eval-c"]}],
                       "options": {"eval-imagenet": {"workers": 0},
                                   "eval-c": {"data": str(imagenet_c), "corruptions": ["gaussian_noise"],
                                              "severities": [1], "workers": 0}}}, "tiny")
    sweep = SweepDir(tmp_path / "sweep")
    sweep.write(spec)
    names = [r.name for r in spec.runs]
    assert names == ["resnet18_gap_LRadju_s0_e1_b8", "resnet18_gcp128_LRadju_s0_e1_b8"]

    # each job is two DDP ranks (gloo) set up from submitit's environment, as a Slurm job's tasks are
    jobs = launch_submitit(sweep, names, "local", ClusterOptions(gpus_per_node=0, tasks_per_node=2, time_min=30))
    for job in jobs:
        job.wait()
    statuses = sweep_status(sweep.path)
    assert [(s.state, s.epoch, s.epochs, s.evaluations) for s in statuses] == [("done", 1, 1, "1/1")] * 2, \
        [s.note for s in statuses]
    gap, gcp = (sweep.run(name) for name in names)
    for run, status in zip((gap, gcp), statuses):
        assert status.best_top1 == read_jsonl(run.metrics_jsonl)[-1]["val_top1"]
        assert read_job(run)["attempts"] == 1
        assert json.loads(run.config.read_text())["world_size"] == 2
    # the evaluation (its own process, on best.pt, on the run's val tree) measures what training's
    # validation logged
    record = read_jsonl(gap.metrics_jsonl)[-1]
    evaluation = json.loads((gap.eval / "imagenet.json").read_text())
    assert evaluation["top1"] == pytest.approx(record["val_top1"], abs=1e-9)
    assert evaluation["top5"] == pytest.approx(record["val_top5"], abs=1e-9)
    summary = json.loads((gcp.eval / "imagenet_c_summary.json").read_text())
    assert summary["checkpoint"] == str(gcp.best_checkpoint) and summary["images"] == 8
    assert set(summary["CE"]) == {"gaussian_noise"} and summary["clean_error"] is not None

    code, out, err = run_cli("sweep", "status", str(sweep.path))
    assert code == 0 and "2 done" in out and names[1] in out, err
    code, out, err = run_cli("report", str(sweep.path), "--out", str(tmp_path / "report"), "--quiet")
    assert code == 0, err
    assert all(name in (tmp_path / "report" / "imagenet.csv").read_text() for name in names)
    assert names[1] in (tmp_path / "report" / "robustness.csv").read_text()


@pytest.mark.slow
def test_preempted_job_is_requeued_and_ends_like_an_uninterrupted_run(tmp_path, tiny_data, monkeypatch) -> None:
    spec = parse_spec({"models": ["resnet18"], "schedules": ["LRadju"], "data": str(tiny_data), "train": TRAIN}, "p")
    sweep = SweepDir(tmp_path / "sweep")
    sweep.write(spec)
    name = spec.runs[0].name
    run = sweep.run(name)
    # The test hook blocks the job after iteration 2 of epoch 2's 3 (writing RUN/.hang with its pid,
    # once), so the preemption signal lands mid-epoch whatever the machine's speed.
    for key, value in hang_env("2:2").items():
        monkeypatch.setenv(key, value)
    jobs = launch_submitit(sweep, [name], "local", ClusterOptions(gpus_per_node=0, time_min=60))
    wait_for(lambda: (run.path / ".hang").is_file() and (run.path / ".hang").read_text(), jobs)
    assert [r["epoch"] for r in read_jsonl(run.metrics_jsonl)] == [1]
    os.kill(int((run.path / ".hang").read_text()), signal.SIGUSR2)  # what Slurm sends before preempting
    jobs[0].wait()
    log = jobs[0].stdout()
    assert "this job is preempted" in log and "Requeued job" in log, log
    job = read_job(run)
    assert (job["state"], job["attempts"]) == ("done", 2)

    monkeypatch.delenv(HANG_ENV)
    reference = train(TrainOptions(arch="resnet18", schedule="LRadju", data=str(tiny_data),
                                   out=str(tmp_path / "reference"), quiet=True, **TRAIN))
    resumed, uninterrupted = read_jsonl(run.metrics_jsonl), read_jsonl(reference.metrics_jsonl)
    assert [r["epoch"] for r in resumed] == [1, 2]
    assert [{k: r[k] for k in EXACT} for r in resumed] == [{k: r[k] for k in EXACT} for r in uninterrupted]
    got, expected = read_checkpoint(run.last_checkpoint), read_checkpoint(reference.last_checkpoint)
    for key, tensor in expected["state_dict"].items():
        assert torch.equal(got["state_dict"][key], tensor), key


def test_local_launcher_records_a_failing_run_and_its_error(tmp_path, tiny_data, run_cli) -> None:
    spec = tmp_path / "grid.toml"
    spec.write_text(f'models = ["resnet18"]\ndata = "{tiny_data}"\n[train]\nbatch_size = 64\nworkers = 0\n')
    sweep = tmp_path / "sweep"
    code, out, err = run_cli("sweep", str(spec), "--out", str(sweep))
    assert code == 2 and "1 run(s) failed (resnet18_gap_LRnorm_s0_b64)" in err, err
    assert "FAILED resnet18_gap_LRnorm_s0_b64" in out
    status = sweep_status(sweep)[0]
    assert (status.state, status.epoch) == ("failed", 0)
    assert status.note == "the training set has 24 images, fewer than one batch of 64; lower --batch-size"
    assert status.note in (sweep / "logs" / "resnet18_gap_LRnorm_s0_b64.log").read_text()
