"""Training state in checkpoints: RNG states, optimizer, epoch, history; resume.

``checkpoints/last.pt`` (every epoch) and ``best.pt`` (best val top-1) are gcpbench checkpoints
(:func:`gcpbench.models.save_checkpoint`) with these extras, all loadable with
``torch.load(weights_only=True)``::

    epoch       finished epochs (the next epoch to run, 0-based)
    optimizer   optimizer.state_dict()
    rng         one dict per rank: torch CPU state (uint8 tensor), CUDA states (tensors),
                Python ``random`` state and NumPy's legacy state as plain lists
    config      the run's resolved configuration
    best_top1   best validation top-1 so far (percent)
    metrics     every epoch record so far (metrics.jsonl is rewritten from it on resume)
    classes     the class folder names, in label order
"""
from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from gcpbench.models import save_checkpoint
from gcpbench.models.weights import read_checkpoint


def seed_everything(seed: int) -> None:
    """Seed torch (CPU and CUDA), Python's ``random`` and NumPy's global RNG."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state() -> dict[str, Any]:
    """This process's RNG states as tensors and plain lists."""
    version, internal, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": list(torch.cuda.get_rng_state_all()) if torch.cuda.is_available() else [],
        "python": [version, list(internal), gauss],
        "numpy": [str(kind), [int(k) for k in keys], int(pos), int(has_gauss), float(cached)],
    }


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` returned (CUDA states only when the device count matches)."""
    torch.set_rng_state(state["torch"])
    cuda = state.get("cuda") or []
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))


def save_training_checkpoint(path: str | os.PathLike, model: nn.Module, name: str, *, epoch: int,
                             optimizer: torch.optim.Optimizer, rng: list[dict[str, Any]], config: dict[str, Any],
                             best_top1: float, metrics: list[dict[str, Any]], classes: list[str]) -> Path:
    """Write a resumable checkpoint atomically."""
    return save_checkpoint(path, model, name, epoch=epoch, optimizer=optimizer.state_dict(), rng=rng,
                           config=config, best_top1=best_top1, metrics=metrics, classes=classes)


def read_training_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """A checkpoint written by :func:`save_training_checkpoint` (one-line errors otherwise)."""
    from gcpbench.errors import GcpbenchError

    checkpoint = read_checkpoint(path)
    missing = [key for key in ("epoch", "optimizer", "rng", "metrics") if key not in checkpoint]
    if missing:
        raise GcpbenchError(f"'{path}' is not a resumable training checkpoint (no {', '.join(missing)})")
    return checkpoint
