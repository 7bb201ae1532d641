"""What ``scripts/bootstrap.sh`` builds: mmcv's ops with CUDA or CPU kernels, and the constraints
to use with a torch that is already installed.

mmcv 2.1 has no wheel for torch >= 2.6, so its ops are compiled. With CUDA kernels only when
everything a CUDA build needs is here: a CUDA build of torch, ``nvcc`` of the same major CUDA
version (torch refuses another major), and at least one visible GPU, whose compute capabilities
alone are built (``TORCH_CUDA_ARCH_LIST``; each further architecture adds a full pass over the
kernels).

The toolkit is ``$CUDA_HOME``, else nvcc's on PATH, else /usr/local/cuda; when it lacks the
CUDA library headers that torch's headers include (cusparse.h, ...), those of pip's nvidia-*
wheels (installed with torch) are put on ``CPATH``.

``scripts/buildplan.py`` is its command line (``mmcv [--shell]``: the plan, or ``export`` lines
for bootstrap; ``constraints SRC DST``: SRC without the pins of torch, torchvision and
everything they require). This module runs before gcpbench is installed: it imports nothing of
gcpbench but ``gcpbench/__init__`` (which is light).
"""
from __future__ import annotations

import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

OVERRIDE = "GCPBENCH_MMCV_CUDA"  # 1: CUDA kernels whatever is found, 0: CPU only


@dataclass(frozen=True)
class BuildPlan:
    """How mmcv's ops are compiled."""

    cuda: bool
    arch_list: str | None  # TORCH_CUDA_ARCH_LIST, e.g. "8.0;9.0"
    reason: str
    cuda_home: str | None = None  # the toolkit that builds the kernels (torch reads CUDA_HOME)
    include_dirs: tuple[str, ...] = ()  # CUDA library headers from pip's nvidia wheels, for a bare toolkit

    def env(self) -> dict[str, str]:
        """The variables mmcv's setup.py, torch's extension builder and the compilers read."""
        env = {"MMCV_WITH_OPS": "1", "FORCE_CUDA": "1" if self.cuda else "0"}
        if self.cuda and self.arch_list:
            env["TORCH_CUDA_ARCH_LIST"] = self.arch_list
        if self.cuda and self.cuda_home:
            env["CUDA_HOME"] = self.cuda_home
        if self.cuda and self.include_dirs:
            env["CPATH"] = os.pathsep.join(self.include_dirs)
        return env

    def describe(self) -> str:
        kind = f"CUDA kernels for compute capability {self.arch_list}" if self.cuda else "CPU kernels only"
        return f"mmcv ops with {kind} ({self.reason})"


