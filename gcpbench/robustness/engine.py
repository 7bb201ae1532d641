"""The evaluation engine of the resumable benchmarks (ImageNet-C, ImageNet-P, CIFAR-10-C,
CIFAR-100-C, CIFAR-10-P): where a result lives (:class:`ResultFiles`, :func:`eval_run_dir`), its
identity-keyed resume log (:class:`ResumeLog`), the per-item tallies that feed it
(:class:`ErrorTally`, :class:`SequenceTally`), what a benchmark is (:class:`Benchmark`) and the
one evaluation routine of every benchmark (:func:`evaluate`): resolve the device, find the run
directory, build the result's identity, hold its writer lock, open the resume log, stream the
pending items through the model once, let the benchmark add its records, write its CSV and its
summary, stamp the identity. A benchmark is one :class:`Benchmark` subclass: its items, a loader,
a tally (per-item callbacks that add a log record when a group is done), its identity options,
its eval-config fields, its CSV and its summary.

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
from abc import ABC, abstractmethod
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import Tensor

from gcpbench.data.walk import TreeWalk
from gcpbench.errors import GcpbenchError
from gcpbench.identity import Producer, ResultIdentity
from gcpbench.io import append_jsonl, atomic_write_json, atomic_write_text, repair_jsonl
from gcpbench.models.preprocess import BENCHMARK_GEOMETRY, Preprocessing, for_model
from gcpbench.models.weights import output_classes
from gcpbench.records import EvalResult
from gcpbench.robustness import metrics
from gcpbench.robustness.runner import Predictor, run_items
from gcpbench.robustness.images import OFFICIAL
from gcpbench.robustness.trees import (
    IMAGENET, Item, dataset_label, generation_identity, read_marker, require_dir, source_kind, tree_items,
)
from gcpbench.runs import DEFAULT_ROOT, RunDir, new_run_dir, result_writer, run_slug
from gcpbench.runtime import resolve_device

CsvWriter = Callable[[Path, Sequence[dict]], None]
ALEXNET_IMAGENET = "percent of AlexNet's errors (the published tables; the data is made from ImageNet val)"
ALEXNET_ELSEWHERE = ("AlexNet's ImageNet errors divide numbers measured on other data: not comparable with "
                     "published ImageNet-C / -P numbers")


@dataclass(frozen=True)
class ResultFiles:
    """Where one benchmark result lives in ``RUN/eval/`` and how the run directory files it."""

    result: str  # lock / result name, e.g. imagenet_c
    csv: str
    summary: str
    progress: str
    title: str  # the benchmark's name in messages and on its progress bar, e.g. "ImageNet-C"
    record: type[EvalResult]  # the summary's schema (gcpbench.records)

    @property
    def names(self) -> tuple[str, str, str]:
        return self.csv, self.summary, self.progress

    @property
    def what(self) -> str:
        return f"{self.title} results"


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


class Tally(ABC):
    """Per-item callbacks of :func:`evaluate`: ``item(index, logits)``, ``failed(index, reason)``
    (a file that could not be read, named in its group's record) and ``group_done(key)``, which
    adds the group's resume-log record and rewrites the benchmark's CSV."""

    def __init__(self, items, log: ResumeLog, csv_path: Path, write_csv: CsvWriter):
        self.items, self.log, self.csv_path, self.write_csv = items, log, csv_path, write_csv
        self.unreadable: dict[str, list[str]] = {}

    @abstractmethod
    def item(self, index: int, logits) -> None:
        """Count one item's logits [n, classes] into its group."""

    @abstractmethod
    def group_done(self, key: str) -> None:
        """Add group ``key``'s record (:meth:`_record`) once all its items are through."""

    def failed(self, index: int, reason: str) -> None:
        item = self.items[index]
        self.unreadable.setdefault(item.group, []).append(f"{item.path} ({reason})")

    def _record(self, record: dict[str, Any]) -> None:
        """Add a finished group's record and rewrite the CSV."""
        self.log.add(record)
        self.write_csv(self.csv_path, list(self.log.records.values()))


class ErrorTally(Tally):
    """Right/wrong top-1 counts per group."""

    def __init__(self, items, log: ResumeLog, csv_path: Path, write_csv: CsvWriter):
        super().__init__(items, log, csv_path, write_csv)
        self.wrong: dict[str, int] = {}
        self.seen: dict[str, int] = {}

    def item(self, index: int, logits) -> None:
        item = self.items[index]
        self.seen[item.group] = self.seen.get(item.group, 0) + 1
        self.wrong[item.group] = self.wrong.get(item.group, 0) + int(int(logits[0].argmax()) != item.label)

    def group_done(self, key: str) -> None:
        images = self.seen.get(key, 0)
        error = self.wrong.get(key, 0) / images if images else None
        record = {"key": key, "errors": self.wrong.get(key, 0), "images": images, "error": error,
                  "unreadable": self.unreadable.get(key, [])}
        if "/" in key:
            corruption, severity = key.split("/")
            record["corruption"], record["severity"] = corruption, int(severity)
        self._record(record)


class SequenceTally(Tally):
    """Per-sequence flip probability and top-5 distance, averaged per perturbation."""

    def __init__(self, items, log: ResumeLog, csv_path: Path, write_csv: CsvWriter, difficulty: int):
        super().__init__(items, log, csv_path, write_csv)
        self.difficulty = difficulty
        self.fp: dict[str, list[float]] = {}
        self.t5d: dict[str, list[float]] = {}

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

    def group_done(self, key: str) -> None:
        perturbation, difficulty = key.split("@")
        fp, t5d = self.fp.get(key, []), self.t5d.get(key, [])
        self._record({"key": key, "perturbation": perturbation, "difficulty": int(difficulty),
                      "FP": float(np.mean(fp)) if fp else None, "T5D": float(np.mean(t5d)) if t5d else None,
                      "sequences": len(fp), "unreadable": self.unreadable.get(key, [])})


class Benchmark(ABC):
    """One resumable benchmark evaluated for one request: only what differs between benchmarks.

    A subclass is built from the request and the resolved model: its ``__init__`` checks the data
    and sets ``root`` (the data root of the identity), ``items``, ``prep`` (the model's
    preprocessing) and, for sequences, ``frames`` (the most frames of one item: how many items
    make a batch). It names its :class:`ResultFiles` and its loader, and supplies the eval-config
    fields, the identity's options, the tally, the CSV, any extra records and the summary;
    :func:`evaluate` does the rest."""

    files: ResultFiles
    root: Path
    items: list[Item]
    prep: Preprocessing
    frames: int = 1

    def __init__(self, request, model, checkpoint: dict[str, Any] | None, checkpoint_path: Path):
        self.request, self.model, self.checkpoint = request, model, checkpoint or {}
        self.checkpoint_path = checkpoint_path

    @staticmethod
    @abstractmethod
    def load(item: Item, prep: Preprocessing | None = None) -> Tensor:
        """One item as a float tensor [n, 3, H, W] (a module-level function: picklable for the workers)."""

    @abstractmethod
    def config(self) -> dict[str, Any]:
        """The fields of an evaluation run's ``config.json`` (``command``, ``dataset``, ``data_root``, ...)."""

    @abstractmethod
    def options(self, precision: str) -> dict[str, Any]:
        """The options of the result's identity (what shapes the number besides model and data)."""

    @abstractmethod
    def tally(self, pending: list[Item], log: ResumeLog, csv_path: Path) -> Tally:
        """The per-item tally that adds a resume-log record per finished group."""

    @abstractmethod
    def write_csv(self, path: Path, records: Sequence[dict]) -> None:
        """The result's CSV from the finished records."""

    @abstractmethod
    def data_identity(self) -> dict[str, Any]:
        """What the data is (:attr:`gcpbench.identity.ResultIdentity.data`): the listing
        fingerprint of the files read, the generation record of a generated tree."""

    def add_records(self, log: ResumeLog, device: torch.device) -> None:
        """Records beyond the streamed groups, added once every item is through (none by default)."""

    @abstractmethod
    def summary(self, log: ResumeLog, resumed: int) -> dict[str, Any]:
        """The summary's JSON (a ``files.record``, its identity stamped by :func:`evaluate`)."""


class TreeBenchmark(Benchmark):
    """A benchmark read from an ImageNet-style tree (ImageNet-C, ImageNet-P): group folders of
    class folders, checked and collected by :func:`~gcpbench.robustness.trees.tree_items`,
    evaluated with the request's preprocessing (else the model's own) on images stored at the
    benchmark geometry. A subclass names its group ``folders``, its file ``extensions``, how it
    warns about stray folders, and ``summarize``s its records."""

    extensions: frozenset[str]

    def __init__(self, request, model, checkpoint: dict[str, Any] | None):
        super().__init__(request, model, checkpoint, request.checkpoint)
        title = self.files.title
        self.prep = request.preprocessing or for_model(model)
        self.root = root = require_dir(Path(request.data), title)
        self.group_folders = self.folders(root)
        self.walk = TreeWalk()
        found = tree_items(title, root, self.group_folders, lambda: self.warn_strays(root), self.checkpoint,
                           output_classes(model), self.extensions, request.subset, request.seed, self.walk)
        self.items, self.labels, self.missing = found.items, found.labels, found.missing
        self.source = source_kind(root, list(self.labels))

    def data_identity(self) -> dict[str, Any]:
        return {"listing": self.walk.fingerprint(self.root), "generation": generation_identity(self.root)}

    @abstractmethod
    def folders(self, root: Path) -> dict[str, Path]:
        """Group key -> the folder holding its class folders (a missing one named in one line)."""

    @abstractmethod
    def warn_strays(self, root: Path) -> None:
        """Warn about the folders of ``root`` that no evaluation reads."""

    @staticmethod
    @abstractmethod
    def summarize(request, log: ResumeLog, model_name: str, dataset: str, resumed: int = 0) -> dict[str, Any]:
        """The summary of the finished records (without the preprocessing)."""

    @functools.cached_property
    def label(self) -> str:
        """The dataset label: the request's, else the tree's (``imagenet-c`` or the generated set)."""
        return self.request.dataset or dataset_label(self.root, self.files.title.lower())

    def summary(self, log: ResumeLog, resumed: int) -> dict[str, Any]:
        summary = self.summarize(self.request, log, self.model.zoo_name, self.label, resumed=resumed)
        summary["preprocessing"] = {**self.prep.as_dict(), "geometry": BENCHMARK_GEOMETRY}
        marker = read_marker(self.root) or {}
        summary.update(source_kind=self.source, geometry_mode=marker.get("geometry_mode", OFFICIAL),
                       normalisation=ALEXNET_IMAGENET if self.source == IMAGENET else ALEXNET_ELSEWHERE,
                       missing_images=self.missing)
        return summary


def evaluate(bench: Benchmark, out: Path | None) -> tuple[dict, RunDir]:
    """Evaluate (or resume) ``bench`` into its run directory (``out``, else :func:`eval_run_dir`)
    and return the summary written to ``eval/<files.summary>`` and the run.

    Holds the result's writer lock, opens the identity-keyed resume log, streams the pending
    items through the model once, adds the benchmark's extra records, rewrites its CSV and writes
    its summary (read as a ``files.record``, its required keys checked, stamped with the identity)."""
    r, files = bench.request, bench.files
    device = resolve_device(r.device)
    producer = Producer.of(bench.checkpoint_path, bench.model.zoo_name, bench.checkpoint)
    run = eval_run_dir(producer, out)
    identity = ResultIdentity(producer, str(bench.root.resolve()),
                              bench.options("bf16" if device.type == "cuda" else "float32"), bench.data_identity())
    with result_writer(run, files.result, files.names, producer, files.what, bench.config()):
        log = ResumeLog(run.eval_file(files.progress), identity)
        pending = [item for item in bench.items if not log.done(item.group)]
        tally = bench.tally(pending, log, run.eval_file(files.csv))
        if pending:
            run_items(pending, functools.partial(bench.load, prep=bench.prep), Predictor(bench.model, device),
                      on_item=tally.item, on_failed=tally.failed, on_group_done=tally.group_done,
                      batch_size=r.batch_size, items_per_batch=max(1, r.batch_size // bench.frames),
                      workers=r.workers, pin_memory=device.type == "cuda", description=files.title, quiet=r.quiet)
        bench.add_records(log, device)
        bench.write_csv(run.eval_file(files.csv), list(log.records.values()))
        summary = bench.summary(log, len(bench.items) - len(pending))
        result = replace(files.record.from_json(summary), identity=identity)
        atomic_write_json(run.eval_file(files.summary), result.to_json())
    return result.to_json(), run
