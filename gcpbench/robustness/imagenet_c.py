"""ImageNet-C evaluation: top-1 error per corruption x severity, CE, mCE, relative mCE.

Tree: ``ROOT/<corruption>/<severity>/<wnid>/<file>``; images are used at their stored size
(224 px for ImageNet-C; no Resize(256)), only normalised. Every pending (corruption, severity)
subset goes through one DataLoader; each subset is logged in
``eval/imagenet_c_progress.jsonl`` the moment it is finished and ``eval/imagenet_c.csv`` is
rewritten, so an interrupted run resumes where it stopped.
"""
from __future__ import annotations

import csv
import functools
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from gcpbench.errors import GcpbenchError
from gcpbench.io import atomic_write_json, atomic_write_text
from gcpbench.robustness import metrics
from gcpbench.robustness.baselines import (
    ALEXNET_CLEAN_ERROR, ALL_CORRUPTIONS, BENCHMARK_CORRUPTIONS, EXTRA_CORRUPTIONS, SEVERITIES, choose,
)
from gcpbench.identity import Producer, ResultIdentity
from gcpbench.robustness.loading import load_image
from gcpbench.robustness.resume import ResumeLog
from gcpbench.robustness.strays import warn_c_strays
from gcpbench.robustness.rundirs import eval_run_dir
from gcpbench.evaluate import clean_preprocessing, evaluate_val_folder
from gcpbench.runtime import resolve_device
from gcpbench.robustness.runner import Predictor, run_items
from gcpbench.robustness.trees import (
    IMAGE_EXTENSIONS, Item, check_against_manifest, check_same_classes, collect_items, dataset_label, label_map,
    require_dir,
)
from gcpbench.models.preprocess import BENCHMARK_GEOMETRY, Preprocessing, for_model
from gcpbench.models.weights import output_classes
from gcpbench.runs import RunDir, result_writer

CLEAN = "clean"
CSV_NAME, SUMMARY_NAME, PROGRESS_NAME = "imagenet_c.csv", "imagenet_c_summary.json", "imagenet_c_progress.jsonl"


@dataclass
class CRequest:
    """What to evaluate."""

    checkpoint: Path
    data: Path
    corruptions: Sequence[str] = BENCHMARK_CORRUPTIONS
    severities: Sequence[int] = SEVERITIES
    clean_error: float | None = None
    clean_data: Path | None = None
    subset: int | None = None
    seed: int = 0
    batch_size: int = 64
    workers: int = 4
    device: str = "auto"
    alexnet_clean_error: float = ALEXNET_CLEAN_ERROR
    dataset: str | None = None
    quiet: bool = False
    preprocessing: Preprocessing | None = None  # None: the model's own (gcpbench.models.preprocess)


def corruption_list(extra: bool, only: Sequence[str] | None = None) -> list[str]:
    """The 15 benchmark corruptions (+ the 4 held-out ones with ``extra``), or ``only`` (+ them)."""
    return choose(ALL_CORRUPTIONS, BENCHMARK_CORRUPTIONS, EXTRA_CORRUPTIONS, extra, only, "corruption")


def subset_folders(root: Path, corruptions: Sequence[str], severities: Sequence[int]) -> dict[str, Path]:
    """``corruption/severity`` -> folder; the first missing corruption or severity is named."""
    require_dir(root, "ImageNet-C")
    for c in corruptions:
        require_dir(root / c, f"corruption '{c}'")
    folders = {}
    for c in corruptions:
        for s in severities:
            folders[f"{c}/{s}"] = require_dir(root / c / str(s), f"corruption '{c}' severity {s}")
    return folders


def _split_key(key: str) -> tuple[str, int]:
    corruption, severity = key.split("/")
    return corruption, int(severity)


def write_errors_csv(path: Path, records: Sequence[dict]) -> None:
    """``corruption,severity,error,images`` rows (benchmark order) written atomically."""
    order = {c: i for i, c in enumerate(ALL_CORRUPTIONS)}
    rows = sorted((r for r in records if r["key"] != CLEAN),
                  key=lambda r: (order.get(r["corruption"], len(order)), r["corruption"], r["severity"]))
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["corruption", "severity", "error", "images"])
    for r in rows:
        writer.writerow([r["corruption"], r["severity"], "" if r["error"] is None else f"{r['error']:.6f}", r["images"]])
    atomic_write_text(path, buffer.getvalue())


