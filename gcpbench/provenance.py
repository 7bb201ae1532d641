"""What code and stack produced a number: one dictionary, gathered in one place.

:func:`provenance` is stored as ``config.json["provenance"]`` by every command that makes a run
(train, eval-imagenet / -c / -p / -cifar / variants, detect, landscape), as ``provenance`` in
every result under ``eval/``, and shown in the report's header. Keys:

``argv`` (the command line as a list, ``argv[0]`` shortened to ``gcpbench``), ``command_line``
(the same joined with shell quoting), ``gcpbench_version``, ``git_commit`` and ``git_dirty``
(of the source tree gcpbench was imported from; None outside a git checkout), ``python``,
``torch``, ``torchvision``, ``cuda`` (torch's CUDA build), ``cudnn``, ``mmcv``, ``mmengine``,
``mmdet`` (None when absent), ``device`` (the device the command runs on, when given),
``hardware`` (GPU names, else the CPU model and core count), ``host`` (the node name),
``platform`` and ``created`` (ISO time). The git and version facts are read once per process.
"""
from __future__ import annotations

import datetime as _dt
import functools
import importlib.metadata
import os
import platform
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any, Sequence

PACKAGES: tuple[str, ...] = ("torch", "torchvision", "mmcv", "mmengine", "mmdet")


def _package_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def _git(args: list[str], cwd: Path) -> str | None:
    try:
        done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


@functools.lru_cache(maxsize=None)
def git_state(source: Path | None = None) -> tuple[str | None, bool | None]:
    """(commit, dirty) of the git checkout holding ``source`` (default: the gcpbench package);
    (None, None) when it is not in one (an installed wheel). Dirty: tracked files changed."""
    folder = Path(source) if source is not None else Path(__file__).resolve().parent
    commit = _git(["rev-parse", "HEAD"], folder)
    if commit is None:
        return None, None
    status = _git(["status", "--porcelain", "--untracked-files=no"], folder)
    return commit, None if status is None else bool(status)


def command_argv(argv: Sequence[str] | None = None) -> list[str]:
    """The command line (default ``sys.argv``) with the program shortened to ``gcpbench``."""
    args = list(sys.argv if argv is None else argv)
    if args and (Path(args[0]).name in ("gcpbench", "__main__.py") or args[0].endswith("gcpbench/__main__.py")):
        args[0] = "gcpbench"
    return args


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cudnn_version() -> str | None:
    """cuDNN's version as ``9.24.0`` (None when torch has no cuDNN)."""
    import torch

    if not torch.backends.cudnn.is_available():
        return None
    version = torch.backends.cudnn.version()
    if version is None:
        return None
    return f"{version // 10000}.{version // 100 % 100}.{version % 100}" if version >= 10000 else str(version)


@functools.lru_cache(maxsize=None)
def _stack() -> dict[str, Any]:
    """Versions and hardware: read once (torch is imported only when it is installed)."""
    facts: dict[str, Any] = {name: _package_version(name) for name in PACKAGES}
    facts.update(cuda=None, cudnn=None)
    gpus: list[str] = []
    if facts["torch"] is not None:
        import torch

        facts["cuda"] = torch.version.cuda
        facts["cudnn"] = cudnn_version()
        if torch.cuda.is_available():
            gpus = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    cores = os.cpu_count() or 1
    facts["hardware"] = (f"{len(gpus)} x {gpus[0]}" if gpus and len(set(gpus)) == 1 else ", ".join(gpus)) if gpus \
        else f"CPU: {_cpu_model()} ({cores} cores)"
    return facts


def provenance(argv: Sequence[str] | None = None, device: object | None = None) -> dict[str, Any]:
    """The provenance of a run or result made now by this process (see the module docstring)."""
    from gcpbench import __version__

    args = command_argv(argv)
    commit, dirty = git_state()
    return {
        "argv": args,
        "command_line": shlex.join(args),
        "gcpbench_version": __version__,
        "git_commit": commit,
        "git_dirty": dirty,
        "python": platform.python_version(),
        **_stack(),
        "device": None if device is None else str(device),
        "host": platform.node(),
        "platform": f"{platform.system()} {platform.machine()}",
        "created": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
    }


def describe_stack(facts: dict[str, Any]) -> str:
    """One line: ``gcpbench 0.1.0 (git abc1234, dirty), torch 2.4 (CUDA 12.1, cuDNN 90100), ...``."""
    commit = facts.get("git_commit")
    git = f"git {commit[:12]}" + (", dirty" if facts.get("git_dirty") else "") if commit else "no git checkout"
    cuda = f"CUDA {facts['cuda']}" if facts.get("cuda") else "CPU build"
    parts = [f"gcpbench {facts.get('gcpbench_version')} ({git})",
             f"torch {facts.get('torch')} ({cuda}" + (f", cuDNN {facts['cudnn']})" if facts.get("cudnn") else ")"),
             f"torchvision {facts.get('torchvision')}"]
    parts += [f"{name} {facts[name]}" for name in ("mmcv", "mmengine", "mmdet") if facts.get(name)]
    return ", ".join(parts)
