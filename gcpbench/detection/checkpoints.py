"""mmengine checkpoints read without running anything from the file.

Beside the weights, mmengine saves its message hub: ``HistoryBuffer`` objects holding numpy
arrays, whose statistics methods pickle as ``getattr(HistoryBuffer, 'min')``, and numpy
scalars (``eta``). torch's ``weights_only`` unpickler refuses these globals. Allow-listing the
real ones is not safe: torch's default list holds ``torch._tensor._rebuild_from_type_v2``, which
calls whatever it is handed, so an allow-listed ``getattr`` reaches ``builtins.eval``, and
numpy's ``dtype`` looks attributes up on its argument.

So for the duration of one load each name mmengine pickles is mapped to an inert stand-in
defined here (``torch.serialization.safe_globals`` with ``(stand-in, name)`` pairs): the
stand-ins only check and store plain data (strings, numbers, bytes, tuples); nothing in them
looks up an attribute or calls anything named by the file. After the load,
:func:`restore` turns them into numpy arrays / scalars and mmengine ``HistoryBuffer`` objects
built through their constructors. Any other use of these names is refused like every other
unknown global (:data:`gcpbench.models.weights.REFUSED`).
"""
from __future__ import annotations

import contextlib
import functools
import os
import pickle
import re
from typing import Any, Iterator

import numpy as np
import torch

from gcpbench.errors import GcpbenchError
from gcpbench.models.checkpoint_file import REFUSED, python_objects_error, read_checkpoint

# plain numeric dtypes by their pickled code (numpy's dtype(str) of these makes no look-up)
_DTYPE_CODE = re.compile(r"(b1|[iu][1248]|f[248]|c(8|16))")
_STATISTICS = ("min", "max", "current", "mean")  # HistoryBuffer's default statistics methods
_HISTORY_KEYS = {"max_length", "_log_history", "_count_history", "statistics_methods"}


def _refuse(what: str) -> pickle.UnpicklingError:
    return pickle.UnpicklingError(f"{REFUSED}: {what}")


class NumpyDtype:
    """Stands in for ``numpy.dtype(code, align, copy)`` plus its pickled state (byte order)."""

    def __init__(self, code: Any, align: Any = False, copy: Any = True) -> None:
        if not isinstance(code, str) or not _DTYPE_CODE.fullmatch(code) or align is not False:
            raise _refuse(f"numpy dtype {code!r} (only plain numeric dtypes are read)")
        self.code, self.order = code, "="

    def __setstate__(self, state: Any) -> None:
        if not (isinstance(state, tuple) and len(state) == 8 and state[0] == 3 and state[1] in ("<", ">", "|", "=")
                and state[2:5] == (None, None, None)):
            raise _refuse("a numpy dtype with fields or metadata")
        self.order = state[1]

    def real(self) -> np.dtype:
        dtype = np.dtype(self.code)
        return dtype.newbyteorder(self.order) if self.order in ("<", ">") else dtype


class NumpyArray:
    """Stands in for ``numpy.ndarray`` (``_reconstruct(ndarray, (0,), b'b')`` then its state)."""

    shape: tuple[int, ...] = ()
    dtype: NumpyDtype | None = None
    fortran: bool = False
    data: bytes = b""

    def __setstate__(self, state: Any) -> None:
        if not (isinstance(state, tuple) and len(state) == 5):
            raise _refuse("a numpy array of an unknown form")
        _, shape, dtype, fortran, data = state
        if not (isinstance(shape, tuple) and all(type(n) is int and n >= 0 for n in shape)
                and isinstance(dtype, NumpyDtype) and type(fortran) is bool and isinstance(data, bytes)):
            raise _refuse("a numpy array of objects or of an unknown form")
        if len(data) != int(np.prod(shape, dtype=np.int64)) * dtype.real().itemsize:
            raise _refuse("a numpy array whose data does not fit its shape")
        self.shape, self.dtype, self.fortran, self.data = shape, dtype, fortran, data

    def real(self) -> np.ndarray:
        if self.dtype is None:
            raise _refuse("a numpy array without data")
        flat = np.frombuffer(self.data, dtype=self.dtype.real())
        array = flat.reshape(self.shape, order="F" if self.fortran else "C")
        return array.astype(array.dtype.newbyteorder("="), order="K")  # a copy in native order, as numpy unpickles


def _reconstruct(cls: Any, shape: Any, typecode: Any) -> NumpyArray:
    """Stands in for ``numpy.core.multiarray._reconstruct``: an empty array filled by its state."""
    if cls is not NumpyArray or shape != (0,) or typecode != b"b":
        raise _refuse("numpy's _reconstruct of something other than a plain array")
    return NumpyArray()


class NumpyScalar:
    """A numpy scalar: ``numpy.core.multiarray.scalar(dtype, bytes)``."""

    def __init__(self, dtype: Any, data: Any) -> None:
        if not isinstance(dtype, NumpyDtype) or not isinstance(data, bytes) or len(data) != dtype.real().itemsize:
            raise _refuse("a numpy scalar that is not a plain number")
        self.dtype, self.data = dtype, data

    def __setstate__(self, state: Any) -> None:
        raise _refuse("a numpy scalar with state")

    def real(self) -> np.generic:
        return np.frombuffer(self.data, dtype=self.dtype.real())[0]


