"""The optional ``detect`` extra: which of its modules are missing, and the command that fixes it.

Everything here looks modules up with ``importlib.util.find_spec`` on top-level names and reads
folders; nothing imports mmcv, mmdet or mmengine, so the core commands never load them.
"""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from gcpbench.errors import GcpbenchError

DETECT_MODULES: tuple[str, ...] = ("mmengine", "mmcv", "mmdet", "pycocotools")


def install_command(rebuild_mmcv: bool = False) -> str:
    """The command (run in a gcpbench checkout) that installs the detect extra into this Python's
    environment: mmcv 2.1 has no wheel for torch >= 2.6, so its ops are compiled (CUDA when it can)."""
    flag = " --rebuild-mmcv" if rebuild_mmcv else ""
    return f"VENV={sys.prefix} bash scripts/bootstrap.sh{flag}"


def missing_modules(modules: tuple[str, ...] = DETECT_MODULES) -> list[str]:
    """The top-level ``modules`` that cannot be found (not imported, only looked up)."""
    return [name for name in modules if importlib.util.find_spec(name) is None]


def mmcv_ops_files() -> list[Path]:
    """mmcv's compiled ops library (``mmcv/_ext*.so``), found without importing mmcv."""
    spec = importlib.util.find_spec("mmcv")
    folders = list(spec.submodule_search_locations or []) if spec is not None else []
    return sorted(p for folder in folders for p in Path(folder).glob("_ext*") if p.suffix in (".so", ".pyd"))


def require_modules(modules: tuple[str, ...], what: str) -> None:
    """Raise one line naming the missing ``modules`` that ``what`` needs, and how to install them."""
    absent = missing_modules(modules)
    if absent:
        raise GcpbenchError(f"{what} needs the detect extra, gcpbench[detect] (missing: {', '.join(absent)}): "
                            f"in a gcpbench checkout run `{install_command()}` (README: Install)")


def require_detect() -> None:
    """``gcpbench detect``'s check before anything of mmdetection is imported."""
    require_modules(DETECT_MODULES, "gcpbench detect")
    if not mmcv_ops_files():
        raise GcpbenchError("gcpbench detect needs mmcv's compiled ops, but the installed mmcv has none (no mmcv/_ext): "
                            f"in a gcpbench checkout run `{install_command(rebuild_mmcv=True)}` (README: Install)")
