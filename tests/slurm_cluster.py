"""A real single-node Slurm for the tests (``scripts/slurm_cluster.sh``), and how to wait on it.

:func:`slurm_session` starts the cluster when this machine can run one (root, Debian, the
packages installed: ``.ci/run`` installs them) and stops exactly the daemons it started. Where
none can be started the real-Slurm tests are skipped, saying why; in CI (``CI=true``) on a
Debian machine as root they must run, so there a cluster that cannot be started fails them.
"""
from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path
from typing import Iterator

import pytest

from gcpbench.sweep.slurm import SlurmJob, job_states

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "slurm_cluster.sh"
CANNOT = 3  # the script's exit code when no cluster can be started here


def required() -> bool:
    """CI on a Debian machine as root: the real-Slurm tests may not be skipped."""
    debian = Path("/etc/os-release").is_file() and "ID=debian" in Path("/etc/os-release").read_text().splitlines()
    return os.environ.get("CI", "").lower() == "true" and os.geteuid() == 0 and debian


def _script(action: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SCRIPT), action], capture_output=True, text=True, timeout=120)


def slurm_session() -> Iterator[None]:
    """Start the cluster (or skip / fail saying why), yield, stop what was started."""
    result = _script("start")
    if result.returncode != 0:
        why = (result.stderr.strip() or result.stdout.strip()).splitlines()[-1:] or [f"exit {result.returncode}"]
        message = f"no real Slurm: {why[0]}"
        if result.returncode != CANNOT or required():
            pytest.fail(message + (" (CI=true as root on Debian: the real-Slurm tests must run)" if required() else ""))
        pytest.skip(message)
    started = "runs already" not in result.stdout
    try:
        yield
    finally:
        if started:
            _script("stop")


def wait_for_slurm(job_id: str, done, timeout: float = 240, what: str = "") -> SlurmJob | None:
    """Poll Slurm until ``done(answer)`` holds for the job; returns that answer."""
    deadline = time.monotonic() + timeout
    while True:
        answer = job_states([job_id])[job_id]
        if done(answer):
            return answer
        if time.monotonic() > deadline:
            raise AssertionError(f"Slurm job {job_id}: {what or 'waited'} in vain for {timeout:.0f} s (last: {answer})")
        time.sleep(0.3)


def cancel(job_ids: list[str]) -> None:
    """Cancel the jobs a test leaves behind (its failure must not keep the cluster busy)."""
    if job_ids:
        subprocess.run(["scancel", *job_ids], capture_output=True, timeout=60)
