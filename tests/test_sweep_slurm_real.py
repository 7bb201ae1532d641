"""`gcpbench sweep --launcher slurm` on a real single-node Slurm (tests/slurm_cluster.py starts it;
skipped, saying why, where none can be started; required in CI on Debian as root).

The cluster has no accounting (no slurmdbd, as some real clusters), so only `squeue` / `scontrol`
know the jobs. A requeued job waits 120 s before it may start again; `scontrol update JobId=N
StartTime=now` lets it start at once, as an administrator may.
"""
from __future__ import annotations

import json
import shlex
import subprocess

import pytest
import torch

from gcpbench.data.synthetic import make_classification_set
from gcpbench.io import read_jsonl
from gcpbench.models.weights import read_checkpoint
from gcpbench.sweep import SweepDir, sweep_status
from gcpbench.sweep.state import read_job, slurm_job_id
from gcpbench.train import TrainOptions, train
from hang import hang_env
from slurm_cluster import cancel, wait_for_slurm

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("slurm_cluster")]

TRAIN = {"epochs": 2, "batch_size": 8, "workers": 0, "deterministic": True}
EXACT = ["epoch", "lr", "train_loss", "train_top1", "val_loss", "val_top1", "val_top5"]  # not speed / wall time
SLURM = ["--launcher", "slurm", "--gpus-per-node", "0", "--time", "30"]


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    return make_classification_set(tmp_path_factory.mktemp("slurm") / "data", num_classes=4, image_size=32,
                                   train_per_class=6, val_per_class=2, seed=0)


@pytest.fixture(scope="module")
def reference(tiny_data, tmp_path_factory):
    """The uninterrupted run that a requeued one must equal: metrics and last.pt. One intra-op
    thread, as each job has (OMP_NUM_THREADS=1 below): a module fixture runs before the per-test
    one-thread fixture, and CPU reductions differ in the last bits with another thread count."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        run = train(TrainOptions(arch="resnet18", schedule="LRadju", data=str(tiny_data), quiet=True,
                                 out=str(tmp_path_factory.mktemp("reference") / "run"), **TRAIN))
    finally:
        torch.set_num_threads(threads)
    return read_jsonl(run.metrics_jsonl), read_checkpoint(run.last_checkpoint)


@pytest.fixture(autouse=True)
def job_environment(monkeypatch):
    """sbatch passes the submitting environment on to the job: one thread per job."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")


def _toml(values: dict) -> str:
    return "\n".join(f"{key} = {json.dumps(value)}" for key, value in values.items()) + "\n"


def _log(sweep: SweepDir) -> str:
    return "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in sorted(sweep.submitit.glob("*_log.*")))


def _submitted(sweep: SweepDir) -> list[str]:
    """The Slurm jobs submitted into the sweep folder (to cancel what a failing test leaves)."""
    return [json.loads(p.read_text())["job_id"] for p in sweep.path.glob("*/submission.json")]


def test_job_array_runs_to_done_and_report(tmp_path, tiny_data, run_cli) -> None:
    spec = tmp_path / "grid.toml"
    spec.write_text(_toml({"name": "array", "models": ["resnet18"], "heads": ["gap", "gcp"], "schedules": ["LRadju"],
                           "data": str(tiny_data)}) + "[train]\n" + _toml({**TRAIN, "epochs": 1})
                    + "[[grid]]\nheads = [\"gap\"]\nevaluations = [\"eval-imagenet\"]\n[[grid]]\nheads = [\"gcp\"]\n"
                    + "[options.eval-imagenet]\nworkers = 0\n")
    sweep = SweepDir(tmp_path / "sweep")
    try:
        code, out, err = run_cli("sweep", str(spec), *SLURM, "--out", str(sweep.path), "--wait")
        names = [s.name for s in sweep_status(sweep.path)]
        assert code == 0, (out, err, _log(sweep))
        ids = [slurm_job_id(sweep.run(name)) for name in names]
        assert ids[0].endswith("_0") and ids[1] == ids[0][:-1] + "1", ids  # one job array
        assert f"submitted 2 job(s) to slurm ({ids[0]}, {ids[1]})" in out and "2 done" in out
    finally:
        cancel(_submitted(sweep))
    statuses = sweep_status(sweep.path)
    assert [(s.state, s.epoch, s.evaluations) for s in statuses] == [("done", 1, "1/1"), ("done", 1, "-")]
    assert all(read_job(sweep.run(s.name))["scheduler"] == "slurm" for s in statuses)
    code, out, err = run_cli("report", str(sweep.path), "--out", str(tmp_path / "report"), "--quiet")
    assert code == 0, err
    table = (tmp_path / "report" / "imagenet.csv").read_text()
    assert all(s.name in table for s in statuses)


