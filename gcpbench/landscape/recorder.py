"""Record the landscape probe during training into ``RUN/landscape.csv``.

The training loop calls, once per iteration before the optimizer step::

    recorder = LandscapeRecorder(run_dir, model, family, every)
    recorder.maybe_record(step, epoch, images, targets, train_loss)

Every rank measures its own batch (so SyncBatchNorm collectives stay matched across ranks;
the other ranks wait for rank 0 anyway); only rank 0 appends the row.
"""
from __future__ import annotations

import csv
import io
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

from torch import Tensor, nn

from gcpbench.runtime import process_rank
from gcpbench.errors import GcpbenchError
from gcpbench.landscape.probe import default_etas, default_every, measure
from gcpbench.records import LandscapeRow
from gcpbench.runs import RunDir

COLUMNS: tuple[str, ...] = LandscapeRow.columns()


def _format(value: Any) -> str:
    return repr(float(value)) if isinstance(value, float) else str(value)


def append_row(path: str | os.PathLike, row: LandscapeRow | Mapping[str, Any]) -> None:
    """Append one record (header first when the file is new); flushed and synced."""
    path = Path(path)
    row = row.to_json() if isinstance(row, LandscapeRow) else row
    new = not path.is_file() or path.stat().st_size == 0
    if not new:
        with open(path) as handle:
            header = handle.readline().strip().split(",")
        if tuple(header) != COLUMNS:
            raise GcpbenchError(f"{path} has columns {','.join(header)}, expected {','.join(COLUMNS)}; move it away and rerun")
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    if new:
        writer.writerow(COLUMNS)
    writer.writerow([_format(row[name]) for name in COLUMNS])
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        handle.write(buffer.getvalue())
        handle.flush()
        os.fsync(handle.fileno())


class LandscapeRecorder:
    """Run :func:`measure` every ``every`` steps (``step % every == 0``) and append a row.

    ``every=None`` uses the paper's interval for ``family`` (:func:`default_every`);
    ``etas=None`` the paper's step-size grid (:func:`default_etas`).
    """

    def __init__(
        self,
        run_dir: RunDir,
        model: nn.Module,
        family: str,
        every: int | None = None,
        etas: Sequence[float] | None = None,
    ) -> None:
        self.run_dir = run_dir
        self.model = model
        self.every = default_every(family) if every is None else int(every)
        if self.every < 1:
            raise GcpbenchError(f"--landscape-every must be >= 1 iterations, got {every}")
        self.etas = default_etas(family) if etas is None else list(etas)

    def due(self, step: int) -> bool:
        """Whether ``step`` is a probe step."""
        return step % self.every == 0

    def maybe_record(
        self, step: int, epoch: int, images: Tensor, targets: Tensor, train_loss: float
    ) -> dict[str, Any] | None:
        """Probe and record at probe steps; return the row (None on other steps)."""
        if not self.due(step):
            return None
        result = measure(self.model, images, targets, self.etas)
        row = LandscapeRow.measured(int(step), int(epoch), float(train_loss), result)
        if process_rank() == 0:
            append_row(self.run_dir.landscape, row)
        return row.to_json()


def read_landscape(path: str | os.PathLike):
    """``landscape.csv`` as a pandas DataFrame sorted by step; a torn last line is dropped and a
    step recorded twice (a resumed run) keeps its last record."""
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise GcpbenchError(f"{path} does not exist: record it with `gcpbench train ... --landscape-every K`")
    try:
        frame = pd.read_csv(path)
    except (pd.errors.EmptyDataError, pd.errors.ParserError) as exc:
        raise GcpbenchError(f"{path} is not a readable landscape CSV ({exc})") from None
    missing = [name for name in COLUMNS if name not in frame.columns]
    if missing:
        raise GcpbenchError(f"{path} lacks the columns {', '.join(missing)}; expected {','.join(COLUMNS)}")
    frame = frame[list(COLUMNS)].apply(pd.to_numeric, errors="coerce").dropna(subset=["step", "num_eta"])
    frame = frame.drop_duplicates("step", keep="last").sort_values("step").reset_index(drop=True)
    if frame.empty:
        raise GcpbenchError(f"{path} holds no landscape records yet")
    return frame.astype({"step": int, "epoch": int, "num_eta": int})


__all__ = ["COLUMNS", "LandscapeRecorder", "append_row", "read_landscape"]
