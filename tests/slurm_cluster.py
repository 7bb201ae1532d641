"""Slurm for the tests: stand-ins for its commands, and a real single-node cluster.

:func:`fake_scheduler` writes stand-in ``sbatch`` / ``srun`` / ``squeue`` / ``sacct`` scripts:
``sbatch`` keeps the script it was given (``submitted.sh``) and answers job 4242; ``squeue``
answers from the file ``queue`` beside it (lines ``JOBID|STATE|REASON``, as ``squeue
--format=%i|%T|%r`` prints them); ``sacct`` says what it says on clusters without accounting.

:func:`slurm_session` (``scripts/slurm_cluster.sh``) starts the cluster when this machine can
run one (root, Debian, the packages installed: ``.ci/run`` installs them) and stops exactly the
daemons it started. Where none can be started the real-Slurm tests are skipped, saying why; in CI (``CI=true``) on a
Debian machine as root they must run, so there a cluster that cannot be started fails them.
"""
from __future__ import annotations

import os
import stat
import subprocess
import time
from pathlib import Path
from typing import Iterator

import pytest

from gcpbench.sweep.slurm import SlurmJob, job_states

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "slurm_cluster.sh"
CANNOT = 3  # the script's exit code when no cluster can be started here

SBATCH = """#!/bin/sh
cp "$1" "$(dirname "$0")/submitted.sh"
echo "Submitted batch job 4242"
"""
SQUEUE = """#!/bin/sh
for arg; do case "$arg" in --jobs=*) jobs="${arg#--jobs=}";; esac; done
found=0
for id in $(echo "$jobs" | tr ',' ' '); do
    if grep "^$id|" "$(dirname "$0")/queue" 2>/dev/null; then found=1; fi
done
[ $found = 1 ] || { echo "slurm_load_jobs error: Invalid job id specified" >&2; exit 1; }
"""
SACCT = """#!/bin/sh
echo "Slurm accounting storage is disabled" >&2
exit 1
"""


def fake_scheduler(bin_dir: Path) -> None:
    """The stand-in commands in ``bin_dir`` (put it first on PATH)."""
    bin_dir.mkdir()
    for name, text in (("sbatch", SBATCH), ("srun", "#!/bin/sh\nexit 1\n"), ("squeue", SQUEUE), ("sacct", SACCT)):
        path = bin_dir / name
        path.write_text(text)
        path.chmod(path.stat().st_mode | stat.S_IEXEC)


def dead_pid() -> int:
    """The id of a process that has ended (a job's process that is gone)."""
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


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
