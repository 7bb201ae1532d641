"""CIFAR-10-C, CIFAR-100-C and CIFAR-10-P in the ``.npy`` release layout, through the same
engine as ImageNet-C / -P: one loading pipeline (:func:`gcpbench.robustness.runner.run_items`),
the same per-group tallies, a :class:`~gcpbench.robustness.engine.ResumeLog` keyed by the
result's identity, files written inside :func:`gcpbench.runs.result_writer`.

Layout (``data_manifests/cifar10_c.json`` and friends): ``ROOT/<corruption>.npy`` uint8
[5 x N, 32, 32, 3] (severities 1-5 stacked) with ``ROOT/labels.npy`` [5 x N]; CIFAR-10-P
``ROOT/<perturbation>.npy`` uint8 [N, frames, 32, 32, 3]. Images are used at their stored size
(``--image-size`` resizes them for a model with another input size), normalised with the
model's mean / std. Scores are unnormalised (no published CIFAR baseline): mean error over the
15 corruptions, mean raw FP / T5D over the 10 perturbations of the authors' CIFAR-P script.
"""
from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from gcpbench.data.walk import TreeWalk
from gcpbench.errors import GcpbenchError, require_positive
from gcpbench.records import CifarResult
from gcpbench.robustness import metrics
from gcpbench.robustness.benchmarks import CIFAR10_CLASSES, SEVERITIES, UNNORMALISED, NpyBenchmark, get_npy_benchmark
from gcpbench.robustness.engine import Benchmark, ErrorTally, ResultFiles, ResumeLog, SequenceTally, evaluate
from gcpbench.robustness.imagenet_c import write_errors_csv
from gcpbench.robustness.imagenet_p import write_results_csv
from gcpbench.robustness.trees import Item, require_dir
from gcpbench.runs import RunDir

LABELS = "labels.npy"


@dataclass
class NpyRequest:
    """What to evaluate (the model comes resolved: ``gcpbench.models.resolve``)."""

    benchmark: str
    data: Path
    only: Sequence[str] = ()  # corruptions / perturbations (default: the benchmark's; + extra with ``extra``)
    extra: bool = False
    severities: Sequence[int] = SEVERITIES
    image_size: int | None = None
    batch_size: int = 256
    workers: int | None = None  # None: runtime.loader_workers()
    device: str = "auto"
    quiet: bool = False


def chosen_names(bench: NpyBenchmark, only: Sequence[str], extra: bool) -> list[str]:
    """``only`` (checked against the benchmark's names) or its benchmark list (+ held-out ones)."""
    known = (*bench.benchmark, *bench.extra)
    unknown = next((n for n in only if n not in known), None)
    if unknown is not None:
        raise GcpbenchError(f"'{unknown}' is not part of {bench.title}: choose from {', '.join(known)}")
    names = list(only) or list(bench.benchmark)
    return names + [n for n in bench.extra if extra and n not in names]


@functools.lru_cache(maxsize=8)
def _mapped(path: str, size: int, mtime_ns: int) -> np.ndarray:
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise GcpbenchError(f"'{path}' is not a readable .npy array ({exc})") from None


def _array(path: str) -> np.ndarray:
    """The array of a ``.npy`` file, memory-mapped once per content (size and modification time:
    a file rewritten at the same path is read again)."""
    try:
        stat = os.stat(path)
    except OSError as exc:
        raise GcpbenchError(f"'{path}' is not a readable .npy array ({exc.strerror})") from None
    return _mapped(path, stat.st_size, stat.st_mtime_ns)


def load_npy_item(item: Item, prep=None):
    """One image ([1, 3, H, W]) or sequence ([frames, 3, H, W]) of ``FILE.npy#index``, normalised."""
    from gcpbench.robustness.loading import fit_frames, normalize_frames

    path, _, index = item.path.rpartition("#")
    data = np.asarray(_array(path)[int(index)], dtype=np.uint8)
    frames = data[None] if data.ndim == 3 else data
    return normalize_frames(fit_frames(frames, prep), prep)


