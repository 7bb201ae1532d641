"""How bootstrap builds mmcv (CUDA kernels only where they can be built) and keeps an installed torch.

The machine facts come from real programs: small `nvcc` and `nvidia-smi` scripts on PATH print
what the real ones print on a GPU machine, and `scripts/bootstrap.sh --plan` runs for real
(it installs nothing in that mode)."""
from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from gcpbench.buildplan import (BuildPlan, constraints_without_torch, cuda_home, find_nvcc, installed_closure, normalise,
                                nvcc_version, plan, torchvision_for, visible_capabilities, wheel_cuda_includes)

REPO = Path(__file__).resolve().parents[1]
SMI_ROWS = ["0, GPU-1111aaaa-0000-0000-0000-000000000000, 9.0", "1, GPU-2222bbbb-0000-0000-0000-000000000000, 8.0",
            "2, GPU-3333cccc-0000-0000-0000-000000000000, 9.0"]


def fake_tools(root: Path, nvcc_release: str | None = "13.0", smi_rows: list[str] | None = None) -> Path:
    """A toolkit folder (bin/nvcc, include/cuda_runtime.h) and bin/nvidia-smi, the scripts printing
    what the real tools print; returns the bin folder."""
    folder = root / "bin"
    folder.mkdir(parents=True, exist_ok=True)
    if nvcc_release:
        (folder / "nvcc").write_text("#!/bin/sh\necho 'nvcc: NVIDIA (R) Cuda compiler driver'\n"
                                     f"echo 'Cuda compilation tools, release {nvcc_release}, V{nvcc_release}.48'\n")
        (root / "include").mkdir(exist_ok=True)
        (root / "include" / "cuda_runtime.h").write_text("")
    if smi_rows is not None:
        lines = "\n".join(f"echo '{row}'" for row in smi_rows)
        (folder / "nvidia-smi").write_text(f"#!/bin/sh\n[ \"$1\" = --query-gpu=index,uuid,compute_cap ] || exit 9\n{lines}\n")
    for tool in folder.iterdir():
        tool.chmod(0o755)
    return folder


def test_plan_builds_cuda_kernels_only_when_everything_is_there() -> None:
    cuda = plan("13.0", "/usr/local/cuda/bin/nvcc", "13.0", ["8.0", "9.0"])
    assert cuda == BuildPlan(True, "8.0;9.0", "nvcc 13.0, torch CUDA 13.0, GPU compute capability 8.0;9.0", "/usr/local/cuda")
    assert cuda.env() == {"MMCV_WITH_OPS": "1", "FORCE_CUDA": "1", "TORCH_CUDA_ARCH_LIST": "8.0;9.0", "CUDA_HOME": "/usr/local/cuda"}
    assert plan("13.0", "/x/nvcc", "13.1", ["9.0"]).cuda  # minor versions may differ (torch only warns)
    cpu_cases = {
        "torch is a CPU build": plan(None, "/x/nvcc", "13.0", ["9.0"]),
        "no nvcc found": plan("13.0", None, None, ["9.0"]),
        "no GPU visible": plan("13.0", "/x/nvcc", "13.0", []),
        "nvcc 12.4 at /x/nvcc does not match torch's CUDA 13.0": plan("13.0", "/x/nvcc", "12.4", ["9.0"]),
    }
    for reason, built in cpu_cases.items():
        assert not built.cuda and built.arch_list is None and built.reason.startswith(reason)
        assert built.env() == {"MMCV_WITH_OPS": "1", "FORCE_CUDA": "0"}
    assert plan("13.0", None, None, [], override="1").cuda
    assert not plan("13.0", "/x/nvcc", "13.0", ["9.0"], override="0").cuda


