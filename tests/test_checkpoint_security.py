"""No code from a checkpoint (issue 23.1): a pickle that runs code if its globals were allow-listed
carelessly is refused by every reader, and mmengine's checkpoints still load exactly through
inert stand-ins (gcpbench/detection/checkpoints.py). The commands: tests/test_faults.py, ckpt-code/*."""
from __future__ import annotations

import io
from collections import Counter, OrderedDict

import numpy as np
import pytest
import torch

from gcpbench.errors import GcpbenchError
from gcpbench.models.weights import read_checkpoint
from malicious_pickle import REDUCE, STOP, TUPLE2, global_op, text_op, write_raw, write_zip

MESSAGE = "holds Python objects that gcpbench will not execute"


@pytest.fixture()
def marker(tmp_path):
    return tmp_path / "CODE_RAN"


@pytest.mark.parametrize("write", [write_zip, write_raw], ids=["zip", "legacy"])
def test_the_payload_runs_code_once_getattr_is_allow_listed(tmp_path, marker, write):
    """The control: the old allow-list (getattr beside torch's defaults) runs the file's code."""
    path = write(tmp_path / "evil.pt", marker)
    with torch.serialization.safe_globals([getattr]), pytest.raises(AttributeError):
        torch.load(path, weights_only=True)  # eval ran, then torch failed on its return value
    assert marker.read_text() == "code from the checkpoint ran"


@pytest.mark.parametrize("write", [write_zip, write_raw], ids=["zip", "legacy"])
def test_every_reader_refuses_the_payload_in_one_line(tmp_path, marker, write):
    pytest.importorskip("mmengine")
    from gcpbench.detection.checkpoints import load_from_local, read_mmengine_checkpoint

    path = write(tmp_path / "evil.pt", marker)
    for reader in (read_checkpoint, read_mmengine_checkpoint, load_from_local):
        with pytest.raises(GcpbenchError) as caught:
            reader(str(path))
        text = str(caught.value)
        assert MESSAGE in text and f"'{path}'" in text and "\n" not in text and "weights_only" not in text, text
    assert not marker.exists()


def _pickle_file(tmp_path, body: bytes):
    path = tmp_path / "crafted.pt"
    path.write_bytes(b"\x80\x02" + body + STOP)
    return path


def test_stand_ins_refuse_every_use_but_mmengine_s_own(tmp_path):
    """getattr of another attribute, another owner, object arrays, structured dtypes: refused."""
    pytest.importorskip("mmengine")
    from gcpbench.detection.checkpoints import read_mmengine_checkpoint

    history = global_op("mmengine.logging.history_buffer", "HistoryBuffer")
    getattr_ = global_op("builtins", "getattr")
    crafted = {
        "other attribute": getattr_ + history + text_op("__init__") + TUPLE2 + REDUCE,
        "other owner": getattr_ + global_op("torch", "Tensor") + text_op("min") + TUPLE2 + REDUCE,
        "object dtype": global_op("numpy", "dtype") + text_op("O8") + b"\x89\x88\x87" + REDUCE,
    }
    for what, body in crafted.items():
        with pytest.raises(GcpbenchError, match=MESSAGE):
            read_mmengine_checkpoint(_pickle_file(tmp_path, body))
    buffer = io.BytesIO()
    torch.save({"objects": np.array(["a", 1], dtype=object)}, buffer)
    (tmp_path / "objects.pt").write_bytes(buffer.getvalue())
    with pytest.raises(GcpbenchError, match=MESSAGE):
        read_mmengine_checkpoint(tmp_path / "objects.pt")
    buffer = io.BytesIO()
    torch.save({"fields": np.zeros(2, dtype=[("a", "<f4"), ("b", "<i8")])}, buffer)
    (tmp_path / "fields.pt").write_bytes(buffer.getvalue())
    with pytest.raises(GcpbenchError, match=MESSAGE):
        read_mmengine_checkpoint(tmp_path / "fields.pt")


def same_values(a, b) -> bool:
    """Equal values of equal types, recursively (numpy arrays by dtype, shape, order and bytes)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, np.ndarray):
        return a.dtype == b.dtype and a.shape == b.shape and a.flags.f_contiguous == b.flags.f_contiguous \
            and a.tobytes() == b.tobytes()
    if isinstance(a, torch.Tensor):
        return a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, dict):
        return list(a) == list(b) and all(same_values(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same_values(x, y) for x, y in zip(a, b))
    if hasattr(a, "__dict__") and not isinstance(a, type):
        return same_values(vars(a), vars(b))
    return a == b or (a != a and b != b)


def test_an_mmengine_checkpoint_loads_exactly_as_the_unrestricted_unpickler_gives_it(tmp_path):
    """Message hub (HistoryBuffers, numpy scalars), optimizer state, Counter milestones, state-dict
    metadata: the stand-ins restore every value as pickle.load itself would (trusted file, made here)."""
    pytest.importorskip("mmengine")
    from mmengine.logging import HistoryBuffer, MessageHub

    from gcpbench.detection.checkpoints import read_mmengine_checkpoint

    hub = MessageHub("h1-test")
    for step, loss in enumerate((2.5, 1.25, 0.75)):
        hub.update_scalar("train/loss", loss)
        hub.update_scalar("train/lr", 0.02 * (step + 1), count=2)
    hub.update_info("eta", np.float64(12.5))
    hub.update_info("iter", 3)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(torch.randn(2, 3, 5, 5)).sum().backward()
    optimizer.step()
    checkpoint = {
        "meta": {"epoch": 1, "seed": np.int64(7), "ratio": np.float32(0.5), "flag": np.bool_(True),
                 "dataset_meta": {"classes": ("a", "b"), "palette": [(1, 2, 3)]}},
        "state_dict": model.state_dict(), "optimizer": optimizer.state_dict(), "message_hub": hub.state_dict(),
        "param_schedulers": [{"milestones": Counter({8: 1, 11: 1}), "gamma": 0.1}],
        "arrays": [np.arange(6, dtype=">i4").reshape(2, 3), np.asfortranarray(np.ones((2, 3), dtype=np.float16)),
                   np.zeros((0, 4), dtype=np.uint8), np.array(3.0 + 1j, dtype=np.complex64)],
    }
    path = tmp_path / "iter_3.pth"
    torch.save(checkpoint, path)
    unrestricted = torch.load(path, weights_only=False)  # the reference: this test wrote the file
    loaded = read_mmengine_checkpoint(path)
    assert same_values(loaded, unrestricted)
    assert isinstance(loaded["message_hub"]["log_scalars"]["train/loss"], HistoryBuffer)
    assert loaded["message_hub"]["log_scalars"]["train/lr"].mean() == pytest.approx((0.02 + 0.04 + 0.06) / 6)  # count-weighted
    assert type(loaded["state_dict"]) is OrderedDict and loaded["state_dict"]._metadata == model.state_dict()._metadata
    with pytest.raises(Exception, match="Unsupported global"):  # outside the loader torch's default list applies
        torch.load(path, weights_only=True)
