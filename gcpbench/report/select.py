"""``gcpbench report --ckpt C`` / ``--model NAME --weights FILE``: the runs that hold one model's results."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

from gcpbench.errors import GcpbenchError
from gcpbench.records import EvalConfig
from gcpbench.runs import find_run_dirs


def _canonical(name: str) -> str:
    from gcpbench.models.registry import model_identity

    return model_identity(name).name


def runs_for_weights(weights: str | os.PathLike, model: str | None, roots: Iterable[str | os.PathLike]) -> list[Path]:
    """The training run that holds ``weights`` (``RUN/checkpoints/x.pt``) and every run under
    ``roots`` whose config names that file as its checkpoint (evaluations, landscape probes),
    limited to ``model`` when given."""
    target = Path(weights).resolve()
    if not target.is_file():
        raise GcpbenchError(f"'{weights}' does not exist")
    wanted = _canonical(model) if model else None
    found: list[Path] = []
    if target.parent.name == "checkpoints" and (target.parent.parent / "config.json").is_file():
        found.append(target.parent.parent)
    roots = [Path(r) for r in roots]
    for run in find_run_dirs(*[r for r in roots if r.exists()]):
        config = run.run_config()
        stored = config.checkpoint if isinstance(config, EvalConfig) else None
        if not stored or Path(stored).resolve() != target or run.path.resolve() in {p.resolve() for p in found}:
            continue
        if wanted is None or config.model == wanted:
            found.append(run.path)
    if not found:
        what = f"--model {model} --weights {weights}" if model else f"--ckpt {weights}"
        raise GcpbenchError(f"no run under {', '.join(map(str, roots))} holds results of {what}; evaluate it first "
                            f"(gcpbench eval-imagenet / eval-c / eval-p / landscape {what})")
    return found
