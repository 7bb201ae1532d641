"""Checks on the folders a command reads and writes, before any work: one line each.

* :func:`require_writable` (every writing command calls it up front): the output location, or
  the nearest folder that exists above it, must accept new files. It tries to create a file
  there, because permission bits do not stop root while a read-only mount or ``chattr +i`` does.
* :func:`require_folder`: an input folder that is missing, or that is a file, is named as such.
"""
from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path
from typing import Iterable

from gcpbench.errors import GcpbenchError


def subfolders(path: Path) -> list[str]:
    """Sorted sub-folder names, hidden ones skipped: ImageFolder's class order."""
    with os.scandir(path) as entries:
        return sorted(e.name for e in entries if e.is_dir() and not e.name.startswith("."))


def _existing_ancestor(path: Path) -> Path:
    """``path`` itself when it exists, else the nearest existing folder above it."""
    current = path.absolute()
    while not current.exists() and current != current.parent:
        current = current.parent
    return current


def _probe(folder: Path) -> OSError | None:
    """Create and delete one temporary file in ``folder``; the error when that is refused."""
    try:
        fd, name = tempfile.mkstemp(prefix=".gcpbench-write-test-", dir=folder)
    except OSError as exc:
        return exc
    os.close(fd)
    os.unlink(name)
    return None


def _reason(exc: OSError) -> str:
    if exc.errno == errno.EROFS:
        return "read-only file system"
    if exc.errno in (errno.EPERM, errno.EACCES):
        return "permission denied: read-only or immutable folder"
    if exc.errno == errno.ENOSPC:
        return "no space left on the device"
    return exc.strerror or type(exc).__name__


SYSTEM_FOLDERS = ("/", "/bin", "/boot", "/dev", "/etc", "/lib", "/lib32", "/lib64", "/proc", "/run", "/sbin", "/sys",
                  "/usr", "/var")  # a command's own files (config.json, eval/, checkpoints/) never go here


def system_folder(path: str | os.PathLike) -> str | None:
    """What ``path`` is when it is the file system's root, a system folder or a home folder
    itself (where a command would scatter its files), else None."""
    resolved = Path(path).expanduser().resolve()
    if str(resolved) in SYSTEM_FOLDERS:
        return "the file system's root" if resolved == Path(resolved.anchor) else "a system folder"
    homes = {Path.home().resolve(), Path("/home").resolve(), Path("/root").resolve()}
    return "a home folder itself" if resolved in homes else None


def require_folder_name(name: str, what: str) -> str:
    """``name`` when it is one plain folder name (it names a folder inside another one); a name
    with a path separator, ``..`` or a leading dot would put the folder elsewhere: one line."""
    if (not name or name.startswith(".") or "/" in name or "\\" in name
            or any(ord(c) < 32 for c in name)):
        raise GcpbenchError(f"{what} '{name}' must be a plain folder name (no '/', '..' or leading '.'): "
                            "it names a folder inside the runs folder")
    return name


def require_writable(path: str | os.PathLike, fix: str = "choose another --out", what: str = "output folder",
                     subfolders: Iterable[str] = (), own_folder: bool = True) -> Path:
    """Raise one line unless ``path`` (a folder to write into, created if missing) can take new files.

    ``subfolders`` of ``path`` that already exist (e.g. ``eval``, ``checkpoints``) are checked
    too. ``fix`` tells the user what to do instead (e.g. ``choose another --out``).
    ``own_folder``: the command fills ``path`` with its own files (config.json, eval/, ...), so
    the file system's root, a system folder or a home folder itself is refused.
    """
    path = Path(path)
    kind = system_folder(path) if own_folder else None
    if kind is not None:
        raise GcpbenchError(f"{what} '{path}' is {kind}: a command fills its folder with its own files "
                            f"(config.json, eval/, ...); {fix} (a new folder, e.g. runs/NAME)")
    if path.exists() and not path.is_dir():
        raise GcpbenchError(f"{what} '{path}' is a file, not a folder; {fix}")
    folder = _existing_ancestor(path)
    if not folder.is_dir():
        raise GcpbenchError(f"cannot create {what} '{path}': '{folder}' is a file; {fix}")
    absolute = path.absolute()
    targets = [folder] + [absolute / name for name in subfolders if (absolute / name).is_dir()]
    for target in targets:
        problem = _probe(target)
        if problem is not None:
            creating = "" if target.is_relative_to(absolute) else f" (to create '{path}')"
            raise GcpbenchError(f"cannot write the {what}: '{target}'{creating} does not accept new files "
                                f"({_reason(problem)}); {fix}")
    return path


