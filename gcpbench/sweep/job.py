"""One sweep job: train a run (continuing it when it was started before), then its evaluations.

Every launcher runs this same code: the local launcher as ``python -m gcpbench.cli.sweep_job SWEEP
NAME`` (one process, or one per GPU), Slurm and submitit's local executor through
:class:`SweepJob`, a submitit ``Checkpointable``: each of the job's tasks is one DDP rank
(``submitit.helpers.TorchDistributedEnvironment`` exports RANK, WORLD_SIZE, MASTER_ADDR, ...),
and on preemption or time-out submitit calls :meth:`SweepJob.checkpoint`, which records the
requeue and resubmits the same call; training then continues from ``last.pt``
(``train --resume auto``) and finished evaluations are skipped.
"""
from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any, Callable

import submitit

from gcpbench.errors import GcpbenchError
from gcpbench.runtime import is_main_process
from gcpbench.sweep.evaluations import command, run_evaluation
from gcpbench.sweep.plan import SweepDir
from gcpbench.sweep.spec import Evaluation
from gcpbench.sweep.state import last_line, read_job, start_job, update_job


def run_job(sweep_dir: str | os.PathLike, name: str, job_id: str | None = None, scheduler: str | None = None) -> str:
    """Train run ``name`` of the sweep in ``sweep_dir`` and evaluate it; returns its state.

    Under DDP every rank trains; rank 0 alone records the state (``job.json``) and runs the
    evaluations. A failure is recorded (``failed`` and the error's last line) and raised again.
    """
    from gcpbench.train import train

    sweep = SweepDir(Path(sweep_dir))
    plan = sweep.read()
    spec = plan.run(name)
    run = sweep.run(name)
    main = is_main_process()
    if main:
        start_job(run, job_id, scheduler)
    try:
        train(spec.options(run.path))
        if not main:
            return "done"
        plan = sweep.read()  # evaluations another sweep added to this run while it trained
        spec = plan.run(name)
        for label in spec.evaluations:
            finished = read_job(run).get("evaluations") or {}
            if finished.get(label) == "done":
                continue
            evaluation = Evaluation.parse(label)
            args = command(run, spec, evaluation, plan.eval_options.get(evaluation.command, {}))
            error = run_evaluation(args, log=run.path / "eval.log")
            if error is not None:
                raise GcpbenchError(f"{label}: {error}")
            update_job(run, evaluations={**finished, label: "done"})
    except KeyboardInterrupt:
        if main:
            update_job(run, state="interrupted")
        raise
    except Exception as exc:
        if main:
            if _slurm_requeues(exc):
                update_job(run, state="requeued")
            else:
                update_job(run, state="failed", error=last_line(str(exc)) or exc.__class__.__name__)
        raise
    if main:
        update_job(run, state="done")
    return "done"


def _slurm_requeues(exc: BaseException) -> bool:
    """True for submitit's ``scontrol requeue`` failing after a preemption signal: Slurm requeues
    the job itself (``PreemptMode=REQUEUE``) and has already taken it down, so the run is requeued,
    not failed."""
    return isinstance(exc, subprocess.CalledProcessError) and list(exc.cmd[:2]) == ["scontrol", "requeue"]


class SweepJob(submitit.helpers.Checkpointable):
    """The submitit callable of one run: DDP environment from submitit, then :func:`run_job`.

    ``show_logs`` (pickled by reference with the job) sets up how the job's log file shows the
    library's lines; the command line passes its own log handler
    (:func:`gcpbench.cli.install_logging`), so this module never imports the command line."""

    def __init__(self, show_logs: Callable[[], None] | None = None) -> None:
        super().__init__()
        self.show_logs = show_logs

    def __call__(self, sweep_dir: str, name: str) -> str:
        env = submitit.JobEnvironment()
        # Every GPU of the node stays visible; each rank picks cuda:LOCAL_RANK (gcpbench.train.distributed).
        submitit.helpers.TorchDistributedEnvironment().export(set_cuda_visible_devices=False, overwrite=True)
        if self.show_logs is not None:
            self.show_logs()
        return run_job(sweep_dir, name, job_id=env.job_id, scheduler=env.cluster)

    def checkpoint(self, sweep_dir: str, name: str) -> Any:
        """Preempted or timed out (submitit calls this on the job's first task): requeue the same
        call; it continues from ``last.pt``."""
        update_job(SweepDir(Path(sweep_dir)).run(name), state="requeued")
        return submitit.helpers.DelayedSubmission(self, sweep_dir, name)