def _require_file(root: Path, name: str, bench: NpyBenchmark, walk: TreeWalk) -> Path:
    path = root / name
    if not path.is_file():
        raise GcpbenchError(f"{bench.title} tree {root}: missing file '{name}' (checked against "
                            f"data_manifests/{bench.stem}.json)")
    walk.add_file(path)
    return path


def c_items(bench: NpyBenchmark, root: Path, names: Sequence[str], severities: Sequence[int],
            walk: TreeWalk | None = None) -> list[Item]:
    """One item per image of the chosen corruptions and severities, labelled from ``labels.npy``
    (every file listed by one ``walk``: two names of one file are refused)."""
    walk = walk or TreeWalk()
    labels = np.asarray(_array(str(_require_file(root, LABELS, bench, walk))))
    if labels.ndim != 1 or len(labels) % len(SEVERITIES):
        raise GcpbenchError(f"'{root / LABELS}' holds {labels.shape} labels: expected one row of 5 x N "
                            f"(severities 1-5 stacked)")
    per = len(labels) // len(SEVERITIES)
    items = []
    for name in names:
        path = _require_file(root, f"{name}.npy", bench, walk)
        shape = _array(str(path)).shape
        if len(shape) != 4 or shape[0] != len(labels) or shape[-1] != 3:
            raise GcpbenchError(f"'{path}' has shape {shape}: expected ({len(labels)}, H, W, 3) like {LABELS}")
        for s in severities:
            items += [Item(f"{name}/{s}", f"{path}#{i}", int(labels[i])) for i in range((s - 1) * per, s * per)]
    return items


def p_items(bench: NpyBenchmark, root: Path, names: Sequence[str], walk: TreeWalk | None = None) -> list[Item]:
    """One item per sequence of the chosen perturbations (difficulty 1: the release's files)."""
    walk = walk or TreeWalk()
    items = []
    for name in names:
        path = _require_file(root, f"{name}.npy", bench, walk)
        shape = _array(str(path)).shape
        if len(shape) != 5 or shape[-1] != 3 or shape[1] < 2:
            raise GcpbenchError(f"'{path}' has shape {shape}: expected (sequences, frames >= 2, H, W, 3)")
        items += [Item(f"{name}@1", f"{path}#{i}", -1) for i in range(shape[0])]
    return items


def check_model_classes(bench: NpyBenchmark, model, checkpoint: dict[str, Any]) -> None:
    """The model must predict the benchmark's classes (CIFAR order: the sorted class names)."""
    from gcpbench.models.weights import output_classes

    count = output_classes(model)
    if count != bench.num_classes:
        raise GcpbenchError(f"{model.zoo_name} predicts {count} classes; {bench.title} has {bench.num_classes}: "
                            f"evaluate a model trained on CIFAR-{bench.num_classes}")
    trained_on = checkpoint.get("classes")
    if bench.num_classes == 10 and isinstance(trained_on, list) and list(trained_on) != list(CIFAR10_CLASSES):
        raise GcpbenchError(f"{model.zoo_name} was trained on classes {', '.join(map(str, trained_on[:3]))}, ...: "
                            f"{bench.title}'s labels are {', '.join(CIFAR10_CLASSES[:3])}, ... (CIFAR order)")


