"""Launchers: how a sweep's jobs get run.

* ``local``: one job after another on this machine, or ``gpus`` jobs at a time, each on its own
  GPU (``CUDA_VISIBLE_DEVICES``); each job is ``python -m gcpbench.cli.sweep_job`` with its output
  in ``SWEEP/logs/<run>.log``.
* ``slurm``: one submitit job array for the runs; every job takes ``nodes`` x ``gpus_per_node``
  GPUs with one task (DDP rank) per GPU, is requeued on preemption or time-out and continues
  from its ``last.pt``.
* ``submitit-local``: the same submitit code path through submitit's local executor (one node,
  ``gpus_per_node`` tasks), which is how the tests run it.

On preemption submitit requeues from the job's first task; Slurm then ends the other tasks. The
local executor instead waits for them, and a rank blocked in a collective only ends at the
process group's timeout, so a preemption signal to a several-task local job is slow to take
effect (local machines are not preempted; one-task jobs requeue at once).
"""
from __future__ import annotations

import logging
import math
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Callable

from gcpbench.children import popen, stop
from gcpbench.errors import GcpbenchError
from gcpbench.sweep.plan import SweepDir

logger = logging.getLogger(__name__)

LAUNCHERS: tuple[str, ...] = ("local", "slurm", "submitit-local")
SIGNAL_DELAY_S = 90  # Slurm sends USR2 this long before the time limit (sbatch --signal=USR2@90)
TIMEOUT_MARGIN_MIN = 10  # submitit: a signal later than min(80 %, limit - 10 min) into a job is a time-out


@dataclass
class ClusterOptions:
    """Resources of one job (Slurm and submitit-local)."""

    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    constraint: str | None = None
    nodes: int = 1
    gpus_per_node: int = 8
    tasks_per_node: int | None = None  # DDP ranks per node; None: one per GPU (one task without GPUs)
    cpus_per_task: int | None = None
    mem_gb: float | None = None
    time_min: int = 72 * 60
    array_parallelism: int | None = None
    max_timeouts: int = 10  # requeues after a time-out (preemptions do not count)
    setup: list[str] = field(default_factory=list)  # shell lines before each job (module load ...)


def parse_time(text: str) -> int:
    """Whole minutes (rounded up) from Slurm's time formats: ``M``, ``M:S``, ``H:M:S``, ``D-H``,
    ``D-H:M``, ``D-H:M:S``; also ``45m`` and ``12h``."""
    value = str(text).strip().lower()
    try:
        if value.endswith(("m", "h")):
            return math.ceil(float(value[:-1]) * (60 if value.endswith("h") else 1))
        days, _, clock = value.rpartition("-")
        parts = [int(p) for p in clock.split(":")]
        if days:  # D-H, D-H:M, D-H:M:S
            if len(parts) > 3:
                raise ValueError
            hours, minutes, seconds = (parts + [0, 0])[:3]
            hours += 24 * int(days)
        elif len(parts) == 3:
            hours, minutes, seconds = parts
        elif len(parts) in (1, 2):  # M or M:S
            hours, minutes, seconds = 0, parts[0], (parts[1] if len(parts) == 2 else 0)
        else:
            raise ValueError
        total = hours * 60 + minutes + math.ceil(seconds / 60)
        if total <= 0:
            raise ValueError
        return total
    except ValueError:
        raise GcpbenchError(f"--time '{text}' is not a duration; use one of Slurm's formats (90 minutes, 72:00:00 "
                            "hours-minutes-seconds, 3-00:00:00 days-hours-minutes-seconds) or 45m / 12h") from None


def short_time_warning(time_min: int, max_timeouts: int) -> str | None:
    """Why ``--time`` is too short for requeues to work as meant, or ``None``.

    submitit cannot tell a preemption from the time limit: it counts a USR2 that comes later than
    ``min(0.8 * limit, limit - 10 min)`` into the job as a time-out. With ``--time`` of 10 minutes
    or less that is every signal, so each preemption uses up one of ``--max-timeouts``.
    """
    guaranteed_s = min(0.8 * time_min * 60, (time_min - TIMEOUT_MARGIN_MIN) * 60)
    if guaranteed_s > 0:
        return None
    return (f"--time {time_min} min leaves no room after the USR2 delay ({SIGNAL_DELAY_S} s before the limit): "
            f"submitit counts every signal within {TIMEOUT_MARGIN_MIN} minutes of the limit as a time-out, so each "
            f"preemption uses up one of --max-timeouts {max_timeouts} and the run stops being requeued after that; "
            f"give --time above {TIMEOUT_MARGIN_MIN} minutes")


# --------------------------------------------------------------------------------- local

def _job_command(sweep: SweepDir, name: str) -> list[str]:
    return [sys.executable, "-m", "gcpbench.cli.sweep_job", str(sweep.path), name]


