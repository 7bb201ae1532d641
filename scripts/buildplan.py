"""Command line of ``gcpbench/buildplan.py`` for ``scripts/bootstrap.sh`` (runs before gcpbench is installed).

    python scripts/buildplan.py mmcv [--shell]        how mmcv's ops would be built here
    python scripts/buildplan.py constraints SRC DST   SRC without the installed torch stack's pins
    python scripts/buildplan.py torchvision           the torchvision series matching the installed torch
    pip cache list mmcv | python scripts/buildplan.py mmcv-note --cuda 0 --cores 2
                                                      what installing mmcv will take (cached wheel or compiling)
    python scripts/buildplan.py setuptools-note [VERSION]   why setuptools is pinned for mmcv's build

Run with the repository on ``PYTHONPATH``.
"""
from __future__ import annotations

import argparse
import importlib.metadata
import os
import shlex
import sys
from pathlib import Path
from typing import Sequence

from gcpbench.buildplan import (constraints_without_torch, current_plan, installed_closure, mmcv_install_note,
                                setuptools_note, torchvision_for)


def print_mmcv_plan(shell: bool) -> None:
    """The plan in words, or as ``export`` lines (``MMCV_PLAN`` holds the words)."""
    build = current_plan()
    if not shell:
        print(build.describe())
        for key, value in build.env().items():
            print(f"  {key}={value}")
        return
    env = build.env()
    if "CPATH" in env and os.environ.get("CPATH"):
        env["CPATH"] += os.pathsep + os.environ["CPATH"]  # keep the user's
    for key, value in {**env, "MMCV_PLAN": build.describe()}.items():
        print(f"export {key}={shlex.quote(value)}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/buildplan.py", description="What scripts/bootstrap.sh builds.")
    sub = parser.add_subparsers(dest="command", required=True)
    mmcv = sub.add_parser("mmcv", help="print how mmcv's ops would be built here")
    mmcv.add_argument("--shell", action="store_true", help="export lines for bootstrap.sh (MMCV_PLAN holds the description)")
    cons = sub.add_parser("constraints", help="write constraints without the installed torch stack's pins")
    cons.add_argument("src")
    cons.add_argument("dst")
    sub.add_parser("torchvision", help="the torchvision series matching the installed torch")
    note = sub.add_parser("mmcv-note", help="what installing mmcv will take; reads `pip cache list mmcv` on stdin")
    note.add_argument("--cuda", type=int, default=0)
    note.add_argument("--cores", type=int, default=os.cpu_count() or 1)
    st = sub.add_parser("setuptools-note", help="why setuptools is pinned for mmcv's build")
    st.add_argument("current", nargs="?")
    args = parser.parse_args(argv)
    if args.command == "mmcv":
        print_mmcv_plan(args.shell)
    elif args.command == "constraints":
        lines = Path(args.src).read_text().splitlines()
        kept = constraints_without_torch(lines, installed_closure(("torch", "torchvision")))
        Path(args.dst).write_text("\n".join(kept) + "\n")
    elif args.command == "mmcv-note":
        print(mmcv_install_note(sys.stdin.read(), bool(args.cuda), args.cores))
    elif args.command == "setuptools-note":
        print(setuptools_note(args.current))
    else:
        print(torchvision_for(importlib.metadata.version("torch")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
