"""Where robustness evaluations write: the checkpoint's run directory, or a stable default."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from gcpbench.runs import DEFAULT_ROOT, RunDir, new_run_dir, run_slug


def eval_run_dir(checkpoint: Path, out: Path | None, model_name: str) -> RunDir:
    """``out``; else the run that holds ``checkpoint`` (``RUN/checkpoints/x.pt``); else a stable
    ``runs/eval_<model>_<checkpoint stem>`` so that rerunning the same command resumes."""
    if out is not None:
        return new_run_dir(out, "eval")
    checkpoint = Path(checkpoint)
    if checkpoint.parent.name == "checkpoints" and (checkpoint.parent.parent / "config.json").is_file():
        return RunDir(checkpoint.parent.parent)
    return new_run_dir(DEFAULT_ROOT / f"eval_{run_slug(model_name)}_{checkpoint.stem}", "eval")


def checkpoint_identity(checkpoint: Path) -> dict[str, Any]:
    """What identifies a checkpoint file for resuming (path, size, modification time)."""
    stat = os.stat(checkpoint)
    return {"checkpoint": str(Path(checkpoint).resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
