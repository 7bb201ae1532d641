"""Where and how this process runs: device choice, worker counts, seeds, its torch.distributed
rank, and the one-line text of an exception. Every module asks here instead of deciding itself.

Only :func:`resolve_device` and :func:`process_rank` import torch (``gcpbench doctor`` imports this
module on installs where torch may be broken)."""
from __future__ import annotations

import hashlib
import os
import stat
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gcpbench.errors import GcpbenchError

if TYPE_CHECKING:
    import torch


# ----------------------------------------------------------------------------- devices

def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` (CUDA when visible, else CPU), ``cpu``, ``cuda`` or ``cuda:N``."""
    import torch

    key = name.strip().lower()
    if key == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if key == "cpu":
        return torch.device("cpu")
    if key == "cuda" or key.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise GcpbenchError(f"--device {name}: no CUDA GPU is visible; use --device auto or --device cpu")
        device = torch.device(key)
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise GcpbenchError(f"--device {name}: only {torch.cuda.device_count()} CUDA device(s) are visible")
        return device
    raise GcpbenchError(f"unknown device '{name}': use auto, cpu, cuda or cuda:N")


# ----------------------------------------------------------------------------- workers

def usable_cores() -> int:
    """The CPU cores this process may run on (its affinity mask on Linux)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def loader_workers() -> int:
    """DataLoader processes by default: the usable cores minus one for the main process, at most 8."""
    return max(1, min(8, usable_cores() - 1))


def pool_workers() -> int:
    """Processes of a pool whose main process only waits (``data make-c/make-p``): the cores, at most 8."""
    return max(1, min(8, usable_cores()))


# ----------------------------------------------------------------------------- seeds

def mix_seed(*values: int) -> int:
    """A 63-bit seed from integers (fast, stable across runs and platforms): torch generators."""
    seed = 0x9E3779B97F4A7C15
    for value in values:
        seed = (seed ^ (value & 0xFFFFFFFFFFFFFFFF)) * 0xBF58476D1CE4E5B9 & 0xFFFFFFFFFFFFFFFF
        seed ^= seed >> 31
    return seed & 0x7FFFFFFFFFFFFFFF


def seed_digest(*parts: Any) -> bytes:
    """SHA-1 of the parts joined by ``/`` (the same in every process and run)."""
    return hashlib.sha1("/".join(map(str, parts)).encode()).digest()


def stable_seed(*parts: Any) -> int:
    """A 32-bit seed from any parts (the first four bytes of :func:`seed_digest`, little-endian)."""
    return int.from_bytes(seed_digest(*parts)[:4], "little")


# ----------------------------------------------------------------------------- ranks

def process_rank() -> int:
    """This process's rank: torch.distributed's once a group is up, else torchrun's ``RANK``
    (a group started later, inside mmengine's Runner), else 0."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank()
    value = os.environ.get("RANK", "")
    try:
        return int(value) if value else 0
    except ValueError:
        raise GcpbenchError(f"environment variable RANK={value!r} is not an integer (set by torchrun)") from None


def is_main_process() -> bool:
    """Whether this process is rank 0 (the one that writes records and reports)."""
    return process_rank() == 0


# ----------------------------------------------------------------------------- errors

def first_line(exc: BaseException) -> str:
    """The first line of ``exc``'s message, or its type name when the message is empty."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


# ----------------------------------------------------------------------------- matplotlib

def _usable_folder(path: Path) -> bool:
    """``path`` is (or can be made) a folder this process can write into."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = tempfile.TemporaryFile(dir=path)
    except OSError:
        return False
    probe.close()
    return True


def _private_folder(path: Path) -> bool:
    """``path`` is a usable folder of this user that nobody else may write (a shared /tmp name)."""
    if not _usable_folder(path):
        return False
    info = path.lstat()
    return (stat.S_ISDIR(info.st_mode) and info.st_uid == os.getuid()
            and not info.st_mode & (stat.S_IWGRP | stat.S_IWOTH))


def matplotlib_config_dir() -> None:
    """Give matplotlib a writable folder before anything imports it: with a read-only ``$HOME``
    (cluster nodes) it makes a temporary one at every start and says so on stderr. Nothing
    changes when ``MPLCONFIGDIR`` is set or its default folders are writable; else
    ``MPLCONFIGDIR`` becomes ``$GCPBENCH_CACHE/matplotlib``, or a private folder in the temp
    folder, kept between runs (matplotlib's font cache lives there)."""
    if os.environ.get("MPLCONFIGDIR"):
        return
    home = Path.home()
    defaults = (Path(os.environ.get("XDG_CONFIG_HOME") or home / ".config") / "matplotlib",
                Path(os.environ.get("XDG_CACHE_HOME") or home / ".cache") / "matplotlib")
    if all(_usable_folder(folder) for folder in defaults):
        return
    candidates = [Path(tempfile.gettempdir()) / f"gcpbench-matplotlib-{os.getuid()}"]
    if os.environ.get("GCPBENCH_CACHE"):
        candidates.insert(0, Path(os.environ["GCPBENCH_CACHE"]) / "matplotlib")
    for folder in candidates:
        if _private_folder(folder) if folder.parent == Path(tempfile.gettempdir()) else _usable_folder(folder):
            os.environ["MPLCONFIGDIR"] = str(folder)
            return
    os.environ["MPLCONFIGDIR"] = tempfile.mkdtemp(prefix="gcpbench-matplotlib-")
