"""Resumable result logs: one JSON line per finished subset, tied to what was evaluated.

The first line holds the :class:`~gcpbench.identity.ResultIdentity` (model, checkpoint
fingerprint, data, options) and every record carries its key. A later run with the same
identity skips the groups already recorded; any other identity (another checkpoint, another
option) starts the log afresh, and a record of another identity is never reused. A torn last
line (a crash mid-write) is truncated away, with a warning, before anything is appended.
Hold the result's writer lock (:func:`gcpbench.runs.result_writer`) while using it.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from gcpbench.identity import ResultIdentity
from gcpbench.io import append_jsonl, atomic_write_text, repair_jsonl


class ResumeLog:
    """Finished-group records under ``path`` (JSONL), keyed by ``record["key"]``."""

    def __init__(self, path: Path, identity: ResultIdentity):
        self.path = Path(path)
        self.identity = identity.as_dict()
        self.id = identity.key
        self.records: dict[str, dict[str, Any]] = {}
        lines = repair_jsonl(self.path).records if self.path.is_file() else []
        if lines and lines[0].get("identity") == self.identity:
            for record in lines[1:]:
                if record.get("id") == self.id and "key" in record:
                    self.records[record["key"]] = record
        else:
            self._rewrite()

    def _rewrite(self) -> None:
        lines = [{"identity": self.identity, "id": self.id}, *self.records.values()]
        atomic_write_text(self.path, "".join(json.dumps(r, default=str) + "\n" for r in lines))

    def done(self, key: str) -> bool:
        return key in self.records

    def add(self, record: dict[str, Any]) -> None:
        """Record a finished group (appended and synced at once)."""
        record = {**record, "id": self.id}
        self.records[record["key"]] = record
        append_jsonl(self.path, record)
