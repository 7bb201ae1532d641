"""The evaluations that follow a training, as `gcpbench` command lines run in a child process.

Each evaluation is the command a user would type, on the run's ``checkpoints/best.pt``, writing
into the run directory (detection into ``RUN/detect/<framework>_<method>/``), so ``report``
finds every result beside its training. Options from the spec's ``[options.<command>]``
become flags (``subset = 10`` -> ``--subset 10``, ``extra = true`` -> ``--extra``, a list ->
comma-separated). A child process keeps mmdetection's registries and the evaluation's memory
out of the job and ends with the command's own one-line error when it fails.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from gcpbench.models.registry import model_info
from gcpbench.runs import RunDir
from gcpbench.sweep.spec import Evaluation, RunSpec


def flags(options: dict[str, Any]) -> list[str]:
    """``{"clean_data": "/x", "extra": True, "corruptions": ["fog", "snow"]}`` -> command-line flags."""
    args: list[str] = []
    for key, value in options.items():
        flag = "--" + key.replace("_", "-")
        if value is True:
            args.append(flag)
        elif value is False or value is None:
            continue
        elif isinstance(value, (list, tuple)):
            args += [flag, ",".join(str(v) for v in value)]
        else:
            args += [flag, str(value)]
    return args


def detection_dir(run: RunDir, evaluation: Evaluation) -> Path:
    return run.path / "detect" / f"{evaluation.framework}_{evaluation.method}"


def command(run: RunDir, spec: RunSpec, evaluation: Evaluation, options: dict[str, Any]) -> list[str]:
    """The `gcpbench ...` arguments of ``evaluation`` of run ``spec`` in ``run``."""
    ckpt = str(run.best_checkpoint)
    data = spec.train.get("data")
    if evaluation.command == "eval-imagenet":
        defaults: dict[str, Any] = {"data": data, "image_size": spec.train.get("image_size")}
        return ["eval-imagenet", "--ckpt", ckpt, "--out", str(run.path), "--quiet", *flags({**defaults, **options})]
    if evaluation.command == "eval-c":
        defaults = {}
        if data is not None and "clean_error" not in options:
            defaults["clean_data"] = str(Path(data) / "val")
        return ["eval-c", "--ckpt", ckpt, "--out", str(run.path), "--quiet", *flags({**defaults, **options})]
    if evaluation.command == "eval-p":
        return ["eval-p", "--ckpt", ckpt, "--out", str(run.path), "--quiet", *flags(options)]
    if evaluation.command == "finetune":
        return finetune_command(run, evaluation, ckpt, options)
    work_dir = detection_dir(run, evaluation)
    resume = (work_dir / "last_checkpoint").is_file()  # mmengine's pointer to its latest checkpoint
    backbone = f"{model_info(spec.model).arch}_{evaluation.method}"
    return ["detect", "--framework", str(evaluation.framework), "--backbone", backbone, "--ckpt", ckpt,
            "--work-dir", str(work_dir), "--quiet", *(["--resume"] if resume else []), *flags(options)]


def finetune_dir(run: RunDir, evaluation: Evaluation) -> Path:
    return run.path / "finetune" / str(evaluation.dataset)


def finetune_command(run: RunDir, evaluation: Evaluation, ckpt: str, options: dict[str, Any]) -> list[str]:
    """``gcpbench finetune`` of the run's best checkpoint into ``RUN/finetune/<dataset>/`` (continued
    when a job was cut short); the dataset roots are ``options`` keys (``cub = ROOT``), the other
    keys finetune options."""
    from gcpbench.errors import GcpbenchError
    from gcpbench.sweep.spec import FINETUNE_DATASETS

    dataset = str(evaluation.dataset)
    root = options.get(dataset)
    if root is None:
        raise GcpbenchError(f"{evaluation.name} needs the dataset's root: `gcpbench sweep --{dataset} ROOT`, or "
                            f"{dataset} = ROOT in the spec's options.finetune table")
    rest = {k: v for k, v in options.items() if k not in FINETUNE_DATASETS}
    return ["finetune", "--dataset", dataset, "--data", str(root), "--ckpt", ckpt, "--out",
            str(finetune_dir(run, evaluation)), "--resume", "auto", "--quiet", *flags(rest)]


def run_evaluation(args: list[str], log: Path | None = None) -> str | None:
    """Run ``gcpbench ARGS`` in a child process; None on success, else its last error line."""
    from gcpbench.children import run_child
    from gcpbench.sweep.state import last_line

    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)  # the evaluation is one process, not a member of the training's group
    result = run_child([sys.executable, "-m", "gcpbench", *args], env=env, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True)
    if log is not None:
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "a") as handle:
            handle.write(f"$ gcpbench {' '.join(args)}\n{result.stdout}")
    if result.returncode == 0:
        return None
    return last_line(result.stdout) or f"gcpbench {args[0]} exited with code {result.returncode}"
