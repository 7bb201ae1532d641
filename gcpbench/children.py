"""Child processes that never outlive the command that started them.

A command stopped by Ctrl-C or SIGTERM (a cluster's scheduler, ``kill``, a CI timeout) stops its
children the same way (:func:`stop`, :func:`run_child`), so they clean up after themselves, and
a child asks the kernel to end it when its parent ends without that chance (SIGKILL, a crash):
:func:`die_with_parent` (Linux's ``prctl(PR_SET_PDEATHSIG)``). A leftover child would hold the
caller's pipes open, so ``$(gcpbench ...)``, ``| tee`` or a CI wrapper would wait for it.
"""
from __future__ import annotations

import ctypes
import functools
import os
import signal
import subprocess
import sys
from typing import Any, Callable, Sequence

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
GRACE_S = 30.0  # a stopped child's time to clean up before SIGKILL (Slurm's default KillWait)


@functools.lru_cache(maxsize=1)
def _prctl() -> Callable[..., int] | None:
    """The C library's ``prctl`` (Linux), looked up once: never between fork and exec."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):  # no prctl in this C library: nothing to ask for
        return None


def die_with_parent(parent: int | None = None, signum: int = signal.SIGTERM) -> None:
    """Have the kernel send ``signum`` to this process when its parent ends (Linux; elsewhere
    nothing). ``parent``: the pid the parent had, to end at once when it already ended before
    the request was made (the process was then adopted by another)."""
    prctl = _prctl()
    if prctl is None:
        return
    prctl(PR_SET_PDEATHSIG, int(signum), 0, 0, 0)
    if parent is not None and os.getppid() != parent:
        os.kill(os.getpid(), signum)


def stop(process: subprocess.Popen, grace_s: float = GRACE_S) -> int:
    """Stop ``process`` as a user would: SIGTERM (it cleans up and exits), SIGKILL after
    ``grace_s`` seconds; returns its exit status."""
    if process.poll() is None:
        try:
            process.terminate()
            return process.wait(grace_s)
        except subprocess.TimeoutExpired:
            process.kill()
        except ProcessLookupError:
            pass
    return process.wait()


def popen(argv: Sequence[str], **options: Any) -> subprocess.Popen:
    """``subprocess.Popen`` of a child that ends with this process (:func:`die_with_parent`)."""
    parent = os.getpid()
    _prctl()  # the lookup happens here, in the parent, not in the forked child
    return subprocess.Popen(list(argv), preexec_fn=lambda: die_with_parent(parent), **options)


def run_child(argv: Sequence[str], **options: Any) -> subprocess.CompletedProcess:
    """``subprocess.run`` that stops the child (:func:`stop`, not SIGKILL) when this process is
    interrupted or fails while waiting, and whose child ends with this process."""
    with popen(argv, **options) as process:
        try:
            out, err = process.communicate()
        except BaseException:
            stop(process)
            raise
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)