def _hanging_run(tmp_path, tiny_data, monkeypatch, run_cli):
    """Submit a one-run sweep whose job blocks mid-epoch 2; returns (spec, sweep, run, job id)
    once it blocks. The job blocks after iteration 2 of epoch 2's 3 (writing RUN/.hang, once), so
    a signal lands mid-epoch whatever the machine's speed; sbatch passes the hook on to the job."""
    spec = tmp_path / "grid.toml"
    spec.write_text(_toml({"name": "requeue", "models": ["resnet18"], "schedules": ["LRadju"], "data": str(tiny_data)})
                    + "[train]\n" + _toml(TRAIN))
    sweep = SweepDir(tmp_path / "sweep")
    for key, value in hang_env("2:2").items():
        monkeypatch.setenv(key, value)
    code, out, err = run_cli("sweep", str(spec), *SLURM, "--out", str(sweep.path))
    assert code == 0 and "submitted 1 job(s)" in out, err
    run = sweep.run(sweep_status(sweep.path)[0].name)
    job_id = slurm_job_id(run)
    try:
        wait_for_slurm(job_id, lambda a: (run.path / ".hang").is_file() and (run.path / ".hang").read_text()
                       or a is None or not a.active, what="training to reach epoch 2")
        assert (run.path / ".hang").is_file(), _log(sweep)
        assert sweep_status(sweep.path)[0].state == "running"
    except BaseException:
        cancel([job_id])
        raise
    return spec, sweep, run, job_id


def _like_the_reference(run, reference) -> None:
    expected_metrics, expected_last = reference
    resumed = read_jsonl(run.metrics_jsonl)
    assert [r["epoch"] for r in resumed] == [1, 2]
    assert [{k: r[k] for k in EXACT} for r in resumed] == [{k: r[k] for k in EXACT} for r in expected_metrics]
    got = read_checkpoint(run.last_checkpoint)
    for key, tensor in expected_last["state_dict"].items():
        assert torch.equal(got["state_dict"][key], tensor), key


INTERRUPTS = {
    # USR2 to every task (as Slurm sends it before the time limit): submitit requeues the job
    "usr2-preemption": "scancel --signal=USR2 {job}",
    # Slurm kills the job and queues it again (also what a lost node does)
    "scontrol-requeue": "scontrol requeue {job}",
    # a job of a higher-priority partition takes the node (PreemptMode=REQUEUE with
    # preempt_send_user_signal): USR2, then Slurm requeues the job itself (submitit's own
    # `scontrol requeue` then fails, which only its log shows)
    "partition-preemption": "sbatch --partition=urgent --exclusive --output=/dev/null --wrap='sleep 1'",
}


@pytest.mark.parametrize("interrupt", list(INTERRUPTS))
def test_requeued_job_ends_like_an_uninterrupted_run(interrupt, tmp_path, tiny_data, reference, monkeypatch,
                                                     run_cli) -> None:
    spec, sweep, run, job_id = _hanging_run(tmp_path, tiny_data, monkeypatch, run_cli)
    try:
        subprocess.run(shlex.split(INTERRUPTS[interrupt].format(job=job_id)), check=True, capture_output=True,
                       timeout=60)
        wait_for_slurm(job_id, lambda a: a is not None and a.state == "PENDING", what="the requeue")
        # while the job waits: status says so, and launching the sweep again submits nothing
        status = sweep_status(sweep.path)[0]
        assert (status.state, status.epoch, status.held_by) == ("pending", 1, job_id), status
        assert status.note.startswith("requeued by Slurm (pending, BeginTime) after attempt 1"), status.note
        # the job's own record never reads as a failure (a kill without USR2 leaves 'running')
        assert read_job(run)["state"] in (("running", "interrupted") if interrupt == "scontrol-requeue"
                                          else ("requeued", "interrupted")), read_job(run)
        code, out, err = run_cli("sweep", "status", str(sweep.path))
        assert code == 0 and "requeued by Slurm (pending" in out, err
        code, out, err = run_cli("sweep", str(spec), *SLURM, "--out", str(sweep.path))
        assert code == 0 and "nothing to launch" in out and f"scancel {job_id} to stop it" in out, (out, err)
        assert slurm_job_id(run) == job_id and len(list(sweep.submitit.glob("*_submitted.pkl"))) == 1
        subprocess.run(["scontrol", "update", f"JobId={job_id}", "StartTime=now"], check=True, timeout=60)
        wait_for_slurm(job_id, lambda a: a is None or not a.active, what="the job to end")
    finally:
        cancel([job_id])
    job = read_job(run)
    assert (job["state"], job["attempts"]) == ("done", 2), _log(sweep)
    assert sweep_status(sweep.path)[0].state == "done"
    _like_the_reference(run, reference)


def test_usr2_to_the_batch_shell_fails_the_job_and_a_rerun_continues_it(tmp_path, tiny_data, reference, monkeypatch,
                                                                         run_cli) -> None:
    # `scancel --batch --signal=USR2` reaches the batch shell alone, which dies of it: no requeue
    spec, sweep, run, job_id = _hanging_run(tmp_path, tiny_data, monkeypatch, run_cli)
    try:
        subprocess.run(["scancel", "--batch", "--signal=USR2", job_id], check=True, capture_output=True, timeout=60)
        ended = wait_for_slurm(job_id, lambda a: a is None or not a.active, what="the job to end")
        assert ended is not None and ended.state == "FAILED", ended
        status = sweep_status(sweep.path)[0]
        assert (status.state, status.epoch, status.note) == (
            "failed", 1, f"Slurm job {job_id} ended FAILED without a word (killed?)")
        code, out, err = run_cli("sweep", str(spec), *SLURM, "--out", str(sweep.path), "--wait")
        second = slurm_job_id(run)
        assert code == 0 and f"submitted 1 job(s) to slurm ({second})" in out and second != job_id, (out, err)
    finally:
        cancel([job_id, slurm_job_id(run)])
    job = read_job(run)
    assert (job["state"], job["attempts"]) == ("done", 2), _log(sweep)
    _like_the_reference(run, reference)
