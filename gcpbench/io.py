"""Atomic file writes and crash-safe JSONL: a crash never leaves a half-written checkpoint or
result file, a torn JSONL tail is dropped (and said), and a full disk is one clear error."""
from __future__ import annotations

import errno
import json
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

from gcpbench.errors import GcpbenchError

log = logging.getLogger(__name__)
TEMP_SUFFIX = ".tmp"


class DiskFullError(GcpbenchError):
    """A write failed for lack of space; the message names the path and the space needed."""


def _mib(n: int) -> str:
    return f"{n / 2**20:.1f} MiB"


def _is_disk_full(exc: BaseException) -> bool:
    """ENOSPC / EDQUOT, also as torch's C++ writer reports it ("enforce fail ... unexpected pos")."""
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    text = str(exc)
    return isinstance(exc, RuntimeError) and ("No space left" in text or "unexpected pos" in text
                                              or "file write failed" in text)


def disk_full_error(path: Path, needed: int | None) -> DiskFullError:
    """The one-line error for a write of ``needed`` bytes that found the disk full."""
    try:
        stat = os.statvfs(path.parent)
        free = _mib(stat.f_bavail * stat.f_frsize)
    except OSError:
        free = "unknown"
    need = f"about {_mib(needed)}" if needed else "more space"
    return DiskFullError(f"no space left to write '{path}': it needs {need}, {free} free on that file system; "
                         "free some space (earlier files are intact) and rerun the same command to continue")


def current_umask() -> int:
    """The process's umask (read from ``/proc/self/status``; elsewhere by setting and restoring it)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def follow_umask(path: str | os.PathLike, folder: bool = False) -> None:
    """Give ``path`` the mode a plain ``open()`` (``mkdir`` for a ``folder``) would have given it
    under the umask: ``tempfile.mkstemp`` creates 0600 files and ``mkdtemp`` 0700 folders, which
    colleagues sharing a run folder could not read."""
    os.chmod(path, (0o777 if folder else 0o666) & ~current_umask())


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None], needed: int | None = None) -> Path:
    """Call ``write(tmp)`` on a temporary file beside ``path``, then rename it into place.

    The file gets the umask's mode, as a plain ``open()`` gives. ``needed`` (bytes, an
    estimate) is named in the error when the disk is full; the previous ``path`` is left
    untouched whatever fails."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        follow_umask(tmp)
        write(tmp)
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except (OSError, RuntimeError) as exc:
        if _is_disk_full(exc):
            raise disk_full_error(path, needed) from None
        raise
    finally:
        tmp.unlink(missing_ok=True)
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` atomically."""
    return atomic_write(path, lambda tmp: tmp.write_text(text), needed=len(text.encode()))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write ``obj`` as indented JSON to ``path`` atomically."""
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")


def tensor_bytes(obj: Any) -> int:
    """Bytes of every tensor inside ``obj`` (dicts, lists, tuples): a checkpoint's size, roughly."""
    import torch  # here, not at the top: the command line imports this module before parsing

    if isinstance(obj, torch.Tensor):
        return obj.numel() * obj.element_size()
    if isinstance(obj, dict):
        return sum(tensor_bytes(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(tensor_bytes(v) for v in obj)
    return 0


def atomic_torch_save(path: str | os.PathLike, obj: Any) -> Path:
    """``torch.save`` to ``path`` atomically."""
    import torch

    return atomic_write(path, lambda tmp: torch.save(obj, tmp), needed=tensor_bytes(obj))


def remove_stale_temps(folder: str | os.PathLike, names: Iterable[str] | None = None) -> list[Path]:
    """Delete temporary files that :func:`atomic_write` left in ``folder`` when its process was
    killed (only those of ``names`` when given). Call it while holding the folder's writer lock."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    prefixes = None if names is None else tuple(f".{name}." for name in names)
    removed = []
    for path in folder.glob(f".*{TEMP_SUFFIX}"):
        if path.is_file() and (prefixes is None or path.name.startswith(prefixes)):
            path.unlink(missing_ok=True)
            removed.append(path)
    if removed:
        log.info("removed %d unfinished temporary file(s) in %s left by an interrupted run", len(removed), folder)
    return removed


def append_jsonl(path: str | os.PathLike, record: dict[str, Any]) -> None:
    """Append one JSON record as a line (flushed and synced)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        handle.write(json.dumps(record, default=str) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


@dataclass(frozen=True)
class JsonlContents:
    """The complete records of a JSONL file and the bytes of a torn tail after them."""

    records: list[dict[str, Any]]
    good_bytes: int  # length of the file up to and including the last complete record
    torn_bytes: int  # bytes after it (a crash mid-write); 0 for a clean file


def load_jsonl(path: str | os.PathLike) -> JsonlContents:
    """Read the complete records of ``path``: reading stops at the first line that is not a
    whole JSON object or has no newline, and everything from there on counts as torn."""
    data = Path(path).read_bytes()
    records: list[dict[str, Any]] = []
    position = 0
    while position < len(data):
        end = data.find(b"\n", position)
        if end < 0:
            break
        line = data[position:end]
        if line.strip():
            try:
                record = json.loads(line)
            except (json.JSONDecodeError, UnicodeDecodeError):
                break
            if not isinstance(record, dict):
                break
            records.append(record)
        position = end + 1
    return JsonlContents(records, position, len(data) - position)


def read_jsonl(path: str | os.PathLike) -> list[dict[str, Any]]:
    """The complete records of a JSONL file (a torn tail is left out; see :func:`load_jsonl`)."""
    return load_jsonl(path).records


def repair_jsonl(path: str | os.PathLike) -> JsonlContents:
    """Truncate ``path`` to its last complete record (a warning says how much was dropped), so
    that appending never continues a torn line."""
    contents = load_jsonl(path)
    if contents.torn_bytes:
        with open(path, "rb+") as handle:
            handle.truncate(contents.good_bytes)
            os.fsync(handle.fileno())
        log.warning("%s: dropped a torn last record (%d bytes, an interrupted write); kept %d complete record(s)",
                    path, contents.torn_bytes, len(contents.records))
    return contents