def run_tool(command: Sequence[str], timeout: float = 30.0) -> str | None:
    """stdout of ``command``, or None when it cannot run or fails."""
    try:
        done = subprocess.run(list(command), capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 else None


def cuda_home(env: Mapping[str, str]) -> Path | None:
    """The CUDA toolkit: ``$CUDA_HOME`` / ``$CUDA_PATH``, else the one of ``nvcc`` on PATH, else
    /usr/local/cuda. A folder counts when it holds ``bin/nvcc`` and ``include/cuda_runtime.h``
    (an ``nvcc`` on PATH may be a launcher script in /usr/local/bin, whose parent has no headers;
    torch would take that parent)."""
    for key in ("CUDA_HOME", "CUDA_PATH"):
        if env.get(key) and (Path(env[key]) / "bin" / "nvcc").is_file():
            return Path(env[key])
    found = shutil.which("nvcc", path=env.get("PATH"))
    for root in ([Path(found).resolve().parent.parent] if found else []) + [Path("/usr/local/cuda")]:
        if (root / "bin" / "nvcc").is_file() and (root / "include" / "cuda_runtime.h").is_file():
            return root
    return None


def find_nvcc(env: Mapping[str, str]) -> str | None:
    """``bin/nvcc`` of :func:`cuda_home`."""
    home = cuda_home(env)
    return str(home / "bin" / "nvcc") if home else None


def wheel_cuda_includes(home: Path | None, search: Sequence[str] = tuple(sys.path)) -> tuple[str, ...]:
    """``include`` folders of pip's nvidia-* wheels (cuSPARSE, cuBLAS, ... headers that torch's
    headers include) when the toolkit at ``home`` lacks them (a bare nvcc + cudart install)."""
    if home is not None and (home / "include" / "cusparse.h").is_file():
        return ()
    found = []
    for entry in search:
        found += sorted(str(p) for p in Path(entry or ".").glob("nvidia/*/include") if p.is_dir())
    return tuple(dict.fromkeys(found))


def nvcc_version(nvcc: str) -> str | None:
    """``release 12.4`` in ``nvcc --version`` -> "12.4"."""
    match = re.search(r"release (\d+\.\d+)", run_tool([nvcc, "--version"]) or "")
    return match.group(1) if match else None


def visible_capabilities(env: Mapping[str, str], smi: str | None = None) -> list[str]:
    """Compute capabilities ("9.0") of the GPUs this process may use: nvidia-smi's list filtered by
    ``CUDA_VISIBLE_DEVICES`` (indices or UUIDs), sorted and without repeats."""
    smi = smi or shutil.which("nvidia-smi", path=env.get("PATH"))
    if smi is None:
        return []
    out = run_tool([smi, "--query-gpu=index,uuid,compute_cap", "--format=csv,noheader"])
    rows = [[part.strip() for part in line.split(",")] for line in (out or "").splitlines() if line.count(",") == 2]
    visible = env.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        wanted = [v.strip() for v in visible.split(",") if v.strip()]
        rows = [row for row in rows if row[0] in wanted or any(row[1].startswith(w) for w in wanted if w.startswith("GPU-"))]
    return sorted({row[2] for row in rows if re.fullmatch(r"\d+\.\d+", row[2])}, key=lambda c: tuple(map(int, c.split("."))))


def plan(torch_cuda: str | None, nvcc: str | None, nvcc_release: str | None, capabilities: Sequence[str],
         override: str | None = None, include_dirs: Sequence[str] = ()) -> BuildPlan:
    """The build from what was found (pure: every fact is an argument)."""
    arch = ";".join(capabilities) or None
    home = str(Path(nvcc).parent.parent) if nvcc else None
    if override == "0":
        return BuildPlan(False, None, f"{OVERRIDE}=0")
    if override == "1":
        return BuildPlan(True, arch, f"{OVERRIDE}=1" + ("" if arch else "; no GPU visible: torch's default architectures"),
                         home, tuple(include_dirs))
    if torch_cuda is None:
        return BuildPlan(False, None, "torch is a CPU build")
    if nvcc is None:
        return BuildPlan(False, None, "no nvcc found (install the CUDA toolkit or set CUDA_HOME)")
    if not capabilities:
        return BuildPlan(False, None, "no GPU visible")
    if nvcc_release is None or nvcc_release.split(".")[0] != torch_cuda.split(".")[0]:
        return BuildPlan(False, None, f"nvcc {nvcc_release or '(version unknown)'} at {nvcc} does not match torch's CUDA "
                                      f"{torch_cuda}: set CUDA_HOME to a CUDA {torch_cuda.split('.')[0]}.x toolkit")
    return BuildPlan(True, arch, f"nvcc {nvcc_release}, torch CUDA {torch_cuda}, GPU compute capability {arch}",
                     home, tuple(include_dirs))


def current_plan(env: Mapping[str, str] = os.environ) -> BuildPlan:
    """The plan for this machine and this Python's torch."""
    import torch

    nvcc = find_nvcc(env)
    home = Path(nvcc).parent.parent if nvcc else None
    return plan(torch.version.cuda, nvcc, nvcc_version(nvcc) if nvcc else None, visible_capabilities(env), env.get(OVERRIDE),
                wheel_cuda_includes(home))


def installed_closure(roots: Sequence[str]) -> set[str]:
    """Normalised names of the installed distributions ``roots`` and everything they require,
    recursively (a requirement's ``[extras]`` are followed; the roots' own extras are not)."""
    seen: set[str] = set()
    todo: list[tuple[str, set[str]]] = [(root, set()) for root in roots]
    while todo:
        name, extras = todo.pop()
        try:
            requires = importlib.metadata.requires(name) or []
        except importlib.metadata.PackageNotFoundError:
            continue
        for requirement in requires:
            spec, _, marker = requirement.partition(";")
            wanted = re.search(r"extra\s*==\s*['\"]([^'\"]+)['\"]", marker)
            if wanted and wanted.group(1) not in extras:
                continue
            match = re.match(r"\s*([A-Za-z0-9._-]+)\s*(?:\[([^\]]*)\])?", spec)
            if match and normalise(match.group(1)) not in seen:
                seen.add(normalise(match.group(1)))
                todo.append((match.group(1), {e.strip() for e in (match.group(2) or "").split(",") if e.strip()}))
    return seen


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def constraints_without_torch(lines: Sequence[str], torch_requirements: set[str]) -> list[str]:
    """Constraint lines minus torch, torchvision, triton and ``torch_requirements`` (what the
    installed torch and torchvision require, :func:`installed_closure`), so that pip keeps the
    installed torch stack as it is."""
    drop = {"torch", "torchvision", "triton", *map(normalise, torch_requirements)}
    kept = []
    for line in lines:
        name = normalise(re.split(r"[ ;<>=!~\[]", line.strip(), maxsplit=1)[0]) if line.strip() and not line.startswith("#") else ""
        if name not in drop:
            kept.append(line)
    return kept


def torchvision_for(torch_version: str) -> str:
    """The torchvision release series made for a torch release: torch 2.M pairs with torchvision 0.(M+15)."""
    major, minor = (int(v) for v in re.findall(r"\d+", torch_version)[:2])
    if major != 2:
        raise ValueError(f"torch {torch_version}: gcpbench needs torch 2.x (>= 2.6)")
    return f"0.{minor + 15}.*"


MMCV_VERSION = "2.1.0"
SETUPTOOLS_FOR_MMCV = "69.5.1"  # mmcv 2.1.0's setup.py needs setuptools < 70, for its build only


def mmcv_install_note(cached: str, cuda: bool, cores: int) -> str:
    """What bootstrap says before installing mmcv: a cached CPU wheel (``pip cache list mmcv``
    output in ``cached``) installs in seconds; otherwise the ops are compiled, about 8-15 minutes
    on 2 cores (measured on 2-core VMs), during which pip prints nothing."""
    if not cuda and re.search(rf"\bmmcv-{re.escape(MMCV_VERSION)}-", cached):
        return f"mmcv {MMCV_VERSION} (CPU kernels) is in pip's cache: installing the cached wheel, seconds"
    kernels = "CPU and CUDA kernels (the CUDA ones take longer)" if cuda else "CPU kernels"
    return (f"compiling mmcv {MMCV_VERSION}'s ops, {kernels}, with {cores} job(s): about 8-15 minutes on 2 cores, "
            "less with more; pip prints nothing until it is done")


def setuptools_note(current: str | None) -> str:
    """Why bootstrap pins setuptools for a moment (pip's resolver would call it an ERROR)."""
    back = f"setuptools {current} is put back" if current else "the newer setuptools is put back"
    return (f"setuptools {SETUPTOOLS_FOR_MMCV} for mmcv's build only (its setup.py needs < 70; torch asks for >= 77 "
            f"at run time): {back} right after, so pip's conflict warnings are switched off for these two steps")
