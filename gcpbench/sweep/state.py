"""Each run's state, read from its run directory: ``job.json`` (written by the sweep's job),
``submission.json`` (the Slurm job the sweep submitted for it), ``config.json`` and
``metrics.jsonl`` (written by training); for a Slurm job, Slurm's word decides whether the job
is still queued, running or requeued (:mod:`gcpbench.sweep.slurm`).

States: ``pending`` (nothing started, queued, or requeued / interrupted and waiting), ``running``,
``done`` (trained and every evaluation finished), ``failed`` (with the last line of its error, or
"ended without a word" when its job is gone: Slurm says it ended, or the job's process on this
machine no longer exists).
"""
from __future__ import annotations

import datetime as _dt
import json
import logging
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gcpbench.errors import GcpbenchError
from gcpbench.io import atomic_write_json, read_jsonl
from gcpbench.records import TrainConfig
from gcpbench.runs import RunDir
from gcpbench.sweep.plan import SweepDir
from gcpbench.sweep.slurm import WAITING_STATES, SlurmJob, SlurmUnreachable, job_states
from gcpbench.sweep.spec import RunSpec

logger = logging.getLogger(__name__)

JOB_FILE = "job.json"
SUBMISSION_FILE = "submission.json"
STATES: tuple[str, ...] = ("pending", "running", "done", "failed")


def job_file(run: RunDir) -> Path:
    return run.path / JOB_FILE


def read_job(run: RunDir) -> dict[str, Any]:
    """The run's job record ({} when the sweep has not started it, or the file is unreadable)."""
    try:
        record = json.loads(job_file(run).read_text())
    except (OSError, json.JSONDecodeError):
        return {}
    return record if isinstance(record, dict) else {}


def update_job(run: RunDir, **changes: Any) -> dict[str, Any]:
    """Merge ``changes`` into the job record (atomically) and stamp the time."""
    record = {**read_job(run), **changes, "updated": _dt.datetime.now().isoformat(timespec="seconds")}
    atomic_write_json(job_file(run), record)
    return record


def start_job(run: RunDir, job_id: str | None, scheduler: str | None = None) -> dict[str, Any]:
    """Record that a job (attempt) starts working on the run (``scheduler``: ``slurm`` for a Slurm job)."""
    run.path.mkdir(parents=True, exist_ok=True)
    if scheduler != "slurm":  # another launcher owns the run now: a Slurm submission before it is over
        (run.path / SUBMISSION_FILE).unlink(missing_ok=True)
    attempts = int(read_job(run).get("attempts", 0)) + 1
    return update_job(run, state="running", attempts=attempts, host=socket.gethostname(), pid=os.getpid(),
                      job_id=job_id, scheduler=scheduler, error=None)


def record_submission(run: RunDir, job_id: str) -> None:
    """Record the Slurm job just submitted for the run, in a file of its own: the job may start
    and write ``job.json`` before the submitting command gets here."""
    run.path.mkdir(parents=True, exist_ok=True)
    atomic_write_json(run.path / SUBMISSION_FILE, {"scheduler": "slurm", "job_id": job_id,
                                                   "submitted": _dt.datetime.now().isoformat(timespec="seconds")})


def slurm_job_id(run: RunDir, job: dict[str, Any] | None = None) -> str | None:
    """The Slurm job that works on the run: the one the sweep submitted last, else the one that
    last started it (``None``: not a Slurm run)."""
    try:
        submission = json.loads((run.path / SUBMISSION_FILE).read_text())
    except (OSError, json.JSONDecodeError):
        submission = None
    if isinstance(submission, dict) and isinstance(submission.get("job_id"), str):
        return submission["job_id"]
    job = read_job(run) if job is None else job
    return job["job_id"] if job.get("scheduler") == "slurm" and isinstance(job.get("job_id"), str) else None


def last_line(text: str) -> str:
    """The last non-empty line of ``text`` (an error message or a traceback's final line)."""
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    return lines[-1] if lines else ""