class CifarSet(Benchmark):
    """A CIFAR set in the ``.npy`` release layout for one request: top-1 error per corruption x
    severity (the -C sets) or flip probability / top-5 distance per perturbation (CIFAR-10-P,
    difficulty 1), unnormalised means."""

    load = staticmethod(load_npy_item)

    def __init__(self, request: NpyRequest, resolved):
        r = request
        self.bench = bench = get_npy_benchmark(r.benchmark)
        require_positive("--image-size", r.image_size)
        bad = next((s for s in r.severities if s not in SEVERITIES), None)
        if bad is not None:
            raise GcpbenchError(f"--severities takes 1 to 5 (got {bad})")
        self.root = root = require_dir(Path(r.data), bench.title)
        self.names = chosen_names(bench, r.only, r.extra)
        super().__init__(request, resolved.model, resolved.checkpoint, resolved.path)
        check_model_classes(bench, self.model, self.checkpoint)
        self.c_set = bench.kind == "c"
        self.walk = TreeWalk()
        self.items = (c_items(bench, root, self.names, r.severities, self.walk) if self.c_set
                      else p_items(bench, root, self.names, self.walk))
        stored = load_npy_item(self.items[0]).shape[-1]
        self.prep = resolved.preprocessing.at_size(r.image_size or stored)
        self.frames = 1 if self.c_set else _array(self.items[0].path.rpartition("#")[0]).shape[1]
        self.files = ResultFiles(bench.stem, *bench.files, bench.title, CifarResult)

    def config(self) -> dict:
        return {"command": "eval-cifar", "dataset": self.bench.key, "data_root": str(self.root)}

    def data_identity(self) -> dict:
        return {"listing": self.walk.fingerprint(self.root)}

    def options(self, precision: str) -> dict:
        return {"benchmark": self.bench.key, "precision": precision, "preprocessing": self.prep.as_dict()}

    def tally(self, pending: list[Item], log: ResumeLog, csv_path: Path) -> ErrorTally | SequenceTally:
        if self.c_set:
            return ErrorTally(pending, log, csv_path, self.write_csv)
        return SequenceTally(pending, log, csv_path, self.write_csv, difficulty=1)

    def write_csv(self, path: Path, records: Sequence[dict]) -> None:
        if self.c_set:
            write_errors_csv(path, records)
        else:
            write_results_csv(path, records, relative=False)

    def summary(self, log: ResumeLog, resumed: int) -> dict:
        bench, names = self.bench, self.names
        return {"model": self.model.zoo_name, "checkpoint": str(self.checkpoint_path), "benchmark": bench.key,
                "title": bench.title, "dataset": bench.key, "data_root": str(self.root),
                **_scores(bench, names, self.request.severities, log), "normalisation": UNNORMALISED,
                "partial": tuple(n for n in names if n in bench.benchmark) != bench.benchmark,
                "resumed_items": resumed, "preprocessing": self.prep.as_dict()}


def evaluate_npy(request: NpyRequest, resolved, out: Path | None = None) -> tuple[dict, RunDir]:
    """Evaluate (or resume) a CIFAR robustness set with ``resolved`` (a
    :class:`gcpbench.models.resolve.Resolved`); writes and returns the summary and the run."""
    return evaluate(CifarSet(request, resolved), out)


def _scores(bench: NpyBenchmark, names: Sequence[str], severities: Sequence[int], log) -> dict:
    benchmark = [n for n in names if n in bench.benchmark]
    extra = [n for n in names if n in bench.extra]
    empty = next((k for k, rec in log.records.items() if rec.get("error", rec.get("FP", 0)) is None), None)
    if empty is not None:
        raise GcpbenchError(f"{bench.title} '{empty}': no image could be read (see {log.path} for the list)")
    if bench.kind == "c":
        table = {}
        for n in names:
            for s in severities:
                table.setdefault(n, {})[s] = log.records[f"{n}/{s}"]["error"]
        scores = metrics.summarize_unnormalised_c(table, benchmark, extra, severities, source=str(log.path))
        return {**scores, "errors": {n: {str(s): table[n][s] for s in severities} for n in names},
                "images": sum(log.records[f"{n}/{s}"]["images"] for n in names for s in severities)}
    raw = {n: (log.records[f"{n}@1"]["FP"], log.records[f"{n}@1"]["T5D"]) for n in names}
    return {**metrics.summarize_unnormalised_p(raw, benchmark, extra),
            "sequences": sum(log.records[f"{n}@1"]["sequences"] for n in names)}