def test_tools_are_read_like_the_real_ones(tmp_path) -> None:
    tools = fake_tools(tmp_path / "toolkit", "12.8", SMI_ROWS)
    env = {"PATH": str(tools)}
    assert cuda_home(env) == tmp_path / "toolkit" and find_nvcc(env) == str(tools / "nvcc")
    assert nvcc_version(str(tools / "nvcc")) == "12.8"
    assert visible_capabilities(env) == ["8.0", "9.0"]
    assert visible_capabilities({**env, "CUDA_VISIBLE_DEVICES": "2"}) == ["9.0"]
    assert visible_capabilities({**env, "CUDA_VISIBLE_DEVICES": "GPU-2222bbbb"}) == ["8.0"]
    assert visible_capabilities({**env, "CUDA_VISIBLE_DEVICES": ""}) == []
    home = fake_tools(tmp_path / "cuda", "13.0")
    assert find_nvcc({"PATH": str(tools), "CUDA_HOME": str(home.parent)}) == str(home / "nvcc")
    launcher = tmp_path / "usr-local-bin"  # a bare `exec /usr/local/cuda-13.0/bin/nvcc "$@"` script: no toolkit beside it
    launcher.mkdir()
    (launcher / "nvcc").write_text(f"#!/bin/sh\nexec {home / 'nvcc'} \"$@\"\n")
    (launcher / "nvcc").chmod(0o755)
    assert cuda_home({"PATH": str(launcher)}) != tmp_path  # torch would take the launcher's parent; we do not


def test_headers_of_a_bare_toolkit_come_from_the_nvidia_wheels(tmp_path) -> None:
    site = tmp_path / "site"
    for lib in ("cu13", "cudnn"):
        (site / "nvidia" / lib / "include").mkdir(parents=True)
    bare = tmp_path / "bare"
    (bare / "include").mkdir(parents=True)
    wanted = (str(site / "nvidia" / "cu13" / "include"), str(site / "nvidia" / "cudnn" / "include"))
    assert wheel_cuda_includes(bare, [str(site), str(tmp_path / "nothing")]) == wanted
    (bare / "include" / "cusparse.h").write_text("")  # a full toolkit brings its own
    assert wheel_cuda_includes(bare, [str(site)]) == ()
    built = plan("13.0", str(bare / "bin" / "nvcc"), "13.0", ["9.0"], include_dirs=wanted)
    assert built.env() == {"MMCV_WITH_OPS": "1", "FORCE_CUDA": "1", "TORCH_CUDA_ARCH_LIST": "9.0", "CUDA_HOME": str(bare),
                           "CPATH": os.pathsep.join(wanted)}


def test_constraints_keep_everything_but_the_installed_torch_stack() -> None:
    lines = ["# comment", "numpy==2.2.6", "nvidia-nccl-cu13==2.30.7", "torch==2.14.1", "torchvision==0.29.1",
             "triton==3.8.0", "sympy==1.14.0", "typer==0.20.0", "Jinja2==3.1.6"]
    kept = constraints_without_torch(lines, {"nvidia_nccl_cu13", "sympy", "jinja2"})
    assert kept == ["# comment", "numpy==2.2.6", "typer==0.20.0"]
    closure = installed_closure(("torch", "torchvision"))
    direct = {normalise(r.split(";")[0].split("[")[0].split("=")[0].split(">")[0].split("<")[0].split("~")[0].strip())
              for r in importlib.metadata.requires("torch") if "extra ==" not in r}
    assert direct <= closure and "typer" not in closure
    assert "pyyaml" not in closure  # only an extra of torch's, not installed with it
    if "cuda-toolkit" in closure:  # torch's CUDA libraries come through cuda-toolkit[cublas, ...]
        assert "nvidia-cublas" in closure
    assert torchvision_for("2.11.0+cu130") == "0.26.*" and torchvision_for("2.14.1") == "0.29.*"
    assert torchvision_for(torch.__version__) == "0.{}.*".format(int(torch.__version__.split(".")[1]) + 15)


def _bootstrap_plan(tmp_path: Path, tools: Path, **env: str) -> str:
    done = subprocess.run(["bash", str(REPO / "scripts" / "bootstrap.sh"), "--plan"], capture_output=True, text=True,
                          timeout=300, env={**os.environ, "PATH": f"{tools}:{os.environ['PATH']}", "PYTHON": sys.executable,
                                            "VENV": str(tmp_path / "venv"), "TMPDIR": str(tmp_path), **env})
    assert done.returncode == 0, done.stderr
    assert not (tmp_path / "venv").exists()  # --plan creates and installs nothing
    return done.stdout