def load_c_item(item: Item, prep: Preprocessing | None = None):
    """A corrupted image as stored (already at the benchmark geometry), fitted to ``prep``'s input
    size and normalised (``prep``: the model's preprocessing, see :mod:`gcpbench.robustness.loading`)."""
    return load_image(item.path, prep)


class _Tally:
    """Right/wrong counts and unreadable files per group, finalised into log records."""

    def __init__(self, items, log: ResumeLog, csv_path: Path):
        self.items, self.log, self.csv_path = items, log, csv_path
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
        if key != CLEAN:
            record["corruption"], record["severity"] = _split_key(key)
        self.log.add(record)
        write_errors_csv(self.csv_path, list(self.log.records.values()))


def clean_record(model, request: CRequest, labels: dict[str, int], device, prep: Preprocessing) -> dict:
    """The clean error on ``request.clean_data`` through eval-imagenet's own path
    (:func:`gcpbench.evaluate.evaluate_val_folder` with :func:`gcpbench.evaluate.clean_preprocessing`:
    the resize and crop the corrupted images were made with), as a resume record."""
    folder = require_dir(Path(request.clean_data), "clean validation")
    clean_prep = clean_preprocessing(prep, folder.parent)
    result = evaluate_val_folder(model, folder, clean_prep, labels, subset=request.subset, seed=request.seed,
                                 batch_size=request.batch_size, workers=request.workers, device=device,
                                 progress=not request.quiet, description="clean images")
    wrong = round(result["images"] * (1 - result["top1"] / 100))
    return {"key": CLEAN, "errors": wrong, "images": result["images"], "error": 1 - result["top1"] / 100,
            "image_size": clean_prep.input_size, "unreadable": result.get("unreadable", [])}


def evaluate_c(request: CRequest, out: Path | None = None, model=None,
               checkpoint: dict | None = None) -> tuple[dict, RunDir]:
    """Evaluate (or resume) ImageNet-C for ``request``; writes and returns the summary and run.

    ``out`` is the run directory (default: the checkpoint's run, else a stable name under
    runs/). ``model``/``checkpoint`` may be given instead of loading ``request.checkpoint``.
    """
    from gcpbench.models import load_model

    r = request
    if model is None:
        model, checkpoint = load_model(r.checkpoint)
    checkpoint = checkpoint or {}
    prep = r.preprocessing or for_model(model)
    root = Path(r.data)
    folders = subset_folders(root, r.corruptions, r.severities)
    classes = check_same_classes(list(folders.values()))
    check_against_manifest("imagenet-c", root, r.corruptions, classes)
    warn_c_strays(root, r.corruptions)
    labels = label_map(classes, checkpoint, output_classes(model), f"ImageNet-C tree '{root}'")
    items = collect_items(folders, classes, labels, IMAGE_EXTENSIONS, r.subset, r.seed)
    if r.clean_data is not None:
        check_same_classes([require_dir(Path(r.clean_data), "clean validation"), next(iter(folders.values()))])

    label = r.dataset or dataset_label(root, "imagenet-c")
    device = resolve_device(r.device)
    producer = Producer.of(r.checkpoint, model.zoo_name, checkpoint)
    run = eval_run_dir(producer, out)
    identity = ResultIdentity(producer, str(root.resolve()), {
        "subset": r.subset, "seed": r.seed, "precision": "bf16" if device.type == "cuda" else "float32",
        "clean_data": str(Path(r.clean_data).resolve()) if r.clean_data else None,
        "preprocessing": prep.as_dict()})
    files = (CSV_NAME, SUMMARY_NAME, PROGRESS_NAME)
    with result_writer(run, "imagenet_c", files, producer, "ImageNet-C results",
                       {"command": "eval-c", "dataset": label, "data_root": str(root), "subset_per_class": r.subset,
                        "clean_data": str(r.clean_data) if r.clean_data else None}):
        log = ResumeLog(run.eval_file(PROGRESS_NAME), identity)
        pending = [it for it in items if not log.done(it.group)]
        tally = _Tally(pending, log, run.eval_file(CSV_NAME))
        if pending:
            run_items(pending, functools.partial(load_c_item, prep=prep), Predictor(model, device),
                      on_item=tally.item, on_failed=tally.failed, on_group_done=tally.group_done,
                      batch_size=r.batch_size, items_per_batch=r.batch_size, workers=r.workers,
                      pin_memory=device.type == "cuda", description="ImageNet-C", quiet=r.quiet)
        if r.clean_data is not None and not log.done(CLEAN):
            log.add(clean_record(model, r, labels, device, prep))
        write_errors_csv(run.eval_file(CSV_NAME), list(log.records.values()))
        summary = summarize_run(r, log, model.zoo_name, label, resumed=len(items) - len(pending))
        summary["preprocessing"] = {**prep.as_dict(), "geometry": BENCHMARK_GEOMETRY}
        summary["identity"] = identity.as_dict()
        atomic_write_json(run.eval_file(SUMMARY_NAME), summary)
    return summary, run


