"""ImageNet-C evaluation: top-1 error per corruption x severity, CE, mCE, relative mCE.

Tree: ``ROOT/<corruption>/<severity>/<wnid>/<file>``; images are used at their stored size
(224 px for ImageNet-C; no Resize(256)), only normalised. Every pending (corruption, severity)
subset goes through one DataLoader; each subset is logged in
``eval/imagenet_c_progress.jsonl`` the moment it is finished and ``eval/imagenet_c.csv`` is
rewritten, so an interrupted run resumes where it stopped.
"""
from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Sequence

from torchvision.datasets.folder import IMG_EXTENSIONS

from gcpbench.data.walk import folder_fingerprint
from gcpbench.errors import GcpbenchError, warn
from gcpbench.io import atomic_write_text
from gcpbench.robustness import metrics
from gcpbench.robustness.benchmarks import (
    ALEXNET_CLEAN_ERROR, ALL_CORRUPTIONS, BENCHMARK_CORRUPTIONS, EXTRA_CORRUPTIONS, SEVERITIES, choose,
)
from gcpbench.robustness.loading import load_image
from gcpbench.evaluate import clean_preprocessing, evaluate_val_folder
from gcpbench.records import CorruptionResult
from gcpbench.robustness.engine import TreeBenchmark, ErrorTally, ResultFiles, ResumeLog, evaluate
from gcpbench.robustness.trees import IMAGE_EXTENSIONS, Item, check_same_classes, require_dir, warn_c_strays
from gcpbench.models.preprocess import Preprocessing
from gcpbench.runs import RunDir

CLEAN = "clean"
CSV_NAME, SUMMARY_NAME, PROGRESS_NAME = "imagenet_c.csv", "imagenet_c_summary.json", "imagenet_c_progress.jsonl"
RESULT_FILES = ResultFiles("imagenet_c", CSV_NAME, SUMMARY_NAME, PROGRESS_NAME, "ImageNet-C", CorruptionResult)


@dataclass
class CRequest:
    """What to evaluate."""

    checkpoint: Path
    data: Path | None = None  # None: the built-in synthetic set's ImageNet-C tree (made once)
    corruptions: Sequence[str] = BENCHMARK_CORRUPTIONS
    severities: Sequence[int] = SEVERITIES
    clean_error: float | None = None
    clean_data: Path | None = None
    subset: int | None = None
    seed: int = 0
    batch_size: int = 64
    workers: int | None = None  # None: runtime.loader_workers()
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


def with_default_data(r: CRequest) -> CRequest:
    """``r`` itself, or without ``data`` the synthetic ImageNet-C tree holding its corruptions and
    severities (generated once), with the synthetic clean split for the clean error unless a
    clean error or clean tree is given."""
    if r.data is not None:
        return r
    from gcpbench.robustness.defaults import ensure_synthetic_c, synthetic_val_root

    data = ensure_synthetic_c(r.corruptions, r.severities, quiet=r.quiet)
    given = r.clean_error is not None or r.clean_data is not None
    return replace(r, data=data, clean_data=r.clean_data if given else synthetic_val_root(quiet=r.quiet))


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


def implausible(summary: dict, classes: int, clean_images: int | None = None) -> list[str]:
    """Why the scores of ``summary`` should not be trusted (empty when nothing is wrong): a clean
    error at chance (not significantly below ``1 - 1/classes``: the model knows nothing of these
    classes) or a negative relative CE (corrupted images scored better than clean ones: the clean
    error is not of this data)."""
    problems = []
    clean = summary.get("clean_error")
    if clean is not None and classes > 1:
        chance = 1.0 - 1.0 / classes
        margin = 2.0 * math.sqrt(chance * (1.0 - chance) / clean_images) if clean_images else 0.0
        if clean >= chance - margin:
            problems.append(f"the clean error ({100 * clean:.1f} %) is at chance for {classes} classes "
                            f"({100 * chance:.1f} %): the model has not learnt these classes, so its CE and mCE "
                            "compare nothing")
    relative = {**(summary.get("relative_CE") or {}), **(summary.get("extra_relative_CE") or {})}
    negative = [c for c, v in relative.items() if v is not None and v < 0]
    if negative:
        problems.append(f"relative CE is negative for {', '.join(negative[:3])}{' ...' if len(negative) > 3 else ''}: "
                        "corrupted images were classified better than clean ones, so the clean error is not of this "
                        "data (another tree or crop?)")
    return problems


class ImageNetC(TreeBenchmark):
    """ImageNet-C for one request: the chosen corruption x severity folders (checked, stray
    folders warned about), the clean error as an extra record, CE / mCE / relative mCE."""

    files = RESULT_FILES
    extensions = IMAGE_EXTENSIONS
    load = staticmethod(load_c_item)
    summarize = staticmethod(summarize_run)
    write_csv = staticmethod(write_errors_csv)

    def __init__(self, request: CRequest, model, checkpoint: dict | None):
        super().__init__(request, model, checkpoint)
        if request.clean_data is not None:
            check_same_classes([require_dir(Path(request.clean_data), "clean validation"),
                                next(iter(self.group_folders.values()))])

    def folders(self, root: Path) -> dict[str, Path]:
        return subset_folders(root, self.request.corruptions, self.request.severities)

    def warn_strays(self, root: Path) -> None:
        warn_c_strays(root, self.request.corruptions)

    def config(self) -> dict:
        r = self.request
        return {"command": "eval-c", "dataset": self.label, "data_root": str(self.root), "subset_per_class": r.subset,
                "clean_data": str(r.clean_data) if r.clean_data else None}

    def options(self, precision: str) -> dict:
        r = self.request
        return {"subset": r.subset, "seed": r.seed, "precision": precision,
                "clean_data": str(Path(r.clean_data).resolve()) if r.clean_data else None,
                "preprocessing": self.prep.as_dict()}

    def summary(self, log: ResumeLog, resumed: int) -> dict:
        summary = super().summary(log, resumed)
        clean = log.records.get(CLEAN)
        summary["sanity"] = implausible(summary, len(self.labels), clean["images"] if clean else None)
        for message in summary["sanity"]:
            warn(message)
        return summary

    def data_identity(self) -> dict:
        identity = super().data_identity()
        if self.request.clean_data is not None:
            identity["clean_listing"] = folder_fingerprint(self.request.clean_data, IMG_EXTENSIONS)
        return identity

    def tally(self, pending: list[Item], log: ResumeLog, csv_path: Path) -> ErrorTally:
        return ErrorTally(pending, log, csv_path, write_errors_csv)

    def add_records(self, log: ResumeLog, device) -> None:
        if self.request.clean_data is not None and not log.done(CLEAN):
            log.add(clean_record(self.model, self.request, self.labels, device, self.prep))


def evaluate_c(request: CRequest, out: Path | None = None, model=None,
               checkpoint: dict | None = None) -> tuple[dict, RunDir]:
    """Evaluate (or resume) ImageNet-C for ``request``; writes and returns the summary and run.

    ``out`` is the run directory (default: the checkpoint's run, else a stable name under
    runs/). ``model``/``checkpoint`` may be given instead of loading ``request.checkpoint``.
    """
    from gcpbench.models import load_model

    r = with_default_data(request)
    if model is None:
        model, checkpoint = load_model(r.checkpoint)
    return evaluate(ImageNetC(r, model, checkpoint), out)


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
