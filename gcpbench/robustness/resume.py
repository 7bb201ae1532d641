"""Resumable result logs: one JSON line per finished subset, tied to what was evaluated.

The first line holds an identity (checkpoint, data, subset); a later run with the same
identity skips the groups already recorded, a different identity starts the log afresh.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from gcpbench.io import append_jsonl, atomic_write_text, read_jsonl


class ResumeLog:
    """Finished-group records under ``path`` (JSONL), keyed by ``record["key"]``."""

    def __init__(self, path: Path, identity: dict[str, Any]):
        self.path = Path(path)
        self.identity = identity
        self.records: dict[str, dict[str, Any]] = {}
        lines = read_jsonl(self.path) if self.path.is_file() else []
        if lines and lines[0].get("identity") == identity:
            for record in lines[1:]:
                self.records[record["key"]] = record
        else:
            self._rewrite()

    def _rewrite(self) -> None:
        lines = [{"identity": self.identity}, *self.records.values()]
        atomic_write_text(self.path, "".join(json.dumps(r, default=str) + "\n" for r in lines))

    def done(self, key: str) -> bool:
        return key in self.records

    def add(self, record: dict[str, Any]) -> None:
        """Record a finished group (appended and synced at once)."""
        self.records[record["key"]] = record
        append_jsonl(self.path, record)
