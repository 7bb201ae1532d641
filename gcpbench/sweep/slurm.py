"""What Slurm says about a sweep's jobs, and waiting for them.

The scheduler, not the run folder, knows whether a job is queued, running, requeued or gone: a
job that Slurm requeued (``scontrol requeue``, a lost node, a preemption) has no process
anywhere while it waits, and on a multi-node cluster ``gcpbench sweep status`` runs on a login
node that cannot see a job's processes at all. :func:`job_states` asks ``squeue`` (every job the
controller still holds, finished ones included for ``MinJobAge``), then ``sacct`` for the rest;
on clusters without accounting (``sacct``: "accounting storage is disabled") a job that the
controller has forgotten is reported as unknown (``None``), never as running.
"""
from __future__ import annotations

import logging
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

logger = logging.getLogger(__name__)

# Job states in which Slurm still holds the job (it runs, or will run again); every other state
# (COMPLETED, FAILED, CANCELLED, TIMEOUT, NODE_FAIL, OUT_OF_MEMORY, PREEMPTED, BOOT_FAIL, DEADLINE)
# means it ended.
ACTIVE_STATES = frozenset({"PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "SUSPENDED", "REQUEUED", "REQUEUE_FED",
                           "REQUEUE_HOLD", "RESIZING", "SIGNALING", "STAGE_OUT", "RESV_DEL_HOLD", "STOPPED"})
WAITING_STATES = frozenset({"PENDING", "REQUEUED", "REQUEUE_FED", "REQUEUE_HOLD", "RESV_DEL_HOLD"})  # not running yet
QUERY_TIMEOUT_S = 60


@dataclass(frozen=True)
class SlurmJob:
    """Slurm's record of one job (an array task has the id ``JOB_TASK``, e.g. ``4242_0``)."""

    job_id: str
    state: str  # PENDING, RUNNING, COMPLETED, CANCELLED, ...
    reason: str = ""  # why a pending job waits (BeginTime, Priority, Resources, ...), "" when none

    @property
    def active(self) -> bool:
        """Slurm still holds the job: it is queued, running or requeued, and nobody may start the run again."""
        return self.state in ACTIVE_STATES

    def describe(self) -> str:
        """``PENDING: BeginTime``, ``RUNNING``, ``CANCELLED``."""
        return self.state + (f": {self.reason}" if self.reason and self.reason != "None" else "")


class SlurmUnreachable(Exception):
    """Slurm could not be asked (no client commands here, or the controller does not answer)."""


def _call(command: list[str]) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(command, capture_output=True, text=True, timeout=QUERY_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SlurmUnreachable(f"{command[0]}: {exc}") from None


def _squeue(ids: list[str]) -> dict[str, SlurmJob]:
    """Jobs the controller holds (``-t all``: finished ones too, until ``MinJobAge`` passes)."""
    result = _call(["squeue", "--noheader", "--array", "--states=all", "--format=%i|%T|%r", f"--jobs={','.join(ids)}"])
    # One unknown id alone makes squeue fail with "Invalid job id specified"; with others it is left out.
    if result.returncode != 0 and "Invalid job id" not in result.stderr:
        raise SlurmUnreachable(f"squeue: {result.stderr.strip() or f'exit {result.returncode}'}")
    jobs = {}
    for line in result.stdout.splitlines():
        job_id, _, rest = line.strip().partition("|")
        state, _, reason = rest.partition("|")
        if job_id in ids and state:
            jobs[job_id] = SlurmJob(job_id, state.strip(), reason.strip())
    return jobs


def _sacct(ids: list[str]) -> dict[str, SlurmJob]:
    """Finished jobs from accounting; {} on clusters without it."""
    if shutil.which("sacct") is None:
        return {}
    result = _call(["sacct", "--noheader", "--allocations", "--parsable2", "--format=JobID,State",
                    f"--jobs={','.join(ids)}"])
    if result.returncode != 0:  # "Slurm accounting storage is disabled", or no slurmdbd answering
        logger.debug("sacct: %s", result.stderr.strip())
        return {}
    jobs = {}
    for line in result.stdout.splitlines():
        job_id, _, state = line.strip().partition("|")
        if job_id in ids and state:
            jobs[job_id] = SlurmJob(job_id, state.split()[0])  # "CANCELLED by 0" -> CANCELLED
    return jobs


def job_states(job_ids: Iterable[str]) -> dict[str, SlurmJob | None]:
    """Slurm's record of each job, or ``None`` for a job Slurm does not know (any more).

    Raises :class:`SlurmUnreachable` when Slurm cannot be asked (then nothing is known).
    """
    ids = sorted(set(job_ids))
    if not ids:
        return {}
    if shutil.which("squeue") is None:
        raise SlurmUnreachable("squeue is not on PATH")
    known: dict[str, SlurmJob | None] = dict(_squeue(ids))
    forgotten = [i for i in ids if i not in known]
    if forgotten:
        known.update(_sacct(forgotten))
    return {i: known.get(i) for i in ids}


def wait_for_jobs(results: dict[str, Path], say: Callable[[str], None] | None = None,
                  first_poll_s: float = 1.0, max_poll_s: float = 10.0) -> None:
    """Wait until Slurm no longer holds any of the jobs ``results`` maps to their result files.

    A job has ended when Slurm says it ended, or no longer knows it (a cluster without
    accounting forgets finished jobs): whether it left a result or not, waiting stops, so a
    cancelled, OOM-killed or lost job never leaves the caller waiting forever. A requeued job
    (pending again) is waited for.
    """
    say = say or logger.info
    remaining = dict(results)
    poll = first_poll_s
    unreachable_said = False
    while remaining:
        try:
            answers = job_states(remaining)
        except SlurmUnreachable as exc:
            if not unreachable_said:
                say(f"cannot ask Slurm about the jobs ({exc}); still waiting")
                unreachable_said = True
            answers = {}
        else:
            unreachable_said = False
        for job_id, answer in answers.items():
            if answer is not None and answer.active:
                continue
            if not remaining.pop(job_id).is_file():
                how = f"ended {answer.state}" if answer is not None else \
                    "is gone (Slurm no longer knows it, and keeps no accounting to say how it ended)"
                say(f"Slurm job {job_id} {how} without a result")
        if remaining:
            time.sleep(poll)
            poll = min(poll * 1.5, max_poll_s)
