"""Each run's state, read from its run directory alone: ``job.json`` (written by the sweep's
job), ``config.json`` and ``metrics.jsonl`` (written by training).

States: ``pending`` (nothing started, or requeued / interrupted and waiting), ``running``, ``done``
(trained and every evaluation finished), ``failed`` (with the last line of its error, or "ended
without a word" when the job's process on this machine is gone).
"""
from __future__ import annotations

import datetime as _dt
import json
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
from gcpbench.sweep.spec import RunSpec

JOB_FILE = "job.json"
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


def start_job(run: RunDir, job_id: str | None) -> dict[str, Any]:
    """Record that a job (attempt) starts working on the run."""
    run.path.mkdir(parents=True, exist_ok=True)
    attempts = int(read_job(run).get("attempts", 0)) + 1
    return update_job(run, state="running", attempts=attempts, host=socket.gethostname(), pid=os.getpid(),
                      job_id=job_id, error=None)


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


def run_status(sweep: SweepDir, spec: RunSpec) -> RunStatus:
    """The state of one planned run, from its directory."""
    run = sweep.run(spec.name)
    job = read_job(run)
    epoch, epochs, best = _training_progress(run)
    finished = job.get("evaluations") or {}
    done_evals = sum(1 for e in spec.evaluations if finished.get(e) == "done")
    evaluations = f"{done_evals}/{len(spec.evaluations)}" if spec.evaluations else "-"
    state, note = job.get("state"), ""
    if state == "failed":
        note = job.get("error") or "failed (no message)"
    elif state == "requeued":
        state, note = "pending", f"requeued after attempt {job.get('attempts', '?')} (preempted or timed out)"
    elif state == "interrupted":
        state, note = "pending", "interrupted (Ctrl-C); launching the sweep again continues it"
    elif state == "running" and _gone(job):
        state, note = "failed", f"its process {job.get('pid')} on this machine ended without a word (killed?)"
    elif state == "done" and done_evals < len(spec.evaluations):
        state, note = "pending", "evaluations added to the plan since it finished"
    elif state == "running":
        note = f"attempt {job.get('attempts', 1)} on {job.get('host', '?')}, updated {job.get('updated', '?')}"
    elif state is None:  # never started by the sweep: judge from the training files, if any
        trained = epochs is not None and epoch >= epochs
        state = "pending" if not run.config.is_file() else ("done" if trained and not spec.evaluations else "running")
        if run.config.is_file():
            note = "started outside the sweep"
    return RunStatus(spec.name, state, epoch, epochs, best, evaluations, note)


def sweep_status(path: str | os.PathLike) -> list[RunStatus]:
    """The state of every run in the sweep directory ``path``."""
    sweep = SweepDir(Path(path))
    return [run_status(sweep, run) for run in sweep.read().runs]
