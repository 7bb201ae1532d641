"""Per-item tallies of the evaluation routine (:mod:`gcpbench.robustness.engine`): they take
each item's logits (or its load error) and add one resume-log record per finished group, then
rewrite the benchmark's CSV with ``write_csv(path, records)``.

Group keys: ``corruption/severity`` (error tallies; any other key, e.g. ``clean``, is recorded
without the two fields) and ``perturbation@difficulty`` (sequence tallies)."""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from gcpbench.errors import GcpbenchError
from gcpbench.robustness import metrics
from gcpbench.robustness.resume import ResumeLog

CsvWriter = Callable[[Path, Sequence[dict]], None]


class ErrorTally:
    """Right/wrong top-1 counts and unreadable files per group, finalised into log records."""

    def __init__(self, items, log: ResumeLog, csv_path: Path, write_csv: CsvWriter):
        self.items, self.log, self.csv_path, self.write_csv = items, log, csv_path, write_csv
        self.wrong: dict[str, int] = {}
        self.seen: dict[str, int] = {}
        self.unreadable: dict[str, list[str]] = {}

    def item(self, index: int, logits) -> None:
        item = self.items[index]
        self.seen[item.group] = self.seen.get(item.group, 0) + 1
        self.wrong[item.group] = self.wrong.get(item.group, 0) + int(int(logits[0].argmax()) != item.label)

    def failed(self, index: int, reason: str) -> None:
        item = self.items[index]
        self.unreadable.setdefault(item.group, []).append(f"{item.path} ({reason})")

    def group_done(self, key: str) -> None:
        images = self.seen.get(key, 0)
        error = self.wrong.get(key, 0) / images if images else None
        record = {"key": key, "errors": self.wrong.get(key, 0), "images": images, "error": error,
                  "unreadable": self.unreadable.get(key, [])}
        if "/" in key:
            corruption, severity = key.split("/")
            record["corruption"], record["severity"] = corruption, int(severity)
        self.log.add(record)
        self.write_csv(self.csv_path, list(self.log.records.values()))


class SequenceTally:
    """Per-sequence flip probability and top-5 distance, finalised per perturbation into log records."""

    def __init__(self, items, log: ResumeLog, csv_path: Path, write_csv: CsvWriter, difficulty: int):
        self.items, self.log, self.csv_path, self.write_csv = items, log, csv_path, write_csv
        self.difficulty = difficulty
        self.fp: dict[str, list[float]] = {}
        self.t5d: dict[str, list[float]] = {}
        self.unreadable: dict[str, list[str]] = {}

    def item(self, index: int, logits) -> None:
        item = self.items[index]
        perturbation = item.group.split("@")[0]
        top5 = metrics.top5_ranks(logits.numpy())
        try:
            fp = metrics.sequence_flip_probability(top5[:, 0], perturbation, self.difficulty)
            t5d = metrics.sequence_top5_distance(top5, perturbation, self.difficulty)
        except GcpbenchError as exc:  # too few frames: reported like an unreadable file
            return self.failed(index, str(exc))
        self.fp.setdefault(item.group, []).append(fp)
        self.t5d.setdefault(item.group, []).append(t5d)

    def failed(self, index: int, reason: str) -> None:
        item = self.items[index]
        self.unreadable.setdefault(item.group, []).append(f"{item.path} ({reason})")

    def group_done(self, key: str) -> None:
        perturbation, difficulty = key.split("@")
        fp, t5d = self.fp.get(key, []), self.t5d.get(key, [])
        self.log.add({"key": key, "perturbation": perturbation, "difficulty": int(difficulty),
                      "FP": float(np.mean(fp)) if fp else None, "T5D": float(np.mean(t5d)) if t5d else None,
                      "sequences": len(fp), "unreadable": self.unreadable.get(key, [])})
        self.write_csv(self.csv_path, list(self.log.records.values()))