@pytest.mark.slow
def test_bootstrap_plan_picks_cuda_kernels_for_the_visible_gpus(tmp_path) -> None:
    if torch.version.cuda is None:
        pytest.skip("this torch is a CPU build: bootstrap plans CPU kernels whatever the GPUs")
    release = torch.version.cuda
    toolkit = tmp_path / "toolkit"
    out = _bootstrap_plan(tmp_path, fake_tools(toolkit, release, SMI_ROWS), CUDA_VISIBLE_DEVICES="1,2")
    lines = out.splitlines()
    assert lines[0] == f"[plan] create {tmp_path / 'venv'} from {sys.executable} --system-site-packages"
    assert lines[1].startswith(f"[bootstrap] keeping the installed torch {torch.__version__} CUDA {release}")
    assert lines[2:7] == [f"[plan] mmcv ops with CUDA kernels for compute capability 8.0;9.0 "
                          f"(nvcc {release}, torch CUDA {release}, GPU compute capability 8.0;9.0)",
                          "[plan]   MMCV_WITH_OPS=1", "[plan]   FORCE_CUDA=1", "[plan]   TORCH_CUDA_ARCH_LIST=8.0;9.0",
                          f"[plan]   CUDA_HOME={toolkit}"]
    assert lines[7].startswith("[plan]   CPATH=") and lines[8:] == []  # the nvidia wheels' headers (the fake toolkit has none)
    kept = next(tmp_path.glob("gcpbench-constraints.*")).read_text().splitlines()
    assert not any(line.startswith(("torch==", "torchvision==", "nvidia-")) for line in kept)
    assert "typer==0.20.0" in kept and "mmcv==2.1.0" in kept


CXX20_KERNEL = """#include <concepts>
template <typename T> requires std::integral<T> __global__ void add_one(T* x) { x[threadIdx.x] += 1; }
template __global__ void add_one<int>(int*);
"""


@pytest.mark.skipif(find_nvcc(os.environ) is None, reason="no nvcc on this machine")
def test_the_nvcc_wrapper_compiles_cxx20_where_mmcv_asks_for_cxx17(tmp_path) -> None:
    nvcc = find_nvcc(os.environ)
    host = str(REPO / "scripts" / "cxx20")  # as in bootstrap: torch passes CC to nvcc as -ccbin
    source = tmp_path / "kernel.cu"
    source.write_text(CXX20_KERNEL)
    plain = subprocess.run([nvcc, "-std=c++17", "-c", str(source), "-o", str(tmp_path / "a.o")], capture_output=True, text=True)
    assert plain.returncode != 0  # a C++20 kernel (concepts), as torch 2.14's headers are
    wrapped = subprocess.run([str(REPO / "scripts" / "nvcc20"), "-ccbin", host, "-std=c++17", "-c", str(source), "-o", str(tmp_path / "b.o")],
                             capture_output=True, text=True, env={**os.environ, "GCPBENCH_REAL_NVCC": nvcc})
    assert wrapped.returncode == 0, wrapped.stderr
    assert (tmp_path / "b.o").stat().st_size > 0


def test_bootstrap_says_whether_mmcv_compiles_and_why_setuptools_is_pinned() -> None:
    from gcpbench.buildplan import mmcv_install_note, setuptools_note

    cached = "Cache contents:\n\n - mmcv-2.1.0-cp311-cp311-linux_x86_64.whl (32.1 MB)\n"
    assert "in pip's cache: installing the cached wheel" in mmcv_install_note(cached, cuda=False, cores=2)
    compiling = mmcv_install_note("", cuda=False, cores=2)
    assert compiling.startswith("compiling mmcv 2.1.0's ops") and "about 8-15 minutes on 2 cores" in compiling
    # a CUDA build never comes from the cache (pip keys wheels by source, not kernels); another version neither
    assert mmcv_install_note(cached, cuda=True, cores=16).startswith("compiling") and "CUDA" in mmcv_install_note(cached, True, 16)
    assert mmcv_install_note(cached.replace("2.1.0", "2.2.0"), cuda=False, cores=2).startswith("compiling")
    assert "setuptools 80.9.0 is put back right after" in setuptools_note("80.9.0")


def test_bootstrap_switches_off_pips_conflict_error_only_around_the_setuptools_pin() -> None:
    from pathlib import Path

    script = (Path(__file__).resolve().parents[1] / "scripts" / "bootstrap.sh").read_text()
    pin_steps = [line for line in script.splitlines() if "setuptools==" in line or "--force-reinstall --no-deps mmcv" in line
                 or 'setuptools${ST:+==$ST}' in line]
    assert len(pin_steps) == 3 and all("--no-warn-conflicts" in line for line in pin_steps)
    assert script.count("--no-warn-conflicts") == 3  # nowhere else: real conflicts still show
    assert "plan mmcv-note" in script and "plan setuptools-note" in script
