"""`--launcher slurm` up to the scheduler, with stand-ins for Slurm's commands on PATH: `sbatch`
records the job array's script (submitit writes it and the job pickles); `squeue` answers from
the file `bin/queue` (lines `JOBID|STATE|REASON`, as `squeue --format=%i|%T|%r` prints them);
`sacct` says what it says on clusters without accounting. tests/test_sweep_slurm_real.py runs
the same commands against a real Slurm."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from submitit.core.job_environment import SignalHandler
from submitit.core.utils import DelayedSubmission

from gcpbench.cli import install_logging
from gcpbench.sweep import SweepDir, parse_spec, sweep_status
from gcpbench.sweep.job import SweepJob
from gcpbench.sweep.launchers import short_time_warning
from gcpbench.sweep.slurm import job_states, wait_for_jobs
from gcpbench.sweep.state import record_submission
from slurm_cluster import dead_pid, fake_scheduler


@pytest.fixture
def scheduler(tmp_path, monkeypatch) -> Path:
    """The stand-in Slurm commands first on PATH; returns their folder (write `queue` into it)."""
    bin_dir = tmp_path / "bin"
    fake_scheduler(bin_dir)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    return bin_dir


def test_slurm_launcher_submits_one_array_of_ddp_jobs(tmp_path, scheduler, run_cli) -> None:
    bin_dir = scheduler
    spec = tmp_path / "grid.toml"
    spec.write_text('models = ["resnet50"]\nheads = ["gap", "gcp"]\nschedules = ["LRnorm"]\n'
                    'evaluations = ["eval-c"]\n')
    sweep = tmp_path / "sweep"
    code, out, err = run_cli("sweep", str(spec), "--launcher", "slurm", "--out", str(sweep), "--partition", "gpu",
                             "--account", "lab", "--nodes", "2", "--gpus-per-node", "8", "--cpus-per-task", "10",
                             "--time", "3-00:00:00", "--array-parallelism", "4", "--setup", "module load cuda")
    assert code == 0, err
    assert "submitted 2 job(s) to slurm (4242_0, 4242_1)" in out
    script = (bin_dir / "submitted.sh").read_text()
    for line in ("--partition=gpu", "--account=lab", "--nodes=2", "--gpus-per-node=8", "--ntasks-per-node=8",
                 "--cpus-per-task=10", "--time=4320", "--array=0-1%2", "--signal=USR2@90"):
        assert f"#SBATCH {line}" in script, line
    assert "module load cuda" in script and "srun" in script and "submitit.core._submit" in script
    for index, name in enumerate(["resnet50_gap_LRnorm_s0", "resnet50_gcp_LRnorm_s0"]):
        delayed = DelayedSubmission.load(sweep / "submitit" / f"4242_{index}_submitted.pkl")
        assert isinstance(delayed.function, SweepJob)
        assert delayed.function.show_logs is install_logging  # the job's log reads like the command's output
        assert delayed.args == (str(sweep.resolve()), name)
        assert (sweep / "sweep.json").is_file()
        # the job ids are in the run folders at once: a status or a second launch sees them queued
        assert json.loads((sweep / name / "submission.json").read_text())["job_id"] == f"4242_{index}"
    (bin_dir / "queue").write_text("4242_0|PENDING|Priority\n4242_1|RUNNING|None\n")
    assert [(s.state, s.note, s.held_by) for s in sweep_status(sweep)] == [
        ("pending", "queued as Slurm job 4242_0 (PENDING: Priority)", "4242_0"),
        ("running", "Slurm job 4242_1 running, starting", "4242_1")]
    (bin_dir / "submitted.sh").unlink()
    code, out, err = run_cli("sweep", str(spec), "--launcher", "slurm", "--out", str(sweep))
    assert code == 0 and "nothing to launch" in out and "scancel 4242_0 to stop it" in out, err
    assert not (bin_dir / "submitted.sh").exists()


def _running_slurm_run(tmp_path: Path, host: str, pid: int) -> tuple[SweepDir, Path]:
    """A sweep of one run whose Slurm job 4242 started it (attempt 1) on ``host`` as ``pid``."""
    sweep = SweepDir(tmp_path / "sweep")
    spec = sweep.write(parse_spec({"models": ["resnet18"]}, "s"))
    run = sweep.run(spec.runs[0].name)
    record_submission(run, "4242")
    (run.path / "job.json").write_text(json.dumps({"state": "running", "attempts": 1, "host": host, "pid": pid,
                                                   "job_id": "4242", "scheduler": "slurm"}))
    return sweep, tmp_path / "grid.toml"


def test_a_requeued_slurm_job_is_pending_and_never_submitted_twice(tmp_path, scheduler, run_cli) -> None:
    # `scontrol requeue` (or a lost node, or a preemption without USR2) killed the job's process on
    # this machine: the PID check alone read that as "failed ... ended without a word" and a rerun
    # submitted a second job for the same run folder
    sweep, spec = _running_slurm_run(tmp_path, socket.gethostname(), dead_pid())
    spec.write_text('models = ["resnet18"]\nname = "s"\n')
    (scheduler / "queue").write_text("4242|PENDING|BeginTime\n")
    status = sweep_status(sweep.path)[0]
    assert (status.state, status.held_by) == ("pending", "4242")
    assert status.note == "requeued by Slurm (pending, BeginTime) after attempt 1: job 4242 continues it by itself"
    code, out, err = run_cli("sweep", "status", str(sweep.path))
    assert code == 0 and "1 pending" in out and "requeued by Slurm (pending" in out, err
    code, out, err = run_cli("sweep", str(spec), "--launcher", "slurm", "--out", str(sweep.path))
    assert code == 0 and "nothing to launch" in out, err
    # even --include-running does not start a second job while Slurm holds the first
    code, out, err = run_cli("sweep", str(spec), "--launcher", "slurm", "--out", str(sweep.path), "--include-running")
    assert code == 0 and "nothing to launch" in out, err
    assert not (scheduler / "submitted.sh").exists()
    # once Slurm says the job ended without finishing the run, it is failed and launched again
    (scheduler / "queue").write_text("4242|CANCELLED|None\n")
    status = sweep_status(sweep.path)[0]
    assert (status.state, status.note, status.held_by) == (
        "failed", "Slurm job 4242 ended CANCELLED without a word (killed?)", "")
    code, out, err = run_cli("sweep", str(spec), "--launcher", "slurm", "--out", str(sweep.path))
    assert code == 0 and "submitted 1 job(s) to slurm (4242)" in out, err


def test_status_on_a_login_node_asks_slurm(tmp_path, scheduler, capsys) -> None:
    # the job runs on another node, where no PID check can reach: Slurm's word decides
    sweep, _ = _running_slurm_run(tmp_path, "node17", 12345)
    (scheduler / "queue").write_text("4242|RUNNING|None\n")
    status = sweep_status(sweep.path)[0]
    assert (status.state, status.held_by) == ("running", "4242")
    assert status.note.startswith("Slurm job 4242 running, attempt 1 on node17")
    # the controller forgot the job and there is no accounting: it is not running any more
    (scheduler / "queue").write_text("")
    status = sweep_status(sweep.path)[0]
    assert (status.state, status.held_by) == ("failed", "")
    assert status.note == ("Slurm job 4242 is gone (Slurm no longer knows it, and keeps no accounting to say how it "
                           "ended) without a word (killed?)")
    assert job_states(["4242", "4243"]) == {"4242": None, "4243": None}
    # Slurm cannot be asked (controller down): the run folder alone, as before, with a warning
    (scheduler / "squeue").write_text("#!/bin/sh\necho 'slurm_load_jobs error: Unable to contact slurm controller' >&2\n"
                                      "exit 1\n")
    status = sweep_status(sweep.path)[0]
    assert status.state == "running" and status.note.startswith("attempt 1 on node17")
    assert "warning: cannot ask Slurm about the sweep's jobs (squeue: slurm_load_jobs error: Unable to contact" \
        in capsys.readouterr().err


def test_a_requeue_that_slurm_never_ran_again_is_failed(tmp_path, scheduler) -> None:
    # submitit recorded the requeue, then Slurm ended the job (time-outs used up, or cancelled)
    sweep, _ = _running_slurm_run(tmp_path, "node17", 12345)
    run = sweep.run(sweep.read().runs[0].name)
    job = json.loads((run.path / "job.json").read_text())
    (run.path / "job.json").write_text(json.dumps({**job, "state": "requeued"}))
    (scheduler / "queue").write_text("4242|TIMEOUT|None\n")
    status = sweep_status(sweep.path)[0]
    assert (status.state, status.note) == (
        "failed", "requeued after attempt 1 (preempted or timed out), but Slurm job 4242 ended TIMEOUT")
    (scheduler / "queue").write_text("4242|PENDING|BeginTime\n")
    assert sweep_status(sweep.path)[0].state == "pending"


def test_sweep_wait_ends_when_a_job_ends_without_result_and_without_accounting(tmp_path, scheduler, run_cli) -> None:
    # submitit's watcher reads sacct alone: without accounting it never learned that a cancelled
    # job ended, and `sweep --wait` waited forever
    spec = tmp_path / "grid.toml"
    spec.write_text('models = ["resnet18"]\n')
    sweep = tmp_path / "sweep"
    (scheduler / "queue").write_text("4242|CANCELLED|None\n")
    start = time.monotonic()
    code, out, err = run_cli("sweep", str(spec), "--launcher", "slurm", "--out", str(sweep), "--wait")
    assert time.monotonic() - start < 30
    assert code == 2 and "Slurm job 4242 ended CANCELLED without a result" in out, (out, err)
    assert "1 run(s) failed (resnet18_gap_LRnorm_s0)" in err
    assert "Slurm job 4242 ended CANCELLED before it started" in out
    # forgotten by the controller, no accounting: waiting stops too
    (scheduler / "queue").write_text("")
    said: list[str] = []
    wait_for_jobs({"4242": tmp_path / "no_result.pkl"}, say=said.append, first_poll_s=0.01)
    assert said == ["Slurm job 4242 is gone (Slurm no longer knows it, and keeps no accounting to say how it ended) "
                    "without a result"]
    # a pending (requeued) job is waited for, a finished one with its result ends the wait quietly
    result = tmp_path / "result.pkl"
    (scheduler / "queue").write_text("4242|PENDING|BeginTime\n")
    said.clear()
    start = time.monotonic()

    def finish() -> None:
        time.sleep(0.5)
        result.write_text("x")
        (scheduler / "queue").write_text("4242|COMPLETED|None\n")

    thread = threading.Thread(target=finish)
    thread.start()
    wait_for_jobs({"4242": result}, say=said.append, first_poll_s=0.05, max_poll_s=0.1)
    thread.join()
    assert said == [] and time.monotonic() - start >= 0.5


@pytest.mark.parametrize("minutes,warned", [(5, True), (10, True), (11, False), (72 * 60, False)])
def test_short_time_limit_warning_matches_submitits_timeout_rule(minutes, warned) -> None:
    # submitit's own decision for a USR2 one second into the job (a preemption): counted as a
    # time-out exactly when the warning says every signal is one
    delayed = SimpleNamespace(_timeout_min=minutes)
    handler = SignalHandler(SimpleNamespace(), SimpleNamespace(), delayed)
    handler._start_time = time.time() - 1
    assert handler.has_timed_out() is warned
    warning = short_time_warning(minutes, 10)
    assert (warning is not None) is warned
    if warned:
        assert warning.startswith(f"--time {minutes} min leaves no room after the USR2 delay (90 s before the limit)")


def test_short_time_limit_is_warned_at_submission(tmp_path, scheduler, run_cli) -> None:
    spec = tmp_path / "grid.toml"
    spec.write_text('models = ["resnet18"]\n')
    code, out, err = run_cli("sweep", str(spec), "--launcher", "slurm", "--out", str(tmp_path / "s"), "--time", "8")
    assert code == 0 and "warning: --time 8 min leaves no room after the USR2 delay" in err, err
    assert "#SBATCH --time=8" in (scheduler / "submitted.sh").read_text()
    code, out, err = run_cli("sweep", str(spec), "--launcher", "slurm", "--out", str(tmp_path / "t"), "--time", "30")
    assert code == 0 and "warning" not in err, err


@pytest.mark.parametrize("ci", [False, True])
def test_real_slurm_tests_skip_saying_why_unless_ci_requires_them(ci, monkeypatch) -> None:
    import slurm_cluster

    refused = subprocess.CompletedProcess([], slurm_cluster.CANNOT, "", "a test Slurm needs root (to start munged, ...)\n")
    monkeypatch.setattr(slurm_cluster, "_script", lambda action: refused)
    monkeypatch.setattr(slurm_cluster, "required", lambda: ci)
    outcome = pytest.fail.Exception if ci else pytest.skip.Exception
    with pytest.raises(outcome, match=r"no real Slurm: a test Slurm needs root \(to start munged"):
        next(slurm_cluster.slurm_session())
    monkeypatch.undo()
    monkeypatch.setenv("CI", "false")
    assert not slurm_cluster.required()
