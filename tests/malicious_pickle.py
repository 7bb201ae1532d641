"""Checkpoint files that run code when unpickled carelessly (for the security tests).

The payload is what a weights-only load must never run: with ``builtins.getattr`` on torch's
allow-list, ``getattr(getattr, '__self__')`` is the builtins module, ``getattr(builtins, 'eval')``
is ``eval``, and torch's own ``_rebuild_from_type_v2(eval, Tensor, (code,), {})`` calls it. The
code creates ``marker``: a file that exists afterwards means code from the checkpoint ran.
"""
from __future__ import annotations

import io
import struct
import zipfile
from pathlib import Path

import torch

MARK, TUPLE, TUPLE1, TUPLE2, REDUCE = b"(", b"t", b"\x85", b"\x86", b"R"
EMPTY_DICT, SETITEM, STOP = b"}", b"s", b"."


def global_op(module: str, name: str) -> bytes:
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def text_op(value: str) -> bytes:
    data = value.encode()
    return b"X" + struct.pack("<I", len(data)) + data


def payload(marker: Path) -> bytes:
    """A protocol-2 pickle of ``{"state_dict": {}, "meta": <eval of code creating marker>}``."""
    getattr_ = global_op("builtins", "getattr")
    builtins_module = getattr_ + getattr_ + text_op("__self__") + TUPLE2 + REDUCE
    eval_ = getattr_ + builtins_module + text_op("eval") + TUPLE2 + REDUCE
    code = f"open({str(marker)!r}, 'w').write('code from the checkpoint ran')"
    call = (global_op("torch._tensor", "_rebuild_from_type_v2") + MARK + eval_ + global_op("torch", "Tensor")
            + text_op(code) + TUPLE1 + EMPTY_DICT + TUPLE + REDUCE)
    return b"\x80\x02" + EMPTY_DICT + text_op("state_dict") + EMPTY_DICT + SETITEM + text_op("meta") + call + SETITEM + STOP


def write_zip(path: Path, marker: Path) -> Path:
    """``torch.save``'s zip format with the payload as its ``data.pkl``."""
    plain = io.BytesIO()
    torch.save({}, plain)
    with zipfile.ZipFile(io.BytesIO(plain.getvalue())) as source, zipfile.ZipFile(path, "w") as target:
        for info in source.infolist():
            data = payload(marker) if info.filename.endswith("/data.pkl") else source.read(info)
            target.writestr(info, data)
    return path


def write_raw(path: Path, marker: Path) -> Path:
    """The legacy (non-zip) format: torch reads a pickle first, so the payload comes first."""
    path.write_bytes(payload(marker))
    return path