class HistoryBufferData:
    """Stands in for ``mmengine.logging.history_buffer.HistoryBuffer`` (its ``__dict__``)."""

    state: dict[str, Any] | None = None

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, dict) or not set(state) <= _HISTORY_KEYS:
            raise _refuse("a HistoryBuffer with unknown fields")
        if not all(isinstance(state.get(k), NumpyArray) for k in ("_log_history", "_count_history")) \
                or type(state.get("max_length", 1)) is not int \
                or not all(name in _STATISTICS for name in dict(state.get("statistics_methods") or {}).values()):
            raise _refuse("a HistoryBuffer whose history is not two numeric arrays")
        self.state = state

    def real(self) -> Any:
        from mmengine.logging import HistoryBuffer

        if self.state is None:
            raise _refuse("a HistoryBuffer without state")
        return HistoryBuffer(self.state["_log_history"].real(), self.state["_count_history"].real(),
                             self.state.get("max_length", 1000000))


def _statistic(owner: Any, name: Any) -> str:
    """Stands in for the ``getattr(HistoryBuffer, 'min')`` of a pickled statistics method: it
    looks nothing up and only accepts these four names (HistoryBuffer sets them itself)."""
    if owner is not HistoryBufferData or name not in _STATISTICS:
        raise _refuse("getattr (a pickle that looks up attributes)")
    return name


def _empty_bytes(*args: Any) -> bytes:
    """Stands in for ``bytes()``: how protocol 2 pickles empty bytes (an empty array's data)."""
    if args:
        raise _refuse("bytes() with arguments")
    return b""


def _stand_ins() -> list[tuple[Any, str]]:
    """(stand-in, pickled global name) pairs for one mmengine checkpoint load."""
    pairs: list[tuple[Any, str]] = [(NumpyDtype, "numpy.dtype"), (NumpyArray, "numpy.ndarray"),
                                    (HistoryBufferData, "mmengine.logging.history_buffer.HistoryBuffer"),
                                    (_statistic, "builtins.getattr"), (_empty_bytes, "builtins.bytes")]
    for module in ("numpy.core.multiarray", "numpy._core.multiarray"):  # numpy 1.x / 2.x files
        pairs += [(_reconstruct, f"{module}._reconstruct"), (NumpyScalar, f"{module}.scalar")]
    return pairs


@contextlib.contextmanager
def mmengine_stand_ins() -> Iterator[None]:
    """Inside the block, ``torch.load(weights_only=True)`` maps mmengine's globals to the stand-ins."""
    with torch.serialization.safe_globals(_stand_ins()):
        yield


def restore(obj: Any) -> Any:
    """``obj`` with every stand-in replaced by the numpy / mmengine object it stands for (dicts
    and lists are changed in place: a state dict keeps its ``_metadata``)."""
    if isinstance(obj, (NumpyDtype, NumpyArray, NumpyScalar, HistoryBufferData)):
        return obj.real()
    if isinstance(obj, dict):
        for key, value in obj.items():
            new = restore(value)
            if new is not value:
                obj[key] = new
    elif isinstance(obj, list):
        obj[:] = [restore(v) for v in obj]
    elif isinstance(obj, tuple):
        items = tuple(restore(v) for v in obj)
        if any(a is not b for a, b in zip(items, obj)):
            return type(obj)(items) if type(obj) is tuple else type(obj)(*items)
    return obj


def read_mmengine_checkpoint(path: str | os.PathLike, map_location: Any = "cpu") -> dict[str, Any]:
    """An mmengine (or any accepted) checkpoint file; one-line errors as :func:`read_checkpoint`."""
    with mmengine_stand_ins():
        checkpoint = read_checkpoint(path, map_location=map_location)
    try:
        return restore(checkpoint)
    except pickle.UnpicklingError:  # a stand-in left incomplete (e.g. an array never given its data)
        raise python_objects_error(path) from None


def load_from_local(filename: str, map_location: Any = None) -> Any:
    """mmengine's loader for local files (``load_from``, ``resume``, ``init_cfg`` Pretrained)."""
    filename = os.path.expanduser(filename)
    if not os.path.isfile(filename):
        raise GcpbenchError(f"checkpoint '{filename}' does not exist")
    return read_mmengine_checkpoint(filename, map_location)


@functools.lru_cache(maxsize=1)
def allow_mmengine_checkpoints() -> None:
    """Make mmengine load local checkpoints through :func:`load_from_local` (once)."""
    from mmengine.runner.checkpoint import CheckpointLoader

    CheckpointLoader.register_scheme(prefixes="", loader=load_from_local, force=True)


def require_weights_only_default() -> None:
    """mmengine's loaders for URLs (``torchvision://``, ``http://``) call ``torch.load`` without
    ``weights_only``: torch's default, which ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD`` turns off."""
    if os.environ.get("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "0").lower() in ("1", "y", "yes", "true"):
        raise GcpbenchError("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD is set: downloaded detection weights could then run "
                            "code; unset it")
