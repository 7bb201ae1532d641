"""The evaluation engine of the resumable benchmarks (ImageNet-C, ImageNet-P, CIFAR-10-C,
CIFAR-100-C, CIFAR-10-P): where a result lives (:class:`ResultFiles`, :func:`eval_run_dir`), its
identity-keyed resume log (:class:`ResumeLog`), the per-item tallies that feed it
(:class:`ErrorTally`, :class:`SequenceTally`) and the one evaluation routine
(:func:`evaluate_resumable`): hold the result's writer lock, open the resume log, stream the
pending items through the model once, let the benchmark finish its records, stamp the identity
and write the summary atomically. A benchmark brings its items, a loader, a tally (per-item
callbacks that add a log record when a group is done) and a ``finish`` step.

Resume log: one JSON line per finished group, tied to what was evaluated. The first line holds
the :class:`~gcpbench.identity.ResultIdentity` (model, checkpoint fingerprint, data, options)
and every record carries its key. A later run with the same identity skips the groups already
recorded; any other identity (another checkpoint, another option) starts the log afresh, and a
record of another identity is never reused. A torn last line (a crash mid-write) is truncated
away, with a warning, before anything is appended.

Tally group keys: ``corruption/severity`` (error tallies; any other key, e.g. ``clean``, is
recorded without the two fields) and ``perturbation@difficulty`` (sequence tallies).
"""
from __future__ import annotations

import functools
import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from gcpbench.errors import GcpbenchError
from gcpbench.identity import Producer, ResultIdentity
from gcpbench.io import append_jsonl, atomic_write_json, atomic_write_text, repair_jsonl
from gcpbench.records import EvalResult
from gcpbench.robustness import metrics
from gcpbench.robustness.runner import Loader, Predictor, run_items
from gcpbench.robustness.trees import Item
from gcpbench.runs import DEFAULT_ROOT, RunDir, new_run_dir, result_writer, run_slug

CsvWriter = Callable[[Path, Sequence[dict]], None]


@dataclass(frozen=True)
class ResultFiles:
    """Where one benchmark result lives in ``RUN/eval/`` and how the run directory files it."""

    result: str  # lock / result name, e.g. imagenet_c
    csv: str
    summary: str
    progress: str
    what: str  # for messages, e.g. "ImageNet-C results"
    record: type[EvalResult]  # the summary's schema (gcpbench.records)

    @property
    def names(self) -> tuple[str, str, str]:
        return self.csv, self.summary, self.progress


@dataclass(frozen=True)
class Streaming:
    """How items go through the model."""

    batch_size: int
    items_per_batch: int
    workers: int
    description: str
    quiet: bool = False


def eval_run_dir(producer: Producer, out: Path | None) -> RunDir:
    """``out``; else the run that holds the checkpoint (``RUN/checkpoints/x.pt``); else a stable
    ``runs/eval_<model>_<checkpoint stem>_<fingerprint>`` so that rerunning the same command
    resumes, and another checkpoint of the same name never lands there."""
    if out is not None:
        return new_run_dir(out, "eval")
    checkpoint = Path(producer.checkpoint)
    if checkpoint.parent.name == "checkpoints" and (checkpoint.parent.parent / "config.json").is_file():
        return RunDir(checkpoint.parent.parent)
    return new_run_dir(DEFAULT_ROOT / f"eval_{run_slug(producer.model)}_{checkpoint.stem}_{producer.sha256[:8]}", "eval")


class ResumeLog:
    """Finished-group records under ``path`` (JSONL), keyed by ``record["key"]``; hold the
    result's writer lock (:func:`gcpbench.runs.result_writer`) while using it."""

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


Tally = Any  # an object with item(index, logits), failed(index, reason) and group_done(key)


def evaluate_resumable(run: RunDir, files: ResultFiles, producer: Producer, identity: ResultIdentity,
                       eval_config: dict[str, Any], items: Sequence[Item], load: Loader, prep, model, device,
                       make_tally: Callable[[list[Item], ResumeLog, Any], Tally], streaming: Streaming,
                       finish: Callable[[ResumeLog, int], dict]) -> dict:
    """Evaluate (or resume) ``items`` into ``run`` and return the summary written to
    ``eval/<files.summary>``. ``make_tally(pending, log, csv_path)`` builds the per-item tally;
    ``finish(log, resumed_items)`` runs under the lock once every item is through (extra records,
    the CSV) and returns the summary's JSON, which is read as a ``files.record`` (its required
    keys checked) and stamped with the identity."""
    with result_writer(run, files.result, files.names, producer, files.what, eval_config):
        log = ResumeLog(run.eval_file(files.progress), identity)
        pending = [item for item in items if not log.done(item.group)]
        tally = make_tally(pending, log, run.eval_file(files.csv))
        if pending:
            run_items(pending, functools.partial(load, prep=prep), Predictor(model, device), on_item=tally.item,
                      on_failed=tally.failed, on_group_done=tally.group_done, batch_size=streaming.batch_size,
                      items_per_batch=streaming.items_per_batch, workers=streaming.workers,
                      pin_memory=device.type == "cuda", description=streaming.description, quiet=streaming.quiet)
        result = replace(files.record.from_json(finish(log, len(items) - len(pending))), identity=identity)
        atomic_write_json(run.eval_file(files.summary), result.to_json())
    return result.to_json()
