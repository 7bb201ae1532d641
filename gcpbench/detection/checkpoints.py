"""mmengine checkpoints under torch >= 2.6 (``torch.load`` defaults to ``weights_only=True``).

mmengine saves its message hub beside the weights: ``HistoryBuffer`` objects holding numpy
arrays, whose statistics methods pickle as ``getattr(HistoryBuffer, 'min')``. ``load_from``
and ``resume`` therefore fail with "Unsupported global". Instead of turning ``weights_only``
off, mmengine's loader for local files is replaced by one that allow-lists exactly these
globals for the duration of the load (``torch.serialization.safe_globals``); other
``torch.load`` calls in the process keep the default list. (The weights-only unpickler only
calls allow-listed functions, so ``getattr`` can fetch an attribute but nothing it returns
is ever called.)
"""
from __future__ import annotations

import contextlib
import functools
import os
from typing import Any, Iterator

import numpy as np
import torch


def _numpy_globals() -> list[Any]:
    """numpy's array / scalar reconstruction entry points and dtype classes."""
    multiarray = (getattr(np, "_core", None) or np.core).multiarray
    found: list[Any] = [np.ndarray, np.dtype, multiarray._reconstruct, multiarray.scalar]
    dtypes = getattr(np, "dtypes", None)
    if dtypes is not None:  # numpy >= 1.25 pickles dtypes through their own classes
        found += [getattr(dtypes, n) for n in dir(dtypes) if n.endswith("DType") and isinstance(getattr(dtypes, n), type)]
    return found


@functools.lru_cache(maxsize=1)
def mmengine_globals() -> tuple[Any, ...]:
    """Every global an mmengine checkpoint needs beyond torch's default allow-list."""
    from mmengine.logging import HistoryBuffer

    return (HistoryBuffer, getattr, *_numpy_globals())


@contextlib.contextmanager
def mmengine_checkpoint_globals() -> Iterator[None]:
    """Allow-list :func:`mmengine_globals` for ``torch.load(weights_only=True)`` inside the block."""
    with torch.serialization.safe_globals(list(mmengine_globals())):
        yield


def load_from_local(filename: str, map_location: Any = None) -> Any:
    """mmengine's local-file checkpoint loader, ``weights_only`` with the mmengine allow-list."""
    filename = os.path.expanduser(filename)
    if not os.path.isfile(filename):
        raise FileNotFoundError(f"{filename} can not be found.")
    with mmengine_checkpoint_globals():
        return torch.load(filename, map_location=map_location, weights_only=True)


@functools.lru_cache(maxsize=1)
def allow_mmengine_checkpoints() -> None:
    """Make mmengine load local checkpoints through :func:`load_from_local` (once)."""
    from mmengine.runner.checkpoint import CheckpointLoader

    CheckpointLoader.register_scheme(prefixes="", loader=load_from_local, force=True)
