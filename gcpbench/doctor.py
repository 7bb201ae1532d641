"""``gcpbench doctor``: the facts about this installation, each measured, and how to fix what is missing.

:func:`collect` returns a :class:`Report`; the CLI only renders it. Every fact comes from the
real component: versions from the installed distributions, the GCP layer and torchvision's C++
ops run on a tiny input, bf16 autocast is tried, each DDP backend initialises a one-process
group and all-reduces a tensor, and mmcv's ops are imported in a separate process (an mmcv built
against another torch can fail to load, or crash, without taking this process with it).
"""
from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from gcpbench import __version__
from gcpbench.extras import DETECT_MODULES, install_command, missing_modules, mmcv_ops_files
from gcpbench.provenance import cudnn_version
from gcpbench.runtime import first_line

DISTRIBUTIONS: tuple[str, ...] = ("torch", "torchvision", "numpy", "opencv-python", "pillow", "typer", "mmengine", "mmcv",
                                  "mmdet", "pycocotools")
# Other distributions of the same module: GPU images often ship OpenCV's headless build.
ALTERNATIVES: dict[str, tuple[str, ...]] = {
    "opencv-python": ("opencv-python-headless", "opencv-contrib-python", "opencv-contrib-python-headless")}
LOW_DISK_GIB = 10.0
_MMCV_PROBE = (
    "import json, mmcv, mmcv.ops\n"
    "from mmcv.ops import get_compiling_cuda_version\n"
    "print(json.dumps({'version': mmcv.__version__, 'cuda': get_compiling_cuda_version()}))\n"
)


@dataclass
class Problem:
    """Something missing or broken, and the command or step that fixes it."""

    what: str
    fix: str


@dataclass
class GPU:
    """One visible CUDA device."""

    index: int
    name: str
    capability: str
    memory_gib: float
    tf32: bool


@dataclass
class Report:
    """Everything ``gcpbench doctor`` reports."""

    gcpbench: str
    python: str
    platform: str
    versions: dict[str, str | None]
    core_ok: bool
    core_error: str | None
    torch_cuda: str | None  # the CUDA version torch was built with (None: a CPU build)
    nvidia_driver: str | None  # from nvidia-smi (None: no driver)
    nvcc: str | None  # the nvcc that would build mmcv's CUDA kernels (gcpbench.buildplan.find_nvcc)
    nvcc_release: str | None  # its CUDA release, e.g. "13.0"
    cuda_available: bool
    gpus: list[GPU]
    cudnn: str | None  # None: torch has no cuDNN
    nccl: str | None  # None: torch was built without NCCL
    bf16_cpu: bool  # CPU autocast to bfloat16 works
    bf16_cuda: bool | None  # None: no GPU
    tf32: bool | None  # every visible GPU has TF32 tensor cores (compute capability >= 8.0); None: no GPU
    detect_missing: list[str]
    mmcv_ops: str  # "cuda", "cpu", "absent" or "broken: <error>"
    mmcv_ops_cuda: str | None  # the CUDA version mmcv's ops were compiled with
    ddp_backends: dict[str, str]  # backend -> "works" or why not
    disk_free_gib: dict[str, tuple[str, float]]  # "runs" / "cache" -> (folder measured, free GiB)
    problems: list[Problem] = field(default_factory=list)

    @property
    def working_backends(self) -> list[str]:
        return [name for name, state in self.ddp_backends.items() if state == "works"]

    def summary(self) -> str:
        """One line: core, detection, CUDA, DDP, problems."""
        core = "core ok" if self.core_ok else "core BROKEN"
        if self.detect_missing:
            detect = f"detect extra missing ({', '.join(self.detect_missing)})"
        else:
            detect = f"detect ok (mmcv ops: {self.mmcv_ops})" if self.mmcv_ops in ("cpu", "cuda") else f"detect: mmcv ops {self.mmcv_ops}"
        if self.gpus:
            cuda = f"CUDA {self.torch_cuda}: {len(self.gpus)} GPU(s), {self.gpus[0].name}"
        else:
            cuda = "CUDA: no GPU visible" if self.torch_cuda else "CUDA: torch is a CPU build"
        ddp = "DDP: " + (", ".join(self.working_backends) or "none")
        count = len(self.problems)
        tail = "nothing to fix" if count == 0 else f"{count} thing{'s' if count > 1 else ''} to fix"
        return f"gcpbench {self.gcpbench}: {core}; {detect}; {cuda}; {ddp}; {tail}"

    def to_json(self) -> dict[str, Any]:
        record = asdict(self)
        record["summary"] = self.summary()
        return record


