"""`gcpbench doctor` reports the true state of this machine (2 CPU cores, no GPU, the full venv)."""
from __future__ import annotations

import dataclasses
import json
import os
import shutil
import sys

import pytest
import torch

from gcpbench.buildplan import find_nvcc, nvcc_version
from gcpbench.doctor import Problem, Report, collect, problems_of, try_backend


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Report:
    return collect(run_root=tmp_path_factory.mktemp("runs") / "not-yet")


def test_versions_and_cuda_facts_are_this_machines(report: Report) -> None:
    import mmcv
    import torchvision

    assert report.versions["torch"] == torch.__version__.split("+")[0]
    assert report.versions["torchvision"] == torchvision.__version__.split("+")[0]
    assert report.versions["mmcv"] == mmcv.__version__
    assert report.python == f"{sys.version_info.major}.{sys.version_info.minor}.{sys.version_info.micro}"
    assert report.core_ok and report.core_error is None
    assert report.torch_cuda == torch.version.cuda
    assert report.cuda_available is torch.cuda.is_available() is False
    assert report.gpus == [] and report.bf16_cuda is None and report.tf32 is None
    assert report.bf16_cpu is True
    nvcc = find_nvcc(os.environ)
    assert (report.nvcc, report.nvcc_release) == ((nvcc, nvcc_version(nvcc)) if nvcc else (None, None))
    assert shutil.which("nvidia-smi") is None and report.nvidia_driver is None  # no NVIDIA driver on this machine
    assert torch.backends.cudnn.is_available()  # this torch is a CUDA build: cuDNN is built in, with no GPU to use it
    assert report.cudnn == "{}.{}.{}".format(*(torch.backends.cudnn.version() // d % 100 for d in (10000, 100, 1)))
    assert report.nccl == ".".join(map(str, torch.cuda.nccl.version()))


def test_backends_mmcv_and_disk(report: Report, tmp_path_factory) -> None:
    assert report.ddp_backends["gloo"] == "works"
    assert report.ddp_backends["nccl"] == "no GPU visible"
    assert report.ddp_backends["mpi"] == ("torch was built without MPI" if not torch.distributed.is_mpi_available() else "works")
    assert report.detect_missing == []
    from mmcv.ops import get_compiling_cuda_version

    assert get_compiling_cuda_version() == "not available"  # this venv's mmcv has CPU kernels
    assert report.mmcv_ops == "cpu" and report.mmcv_ops_cuda is None
    folder, free = report.disk_free_gib["runs"]
    assert folder.endswith("not-yet")
    assert free == pytest.approx(shutil.disk_usage(folder.rsplit("/", 1)[0]).free / 2**30, abs=1.0)
    assert report.problems == []
    assert report.summary() == (f"gcpbench {report.gcpbench}: core ok; detect ok (mmcv ops: cpu); CUDA: no GPU visible; "
                                "DDP: gloo; nothing to fix")


def test_gloo_group_is_torn_down_after_the_check() -> None:
    assert try_backend("gloo") == "works"
    assert not torch.distributed.is_initialized()


def test_problems_name_the_command_that_fixes_them(report: Report) -> None:
    missing = dataclasses.replace(report, detect_missing=["mmcv", "mmdet"], problems=[])
    (problem,) = problems_of(missing)
    assert problem == Problem("gcpbench detect: missing mmcv, mmdet", f"VENV={sys.prefix} bash scripts/bootstrap.sh")
    cpu_ops_on_gpu = dataclasses.replace(report, cuda_available=True, torch_cuda="13.0", nvcc=None, nvcc_release=None,
                                         problems=[])
    (problem,) = problems_of(cpu_ops_on_gpu)
    assert "no CUDA kernels" in problem.what
    rebuild = f"VENV={sys.prefix} bash scripts/bootstrap.sh --rebuild-mmcv"
    assert problem.fix == f"install a CUDA 13.x toolkit (nvcc) or set CUDA_HOME to one, then {rebuild}"
    (problem,) = problems_of(dataclasses.replace(cpu_ops_on_gpu, nvcc="/opt/cuda-12/bin/nvcc", nvcc_release="12.4"))
    assert problem.fix == (f"install a CUDA 13.x toolkit (nvcc) or set CUDA_HOME to one (found nvcc 12.4 at "
                           f"/opt/cuda-12/bin/nvcc), then {rebuild}")
    (problem,) = problems_of(dataclasses.replace(cpu_ops_on_gpu, nvcc="/usr/local/cuda/bin/nvcc", nvcc_release="13.0"))
    assert problem.fix == rebuild
    full_disk = dataclasses.replace(report, disk_free_gib={"cache": ("/c", 0.5)}, problems=[])
    assert [p.what for p in problems_of(full_disk)] == ["only 0.5 GiB free for cache at /c"]


def test_cli_prints_the_summary_first_and_exits_0(run_cli, report: Report) -> None:
    code, out, err = run_cli("doctor")
    lines = out.splitlines()
    assert code == 0, err
    assert lines[0] == report.summary()
    assert any(line.split()[:3] == ["DDP", "gloo", "works"] for line in lines)
    record = json.loads(json.dumps(report.to_json()))  # what --json prints
    assert record["summary"] == report.summary() and record["versions"]["torch"] == report.versions["torch"]


def test_opencv_from_its_headless_distribution_is_reported_as_installed(monkeypatch) -> None:
    import importlib.metadata

    from gcpbench.doctor import versions

    installed = {"opencv-python-headless": "4.12.0.88", "numpy": "2.5.2"}

    def version(name: str) -> str:
        if name not in installed:
            raise importlib.metadata.PackageNotFoundError(name)
        return installed[name]

    monkeypatch.setattr(importlib.metadata, "version", version)
    assert versions(("numpy", "opencv-python", "mmcv")) == {
        "numpy": "2.5.2", "opencv-python": "4.12.0.88 (opencv-python-headless)", "mmcv": None}
    installed["opencv-python"] = "4.12.0.88"
    assert versions(("opencv-python",)) == {"opencv-python": "4.12.0.88"}
