"""Reading a checkpoint file safely: ``torch.load(weights_only=True)`` and, when it fails, one
line in gcpbench's terms (empty, damaged, pickled objects, not a checkpoint at all).

Its own module so that both :mod:`gcpbench.models.weights` (zoo checkpoints) and
:mod:`gcpbench.models.external_weights` (timm / torchvision weight files) read files the same
way without importing each other.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

import torch

from gcpbench.errors import GcpbenchError

ZIP_MAGIC = b"PK\x03\x04"  # torch.save's default (zip) format
PICKLE_PROTOCOL = b"\x80"  # torch.save's legacy format and plain pickles start with PROTO
ACCEPTED = "a .pt / .pth / .pth.tar file saved by gcpbench (train, convert), torchvision or the iSQRT-COV release"
# what a stand-in of gcpbench.detection.checkpoints says when it refuses a use of its global
REFUSED = "gcpbench refuses this pickled object"
# how torch's weights_only unpickler (and the stand-ins) say that a pickle names something it will not build
_REFUSALS = ("Unsupported global", "Trying to call reduce for unrecognized function", "Can only build",
             "Can only create new object", "is blocked", "Unsupported class", REFUSED)
PYTHON_OBJECTS = ("it holds Python objects that gcpbench will not execute (a whole model, or code): gcpbench reads "
                  "tensors and plain data only; save model.state_dict() instead")


def python_objects_error(path: str | os.PathLike) -> GcpbenchError:
    """The one line for a file whose pickle names objects beyond tensors and plain data."""
    return GcpbenchError(f"cannot read checkpoint '{path}': {PYTHON_OBJECTS}")


def _not_a_checkpoint(path: Path, exc: BaseException) -> GcpbenchError:
    """Why ``torch.load`` could not read ``path``, in one line and in gcpbench's terms.

    torch's own message is not repeated: it suggests ``weights_only=False``, which would run
    arbitrary code from the file.
    """
    with open(path, "rb") as handle:
        head = handle.read(4)
    if not head:
        why = "the file is empty"
    elif head.startswith((ZIP_MAGIC, PICKLE_PROTOCOL)) and any(text in str(exc) for text in _REFUSALS):
        return python_objects_error(path)
    elif head.startswith(ZIP_MAGIC):
        why = "it is a damaged or truncated PyTorch checkpoint (copy it again)"
    elif head.startswith(PICKLE_PROTOCOL):
        why = "it is a damaged or truncated pickle"
    else:
        why = "it is not a PyTorch checkpoint" + (" (it holds text)" if _is_text(head) else "")
    return GcpbenchError(f"cannot read checkpoint '{path}': {why}; pass {ACCEPTED}")


def _is_text(head: bytes) -> bool:
    return all(32 <= b < 127 or b in (9, 10, 13) for b in head)


def read_checkpoint(path: str | os.PathLike, map_location: Any = "cpu") -> dict[str, Any]:
    """Load a checkpoint file safely (``weights_only``: tensors and plain data, nothing that runs
    code; see docs/faults.md); one-line errors for unreadable files."""
    path = Path(path)
    if path.is_dir():
        raise GcpbenchError(f"checkpoint '{path}' is a folder; pass {ACCEPTED}")
    if not path.is_file():
        raise GcpbenchError(f"checkpoint '{path}' does not exist")
    try:
        obj = torch.load(path, map_location=map_location, weights_only=True)
    except OSError as exc:
        raise GcpbenchError(f"cannot read checkpoint '{path}': {exc.strerror or exc}") from None
    except Exception as exc:  # torch.load of arbitrary bytes raises anything (IndexError, KeyError, ...)
        raise _not_a_checkpoint(path, exc) from None
    if not isinstance(obj, Mapping):
        raise GcpbenchError(f"checkpoint '{path}' holds a {type(obj).__name__}, not a dict of weights; pass {ACCEPTED}")
    return dict(obj)