def versions(names: tuple[str, ...] = DISTRIBUTIONS) -> dict[str, str | None]:
    """Installed version of each distribution (None when absent); where only an alternative
    distribution of the same module is installed (:data:`ALTERNATIVES`), its version and name,
    e.g. ``"4.12.0 (opencv-python-headless)"``."""
    found: dict[str, str | None] = {}
    for name in names:
        found[name] = None
        for candidate in (name, *ALTERNATIVES.get(name, ())):
            try:
                version = importlib.metadata.version(candidate)
            except importlib.metadata.PackageNotFoundError:
                continue
            found[name] = version if candidate == name else f"{version} ({candidate})"
            break
    return found


def check_core() -> str | None:
    """Run the core on a tiny input: the GCP layer forward + backward, a zoo model, torchvision's
    C++ ops. Returns None when everything works, else the first error in one line."""
    try:
        import torch
        import torchvision

        from gcpbench.gcp import isqrt_cov, triu_size
        from gcpbench.models import build

        x = torch.rand(2, 8, 4, 4, requires_grad=True)
        out = isqrt_cov(x)
        out.sum().backward()
        if out.shape != (2, triu_size(8)) or not bool(torch.isfinite(out).all() and torch.isfinite(x.grad).all()):
            return "the GCP layer returned a wrong shape or non-finite values"
        build("resnet18_gcp", num_classes=2)
        boxes = torch.tensor([[0.0, 0.0, 2.0, 2.0], [0.0, 0.0, 2.0, 2.1]])
        torchvision.ops.nms(boxes, torch.tensor([1.0, 0.5]), 0.5)
    except Exception as exc:  # the report says what failed instead of crashing
        return f"{type(exc).__name__}: {first_line(exc)}"
    return None


def cpu_bf16_works() -> bool:
    """A matrix product under CPU autocast comes out in bfloat16."""
    import torch

    try:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return (torch.ones(4, 4) @ torch.ones(4, 4)).dtype == torch.bfloat16
    except RuntimeError:
        return False


def gpus() -> list[GPU]:
    """Every visible CUDA device."""
    import torch

    if not torch.cuda.is_available():
        return []
    found = []
    for index in range(torch.cuda.device_count()):
        props = torch.cuda.get_device_properties(index)
        found.append(GPU(index, props.name, f"{props.major}.{props.minor}", round(props.total_memory / 2**30, 1),
                         props.major >= 8))
    return found


def nccl_version() -> str | None:
    import torch
    import torch.distributed as dist

    if not dist.is_available() or not dist.is_nccl_available():
        return None
    try:
        version = torch.cuda.nccl.version()
    except (RuntimeError, AttributeError):
        return "available"
    return ".".join(str(v) for v in version) if isinstance(version, tuple) else str(version)


def try_backend(backend: str) -> str:
    """Initialise a one-process group on ``backend``, all-reduce a tensor, tear it down."""
    import torch
    import torch.distributed as dist

    if not dist.is_available():
        return "torch.distributed is not built in"
    if dist.is_initialized():
        return "not tried (a process group is already running)"
    if backend == "nccl" and not torch.cuda.is_available():
        return "no GPU visible"
    if backend == "mpi" and not dist.is_mpi_available():
        return "torch was built without MPI"
    device = torch.device("cuda", torch.cuda.current_device()) if backend == "nccl" else torch.device("cpu")
    with tempfile.TemporaryDirectory(prefix="gcpbench-doctor-") as tmp:
        try:
            store = dist.FileStore(str(Path(tmp) / "store"), 1)
            dist.init_process_group(backend, store=store, rank=0, world_size=1)
            value = torch.full((2,), 3.0, device=device)
            dist.all_reduce(value)
            ok = value.tolist() == [3.0, 3.0]
        except Exception as exc:  # report why the backend does not work
            return f"fails: {type(exc).__name__}: {first_line(exc)}"
        finally:
            if dist.is_initialized():
                dist.destroy_process_group()
    return "works" if ok else "fails: all_reduce returned a wrong value"