@dataclass
class RunStatus:
    """One row of `gcpbench sweep status`."""

    name: str
    state: str
    epoch: int
    epochs: int | None
    best_top1: float | None
    evaluations: str  # "1/2"
    note: str  # error line, requeue note, ...
    held_by: str = ""  # the Slurm job that still holds the run (queued, running or requeued), else ""

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _gone(job: dict[str, Any]) -> bool:
    """True when the job ran on this machine and its process no longer exists."""
    if job.get("host") != socket.gethostname() or not isinstance(job.get("pid"), int):
        return False
    try:
        os.kill(job["pid"], 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # someone else's process of that id
        return False
    return False


def _training_progress(run: RunDir) -> tuple[int, int | None, float | None]:
    """Finished epochs, planned epochs and best val top-1 from config.json and metrics.jsonl."""
    try:
        config = run.run_config()
    except GcpbenchError:  # unreadable config.json: the run's own command says so
        config = None
    records = read_jsonl(run.metrics_jsonl) if run.metrics_jsonl.is_file() else []  # any record with an epoch counts
    tops = [r["val_top1"] for r in records if isinstance(r.get("val_top1"), (int, float))]
    epoch = max((int(r.get("epoch", 0)) for r in records), default=0)
    return epoch, config.epochs if isinstance(config, TrainConfig) else None, (max(tops) if tops else None)


def _slurm_note(job: dict[str, Any], slurm_id: str, answer: SlurmJob) -> tuple[str, str]:
    """State and note of a run whose Slurm job Slurm still holds (queued, running or requeued)."""
    attempts = job.get("attempts")
    if answer.state in WAITING_STATES:
        if not attempts:
            return "pending", f"queued as Slurm job {slurm_id} ({answer.describe()})"
        wait = f", {answer.reason}" if answer.reason and answer.reason != "None" else ""
        return "pending", (f"requeued by Slurm ({answer.state.lower()}{wait}) after attempt {attempts}: "
                           f"job {slurm_id} continues it by itself")
    where = f"attempt {attempts} on {job.get('host', '?')}, updated {job.get('updated', '?')}" if attempts \
        else "starting"
    return "running", f"Slurm job {slurm_id} {answer.state.lower()}, {where}"


def _ended_note(slurm_id: str, answer: SlurmJob | None) -> str:
    """How a run's Slurm job ended, as far as Slurm says."""
    if answer is None:
        return f"Slurm job {slurm_id} is gone (Slurm no longer knows it, and keeps no accounting to say how it ended)"
    return f"Slurm job {slurm_id} ended {answer.state}"


def run_status(sweep: SweepDir, spec: RunSpec, slurm: dict[str, SlurmJob | None] | None = None) -> RunStatus:
    """The state of one planned run, from its directory and, for a Slurm job, from ``slurm``
    (:func:`gcpbench.sweep.slurm.job_states`' answers; ``None`` when Slurm could not be asked)."""
    run = sweep.run(spec.name)
    job = read_job(run)
    epoch, epochs, best = _training_progress(run)
    finished = job.get("evaluations") or {}
    done_evals = sum(1 for e in spec.evaluations if finished.get(e) == "done")
    evaluations = f"{done_evals}/{len(spec.evaluations)}" if spec.evaluations else "-"
    state, note, held_by = job.get("state"), "", ""
    slurm_id = slurm_job_id(run, job) or ""
    asked = slurm is not None and slurm_id in slurm  # Slurm answered about the run's job (None: it forgot it)
    answer = slurm.get(slurm_id) if slurm is not None else None
    if state == "done":
        if done_evals < len(spec.evaluations):
            state, note = "pending", "evaluations added to the plan since it finished"
    elif asked and answer is not None and answer.active:  # Slurm holds the job: it goes on by itself
        held_by = slurm_id
        state, note = _slurm_note(job, slurm_id, answer)
    elif state == "failed":
        note = job.get("error") or "failed (no message)"
    elif state == "requeued":
        note = f"requeued after attempt {job.get('attempts', '?')} (preempted or timed out)"
        state = "pending"
        if asked:
            state, note = "failed", f"{note}, but {_ended_note(slurm_id, answer)}"
    elif state == "interrupted":
        state, note = "pending", "interrupted (Ctrl-C); launching the sweep again continues it"
    elif state == "running" and asked:
        state, note = "failed", f"{_ended_note(slurm_id, answer)} without a word (killed?)"
    elif state == "running" and _gone(job):
        state, note = "failed", f"its process {job.get('pid')} on this machine ended without a word (killed?)"
    elif state == "running":
        note = f"attempt {job.get('attempts', 1)} on {job.get('host', '?')}, updated {job.get('updated', '?')}"
    elif state is None and slurm_id:  # submitted; the job never started
        state, note = "pending", f"submitted as Slurm job {slurm_id}"
        if asked:
            state, note = "failed", f"{_ended_note(slurm_id, answer)} before it started"
    elif state is None:  # never started by the sweep: judge from the training files, if any
        trained = epochs is not None and epoch >= epochs
        state = "pending" if not run.config.is_file() else ("done" if trained and not spec.evaluations else "running")
        if run.config.is_file():
            note = "started outside the sweep"
    return RunStatus(spec.name, state, epoch, epochs, best, evaluations, note, held_by)


def run_statuses(sweep: SweepDir, specs: list[RunSpec]) -> list[RunStatus]:
    """The state of each of ``specs``, asking Slurm once about every run's Slurm job."""
    ids = [i for i in (slurm_job_id(sweep.run(s.name)) for s in specs) if i is not None]
    slurm: dict[str, SlurmJob | None] | None = None
    if ids:
        try:
            slurm = job_states(ids)
        except SlurmUnreachable as exc:
            logger.warning("cannot ask Slurm about the sweep's jobs (%s): states are read from the run folders alone, "
                           "and a requeued job may show as failed", exc)
    return [run_status(sweep, spec, slurm) for spec in specs]


def sweep_status(path: str | os.PathLike) -> list[RunStatus]:
    """The state of every run in the sweep directory ``path``."""
    sweep = SweepDir(Path(path))
    return run_statuses(sweep, sweep.read().runs)
