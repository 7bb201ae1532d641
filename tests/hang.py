"""Hang tests: block a training child process at a chosen iteration (see ``hang_hook/sitecustomize.py``)."""
from __future__ import annotations

import os
from pathlib import Path

HANG_ENV = "GCPBENCH_TEST_HANG_AT"
HOOK_DIR = Path(__file__).parent / "hang_hook"


def hang_env(at: str) -> dict[str, str]:
    """Environment variables that make a child Python process block after iteration ``EPOCH:ITERATION``."""
    path = os.environ.get("PYTHONPATH", "")
    return {HANG_ENV: at, "PYTHONPATH": str(HOOK_DIR) + (os.pathsep + path if path else "")}