def probe_mmcv(python: str = sys.executable, timeout: float = 120.0) -> tuple[str, str | None]:
    """(state, CUDA version) of mmcv's ops: cuda / cpu / absent / broken: why."""
    if missing_modules(("mmcv",)):
        return "absent", None
    if not mmcv_ops_files():
        return "absent", None
    try:
        done = subprocess.run([python, "-c", _MMCV_PROBE], capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return f"broken: importing mmcv.ops took more than {timeout:.0f} s", None
    if done.returncode != 0:
        lines = [line for line in done.stderr.strip().splitlines() if line.strip()]
        return f"broken: {lines[-1] if lines else f'exit code {done.returncode}'}", None
    info = json.loads(done.stdout.strip().splitlines()[-1])
    cuda = info["cuda"]
    return ("cpu", None) if cuda in ("not available", "", None) else ("cuda", str(cuda))


def free_gib(folder: Path) -> tuple[str, float]:
    """Free space where ``folder`` is (or would be created: its nearest existing parent)."""
    probe = folder.absolute()
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    return str(folder.absolute()), round(shutil.disk_usage(probe).free / 2**30, 1)


def problems_of(report: Report) -> list[Problem]:
    """What is missing or broken in ``report``, each with the command that fixes it."""
    found: list[Problem] = []
    if not report.core_ok:
        found.append(Problem(f"the core does not run ({report.core_error})",
                             "reinstall torch and torchvision as a matching pair: pip install --force-reinstall "
                             f"torch=={report.versions.get('torch') or '<version>'} torchvision"))
    if report.detect_missing:
        found.append(Problem(f"gcpbench detect: missing {', '.join(report.detect_missing)}", install_command()))
    elif report.mmcv_ops == "absent" or report.mmcv_ops.startswith("broken"):
        found.append(Problem(f"gcpbench detect: mmcv's ops are {report.mmcv_ops}", install_command(rebuild_mmcv=True)))
    elif report.mmcv_ops == "cpu" and report.cuda_available:
        major = (report.torch_cuda or "").split(".")[0]
        if report.nvcc is None or (report.nvcc_release or "").split(".")[0] != major:
            found_nvcc = f" (found nvcc {report.nvcc_release} at {report.nvcc})" if report.nvcc else ""
            fix = (f"install a CUDA {major}.x toolkit (nvcc) or set CUDA_HOME to one{found_nvcc}, then "
                   f"{install_command(rebuild_mmcv=True)}")
        else:
            fix = install_command(rebuild_mmcv=True)
        found.append(Problem("mmcv's ops have no CUDA kernels, so detection runs its RoI ops on the CPU", fix))
    if report.torch_cuda is None and shutil.which("nvidia-smi"):
        found.append(Problem(f"torch {report.versions.get('torch')} is a CPU build on a machine with an NVIDIA driver",
                             "install a CUDA build of torch (https://pytorch.org/get-started/locally/), then rerun bootstrap"))
    for label, (folder, free) in report.disk_free_gib.items():
        if free < LOW_DISK_GIB:
            found.append(Problem(f"only {free} GiB free for {label} at {folder}",
                                 "free space there, or point it elsewhere (--out / --work-dir; GCPBENCH_CACHE for the cache)"))
    return found


def collect(run_root: Path = Path("runs"), cache_root: Path | None = None) -> Report:
    """Measure everything ``gcpbench doctor`` reports."""
    import torch

    from gcpbench.buildplan import find_nvcc, nvcc_version, run_tool
    from gcpbench.data.synthetic import default_root

    devices = gpus()
    backends = {name: try_backend(name) for name in ("gloo", "nccl", "mpi")}
    detect_missing = missing_modules(DETECT_MODULES)
    mmcv_ops, mmcv_cuda = probe_mmcv()
    core_error = check_core()
    nvcc = find_nvcc(os.environ)
    driver = (run_tool(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"]) or "").strip().splitlines()
    report = Report(
        gcpbench=__version__, python=platform.python_version(), platform=f"{platform.system()} {platform.machine()}",
        versions=versions(), core_ok=core_error is None, core_error=core_error, torch_cuda=torch.version.cuda,
        nvidia_driver=driver[0] if driver else None, nvcc=nvcc, nvcc_release=nvcc_version(nvcc) if nvcc else None,
        cuda_available=bool(devices), gpus=devices, cudnn=cudnn_version(), nccl=nccl_version(), bf16_cpu=cpu_bf16_works(),
        bf16_cuda=torch.cuda.is_bf16_supported() if devices else None,
        tf32=all(gpu.tf32 for gpu in devices) if devices else None, detect_missing=detect_missing, mmcv_ops=mmcv_ops,
        mmcv_ops_cuda=mmcv_cuda, ddp_backends=backends,
        disk_free_gib={"runs": free_gib(run_root), "cache": free_gib(cache_root or default_root().parent)})
    report.problems = problems_of(report)
    return report
