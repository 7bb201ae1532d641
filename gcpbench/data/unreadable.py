"""Unreadable images a training run skipped: each named once in a warning, all listed in a file.

Training and ``eval-imagenet`` treat a corrupt image like ``eval-c`` does: counted, listed and
skipped (``--strict`` stops at the first one instead). Under torchrun every rank skips its own
share; :meth:`UnreadableLog.end_epoch` gathers them so that rank 0 lists them all.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterable

from gcpbench.data.folders import skipped_note
from gcpbench.errors import GcpbenchError, warn
from gcpbench.io import atomic_write_text

FILE_NAME = "unreadable_images.txt"


class UnreadableLog:
    """The unreadable files seen so far by one training run (``RUN/unreadable_images.txt``)."""

    def __init__(self, run_path: Path):
        self.path = Path(run_path) / FILE_NAME
        self.paths: set[str] = set()
        self._listed: set[str] = set()

    def add(self, paths: Iterable[str]) -> None:
        self.paths.update(paths)

    def add_from_batch(self, batch: Any, distributed: bool = False) -> bool:
        """Record a ``skip_unreadable`` batch's bad files; False when the batch holds no image.

        Under torchrun a rank cannot skip a step alone (the others would wait for its
        gradients forever): a batch without a readable image then stops the run with one line.
        """
        if len(batch) > 2:
            self.add(batch[2])
        if batch[0] is None and distributed:
            raise GcpbenchError(f"a whole batch of unreadable images ({', '.join(batch[2][:2])}, ...): replace or "
                                "delete them (every process must train every step under torchrun)")
        return batch[0] is not None

    def end_epoch(self, epoch: int, gather: Callable[[list[str]], list[list[str]]], is_main: bool) -> None:
        """Gather every rank's files (``gather`` is an all-gather) and, on rank 0, list them and
        warn about the ones not seen in an earlier epoch."""
        for paths in gather(sorted(self.paths)):
            self.paths.update(paths)
        new = sorted(self.paths - self._listed)
        if not new or not is_main:
            return
        atomic_write_text(self.path, "".join(f"{p}\n" for p in sorted(self.paths)))
        self._listed.update(new)
        warn(f"epoch {epoch}: {skipped_note(new, self.path)}")

    def summary(self) -> str | None:
        """One line for the end of the run (None when nothing was skipped)."""
        if not self.paths:
            return None
        count = len(self.paths)
        return f"skipped {count} unreadable image{'s' if count != 1 else ''} in all (listed in {self.path})"