def launch_local(sweep: SweepDir, names: list[str], gpus: int = 0,
                 say: Callable[[str], None] | None = None) -> dict[str, int]:
    """Run the jobs here, ``max(gpus, 1)`` at a time (GPU i for the i-th slot when ``gpus`` > 0).

    Returns each run's exit code (0: done).
    """
    say = say or logger.info
    sweep.logs.mkdir(parents=True, exist_ok=True)
    slots = max(gpus, 1)
    queue = list(names)
    running: dict[int, tuple[str, subprocess.Popen]] = {}
    codes: dict[str, int] = {}
    try:
        while queue or running:
            for slot in range(slots):
                if slot in running or not queue:
                    continue
                name = queue.pop(0)
                env = dict(os.environ)
                if gpus > 0:
                    env["CUDA_VISIBLE_DEVICES"] = str(slot)
                with open(sweep.log(name), "a") as log:
                    process = popen(_job_command(sweep, name), env=env, stdout=log, stderr=subprocess.STDOUT)
                running[slot] = (name, process)
                say(f"started {name}" + (f" on GPU {slot}" if gpus > 0 else "") + f" (log: {sweep.log(name)})")
            for slot, (name, process) in list(running.items()):
                code = process.poll()
                if code is None:
                    continue
                del running[slot]
                codes[name] = code
                say(f"{'finished' if code == 0 else 'FAILED'} {name}" + ("" if code == 0 else f" (exit {code})"))
            if running:
                time.sleep(0.5)
    finally:  # interrupted (Ctrl-C, SIGTERM) or failed: the jobs stop too, each recording where it was
        for _, process in running.values():
            if process.poll() is None:
                process.terminate()
        for _, process in running.values():
            stop(process)
    return codes


# --------------------------------------------------------------------------------- submitit

def make_executor(sweep: SweepDir, cluster: str, options: ClusterOptions):
    """A submitit executor for ``cluster`` (``slurm`` or ``local``) with one task per GPU."""
    import submitit

    tasks = options.tasks_per_node or max(options.gpus_per_node, 1)
    executor = submitit.AutoExecutor(folder=sweep.submitit, cluster=cluster,
                                     slurm_max_num_timeout=options.max_timeouts,
                                     local_max_num_timeout=options.max_timeouts)
    executor.update_parameters(name=f"gcpbench-{sweep.path.name}", timeout_min=options.time_min, nodes=options.nodes,
                               tasks_per_node=tasks, gpus_per_node=options.gpus_per_node)
    if cluster == "slurm":
        extra = {"slurm_partition": options.partition, "slurm_account": options.account, "slurm_qos": options.qos,
                 "slurm_constraint": options.constraint, "slurm_array_parallelism": options.array_parallelism,
                 "cpus_per_task": options.cpus_per_task, "mem_gb": options.mem_gb,
                 "slurm_setup": options.setup or None, "slurm_signal_delay_s": SIGNAL_DELAY_S}
        executor.update_parameters(**{k: v for k, v in extra.items() if v is not None})
        warning = short_time_warning(options.time_min, options.max_timeouts)
        if warning:
            logger.warning(warning)
    elif options.nodes != 1:
        raise GcpbenchError("--launcher submitit-local runs on this machine: use --nodes 1")
    return executor


def launch_submitit(sweep: SweepDir, names: list[str], cluster: str, options: ClusterOptions,
                    show_logs: Callable[[], None] | None = None) -> list:
    """Submit one job per run (a job array on Slurm); returns submitit's jobs. ``show_logs``: how
    each job's log shows the library's lines (see :class:`gcpbench.sweep.job.SweepJob`).

    Each Slurm job's id is recorded in its run folder at once, so the sweep's status and a
    second launch see the run as queued before the job starts.
    """
    from gcpbench.sweep.job import SweepJob
    from gcpbench.sweep.state import record_submission

    executor = make_executor(sweep, cluster, options)
    task = SweepJob(show_logs)
    try:
        with executor.batch():
            jobs = [executor.submit(task, str(sweep.path.resolve()), name) for name in names]
    except Exception as exc:  # sbatch missing or refusing: its own message, one line
        if isinstance(exc, GcpbenchError):
            raise
        message = str(exc).strip().splitlines()
        raise GcpbenchError(f"submitting to {cluster} failed: {message[-1] if message else exc.__class__.__name__}") from None
    if cluster == "slurm":
        for name, job in zip(names, jobs):
            record_submission(sweep.run(name), job.job_id)
    return jobs


def wait_submitit(jobs: list, cluster: str, say: Callable[[str], None] | None = None) -> None:
    """Wait for submitit's jobs to end. On Slurm, Slurm itself is asked (submitit's watcher reads
    ``sacct`` alone, and without accounting never learns that a job ended without a result)."""
    if cluster != "slurm":
        for job in jobs:
            job.wait()
        return
    from gcpbench.sweep.slurm import wait_for_jobs

    wait_for_jobs({job.job_id: job.paths.result_pickle for job in jobs}, say=say)
