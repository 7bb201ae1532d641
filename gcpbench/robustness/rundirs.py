"""Where robustness evaluations write: the checkpoint's run directory, or a stable default."""
from __future__ import annotations

from pathlib import Path

from gcpbench.identity import Producer
from gcpbench.runs import DEFAULT_ROOT, RunDir, new_run_dir, run_slug


def eval_run_dir(producer: Producer, out: Path | None) -> RunDir:
    """``out``; else the run that holds the checkpoint (``RUN/checkpoints/x.pt``); else a stable
    ``runs/eval_<model>_<checkpoint stem>_<fingerprint>`` so that rerunning the same command
    resumes, and another checkpoint of the same name never lands there."""
    if out is not None:
        return new_run_dir(out, "eval")
    checkpoint = Path(producer.checkpoint)
    if checkpoint.parent.name == "checkpoints" and (checkpoint.parent.parent / "config.json").is_file():
        return RunDir(checkpoint.parent.parent)
    return new_run_dir(DEFAULT_ROOT / f"eval_{run_slug(producer.model)}_{checkpoint.stem}_{producer.sha256[:8]}", "eval")
