"""One writer at a time per result of a run directory.

``writer_lock(run_path, "imagenet_c")`` holds ``RUN/.lock-imagenet_c`` with ``flock`` for as long
as the block runs. A second writer of the same result gets one line naming the holder (pid,
host, command, start time); a lock whose process died is free again (the kernel drops it) and
is taken over with a note. Different results (training, eval-c, eval-p, ...) lock separately,
so evaluating ``best.pt`` while the run still trains is allowed. The lock of a plain output file
(``eval-imagenet --out x.json``: ``.lock-x.json`` beside it) is deleted when its writer is done.
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import fcntl
import json
import logging
import os
import socket
import sys
from pathlib import Path
from typing import Iterator

from gcpbench.errors import GcpbenchError

log = logging.getLogger(__name__)


def lock_path(run_path: str | os.PathLike, name: str) -> Path:
    """The lock file of result ``name`` in a run directory."""
    return Path(run_path) / f".lock-{name}"


def _holder_text(path: Path) -> dict:
    try:
        return json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        return {}


def _describe(holder: dict) -> str:
    if not holder:
        return "another process"
    return (f"pid {holder.get('pid', '?')} on {holder.get('host', '?')} (`{holder.get('command', 'gcpbench')}`, "
            f"since {holder.get('started', '?')})")


def _alive(pid: object, host: object) -> bool:
    if host != socket.gethostname() or not isinstance(pid, int):
        return True  # another machine's process cannot be checked: assume it lives
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _open_locked(path: Path, run_path: str | os.PathLike, name: str) -> int:
    """A descriptor of ``path`` holding its ``flock``; re-opened when the file was removed (by a
    writer that finished, :func:`writer_lock` with ``remove``) between the open and the lock."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)  # the umask decides, as for every file
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise GcpbenchError(f"'{Path(run_path)}' is being written by {_describe(_holder_text(path))} ({name}); "
                                "wait for it to finish or write elsewhere with --out") from None
        try:
            same = os.path.samestat(os.fstat(fd), os.stat(path))
        except FileNotFoundError:
            same = False
        if same:
            return fd
        os.close(fd)


@contextlib.contextmanager
def writer_lock(run_path: str | os.PathLike, name: str, command: str | None = None,
                remove: bool = False) -> Iterator[Path]:
    """Hold the writer lock of result ``name`` in ``run_path`` (created if missing). ``remove``:
    delete the lock file when done (a lock beside a plain output file, outside any run folder)."""
    path = lock_path(run_path, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = _open_locked(path, run_path, name)
    try:
        previous = _holder_text(path)
        if previous and previous.get("pid") != os.getpid() and not _alive(previous.get("pid"), previous.get("host")):
            log.warning("took over the lock of %s in %s: its holder, %s, is no longer running", name, run_path,
                        _describe(previous))
        holder = {"pid": os.getpid(), "host": socket.gethostname(),
                  "command": command or " ".join(["gcpbench", *sys.argv[1:3]]),
                  "started": _dt.datetime.now().isoformat(timespec="seconds")}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(holder).encode(), 0)
        try:
            yield path
        finally:
            if remove:  # still locked: a writer waiting on this file re-opens a new one
                path.unlink(missing_ok=True)
            else:
                os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