def require_writable_file(path: str | os.PathLike, fix: str = "choose another --out", what: str = "output file") -> Path:
    """Like :func:`require_writable` for a file: its folder must take new files (atomic writes)."""
    path = Path(path)
    if path.is_dir():
        raise GcpbenchError(f"{what} '{path}' is a folder, not a file; {fix}")
    require_writable(path.parent, fix, f"{what} '{path}'", own_folder=False)
    return path


def checkpoint_run_dir(checkpoint: str | os.PathLike) -> Path | None:
    """``RUN`` for a checkpoint stored as ``RUN/checkpoints/<file>`` (where evaluations write by default)."""
    parent = Path(checkpoint).absolute().parent
    return parent.parent if parent.name == "checkpoints" else None


def require_folder(path: str | os.PathLike, what: str, expected: str = "") -> Path:
    """``path`` if it is a folder; otherwise one line saying it is missing or is a file.

    ``expected`` (e.g. ``"ROOT/val/<class>/<image>"``) is appended as the layout wanted.
    """
    path = Path(path)
    if path.is_dir():
        return path
    layout = f": expected {expected}" if expected else ""
    if path.exists():
        raise GcpbenchError(f"{what} '{path}' is a file, not a folder{layout}")
    raise GcpbenchError(f"{what} '{path}' does not exist{layout}")


def require_eval_output(checkpoint: str | os.PathLike | None, out: str | os.PathLike | None,
                        needs_config: bool = False) -> Path:
    """Check where an evaluation of ``checkpoint`` writes: ``out`` (a folder, or a ``.json`` file),
    else the checkpoint's run directory (``RUN/checkpoints/x.pt``; with ``needs_config`` only when
    it holds ``config.json``), else the runs root. Returns the folder checked."""
    if out is not None:
        if Path(out).suffix.lower() == ".json":
            return require_writable_file(out).parent
        return require_writable(out, subfolders=("eval",))
    run = checkpoint_run_dir(checkpoint) if checkpoint is not None else None
    if run is not None and run.is_dir() and (not needs_config or (run / "config.json").is_file()):
        return require_writable(run, "pass --out DIR to write elsewhere", "checkpoint's run directory", ("eval",))
    from gcpbench.runs import DEFAULT_ROOT  # imports torch: only when needed (checks run before heavy imports)

    return require_writable(DEFAULT_ROOT, "pass --out DIR or set GCPBENCH_RUNS", "runs folder")


AUTO_RESUME = "auto"  # train --resume auto: continue --out when it holds a run, else start it there


def auto_resume_run(out: str | os.PathLike) -> str | os.PathLike | None:
    """``--resume auto``: ``out`` when it holds a training run (its ``config.json``, the name
    :attr:`gcpbench.runs.RunDir.config` uses), else None (start the run there)."""
    return out if (Path(out) / "config.json").is_file() else None


def require_train_output(out: str | os.PathLike | None, resume: str | os.PathLike | None) -> Path:
    """Check where ``train`` writes: the run to resume (and its checkpoints/, plots/), else
    ``--out`` or the runs root; ``--resume auto`` checks ``--out`` as one or the other. A
    ``--resume`` that is no folder (or ``auto`` without ``--out``) is left to the resume checks."""
    if resume == AUTO_RESUME and out is not None:
        resume = auto_resume_run(out)
    if resume is not None:
        if not Path(resume).is_dir():
            return Path(resume)
        return require_writable(resume, "make it writable to resume (or start a new run with --out)", "run directory",
                                ("checkpoints", "plots"))
    if out is not None:
        return require_writable(out)
    from gcpbench.runs import DEFAULT_ROOT

    return require_writable(DEFAULT_ROOT, "pass --out DIR or set GCPBENCH_RUNS", "runs folder")