def summarize_run(r: CRequest, log: ResumeLog, model_name: str, dataset: str, resumed: int = 0) -> dict:
    """The summary JSON of an ImageNet-C run from its finished records."""
    table: dict[str, dict[int, float]] = {}
    unreadable: list[str] = []
    images = 0
    for c in r.corruptions:
        for s in r.severities:
            record = log.records[f"{c}/{s}"]
            if record["error"] is None:
                raise GcpbenchError(f"corruption '{c}' severity {s}: no image could be read (see "
                                    f"{log.path} for the list)")
            table.setdefault(c, {})[s] = record["error"]
            unreadable += record["unreadable"]
            images += record["images"]
    clean_error = r.clean_error
    if r.clean_data is not None:
        record = log.records[CLEAN]
        unreadable += record["unreadable"]
        clean_error = record["error"]
    benchmark = [c for c in r.corruptions if c in BENCHMARK_CORRUPTIONS]
    extra = [c for c in r.corruptions if c in EXTRA_CORRUPTIONS]
    scores = metrics.summarize_c(table, clean_error, corruptions=benchmark, extra=extra,
                                 alexnet_clean_error=r.alexnet_clean_error, severities=r.severities,
                                 source=f"ImageNet-C results in '{log.path}'")
    return {"model": model_name, "checkpoint": str(r.checkpoint), "dataset": dataset,
            "data_root": str(r.data), "subset": r.subset is not None, "subset_per_class": r.subset,
            **scores, "errors": {c: {str(s): table[c][s] for s in r.severities} for c in r.corruptions},
            "images": images, "unreadable": unreadable, "unreadable_count": len(unreadable),
            "resumed_images": resumed}


def score_errors_file(path: Path, clean_error: float | None, corruptions: Sequence[str] | None = None,
                      severities: Sequence[int] = SEVERITIES,
                      alexnet_clean_error: float = ALEXNET_CLEAN_ERROR) -> dict:
    """Score a ``corruption,severity,error`` CSV computed elsewhere (same keys as a run's summary).

    Default: the 15 benchmark corruptions are required and held-out ones are scored when the
    table has them; ``corruptions`` names exactly which to score (result marked partial).
    """
    table = metrics.read_errors_csv(path)
    if corruptions is None:
        corruptions = [*BENCHMARK_CORRUPTIONS, *(c for c in EXTRA_CORRUPTIONS if c in table)]
    extra = [c for c in EXTRA_CORRUPTIONS if c in corruptions]
    summary = metrics.summarize_c(table, clean_error, corruptions=[c for c in corruptions if c in BENCHMARK_CORRUPTIONS],
                                  extra=extra, alexnet_clean_error=alexnet_clean_error,
                                  source=f"errors table '{path}'", severities=severities)
    scored = [*summary["CE"], *summary["extra_CE"]]
    return {"model": None, "dataset": str(path), "subset": False, **summary,
            "errors": {c: {str(s): table[c][s] for s in severities} for c in scored}}
