"""ImageNet-P evaluation: flip probability and top-5 distance per perturbation, mFP, mT5D.

Tree: ``ROOT/<perturbation>[_2|_3]/<wnid>/<sequence>.mp4``. Noise perturbations read the folder
of the chosen difficulty (``gaussian_noise_2`` for difficulty 2) and compare every frame with
the first; the others read ``<perturbation>`` and compare frames ``difficulty`` steps apart.
Frames are used at their stored size, only normalised. All pending sequences go through one
DataLoader; only each frame's top-5 classes are kept; each perturbation is logged in
``eval/imagenet_p_progress.jsonl`` when finished and ``eval/imagenet_p.csv`` is rewritten.
"""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Sequence

from gcpbench.errors import GcpbenchError
from gcpbench.io import atomic_write_text
from gcpbench.robustness import metrics
from gcpbench.robustness.benchmarks import (
    ALL_PERTURBATIONS, BENCHMARK_PERTURBATIONS, DIFFICULTIES, EXTRA_PERTURBATIONS, alexnet_p, choose, folder_name,
    perturbation_frames,
)
from gcpbench.robustness.loading import load_video
from gcpbench.records import PerturbationResult
from gcpbench.robustness.engine import TreeBenchmark, ResultFiles, ResumeLog, SequenceTally, evaluate
from gcpbench.robustness.trees import VIDEO_EXTENSIONS, Item, require_dir, warn_p_strays
from gcpbench.models.preprocess import Preprocessing
from gcpbench.runs import RunDir

CSV_NAME, SUMMARY_NAME, PROGRESS_NAME = "imagenet_p.csv", "imagenet_p_summary.json", "imagenet_p_progress.jsonl"
RESULT_FILES = ResultFiles("imagenet_p", CSV_NAME, SUMMARY_NAME, PROGRESS_NAME, "ImageNet-P", PerturbationResult)
FRAMES_PER_BATCH = 64


@dataclass
class PRequest:
    """What to evaluate."""

    checkpoint: Path
    data: Path | None = None  # None: the built-in synthetic set's ImageNet-P tree (made once)
    perturbations: Sequence[str] = BENCHMARK_PERTURBATIONS
    difficulty: int = 1
    subset: int | None = None
    seed: int = 0
    batch_size: int = FRAMES_PER_BATCH
    workers: int | None = None  # None: runtime.loader_workers()
    device: str = "auto"
    dataset: str | None = None
    quiet: bool = False
    preprocessing: Preprocessing | None = None  # None: the model's own (gcpbench.models.preprocess)


def perturbation_list(extra: bool, only: Sequence[str] | None = None) -> list[str]:
    """The 10 benchmark perturbations (+ the 4 held-out ones with ``extra``), or ``only`` (+ them)."""
    return choose(ALL_PERTURBATIONS, BENCHMARK_PERTURBATIONS, EXTRA_PERTURBATIONS, extra, only, "perturbation")


def folder_of(root: Path, perturbation: str, difficulty: int) -> Path:
    """The folder read for a perturbation at a difficulty (noise: ``_2`` / ``_3`` folders)."""
    name = folder_name(perturbation, difficulty)
    return require_dir(root / name, f"perturbation '{name}'")


def write_results_csv(path: Path, records: Sequence[dict], relative: bool = True) -> None:
    """``perturbation,difficulty,FP,T5D,FP_rel,T5D_rel`` rows (the last two, relative to AlexNet,
    only with ``relative``: sets without a published baseline leave them out), written atomically."""
    order = {p: i for i, p in enumerate(ALL_PERTURBATIONS)}
    baseline = alexnet_p() if relative else {}
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["perturbation", "difficulty", "FP", "T5D", *(["FP_rel", "T5D_rel"] if relative else [])])
    for r in sorted(records, key=lambda r: (r["difficulty"], order.get(r["perturbation"], len(order)))):
        row = [r["perturbation"], r["difficulty"]]
        if r["FP"] is None:
            writer.writerow(row + [""] * (4 if relative else 2))
            continue
        row += [f"{r['FP']:.6f}", f"{r['T5D']:.6f}"]
        if relative:
            fp_a, t5d_a = baseline[r["perturbation"]]
            row += [f"{100 * r['FP'] / fp_a:.3f}", f"{100 * r['T5D'] / t5d_a:.3f}"]
        writer.writerow(row)
    atomic_write_text(path, buffer.getvalue())


def load_p_item(item: Item, prep: Preprocessing | None = None):
    """All frames of one sequence, normalised (``prep``: the model's preprocessing)."""
    return load_video(item.path, prep)


def group_key(perturbation: str, difficulty: int) -> str:
    return f"{perturbation}@{difficulty}"


def summarize_run(r: PRequest, log: ResumeLog, model_name: str, dataset: str, resumed: int = 0) -> dict:
    """The summary JSON of an ImageNet-P run from its finished records."""
    raw, unreadable, sequences = {}, [], 0
    for p in r.perturbations:
        record = log.records[group_key(p, r.difficulty)]
        if record["FP"] is None:
            raise GcpbenchError(f"perturbation '{p}': no sequence could be read (see {log.path} for the list)")
        raw[p] = (record["FP"], record["T5D"])
        unreadable += record["unreadable"]
        sequences += record["sequences"]
    benchmark = [p for p in r.perturbations if p in BENCHMARK_PERTURBATIONS]
    extra = [p for p in r.perturbations if p in EXTRA_PERTURBATIONS]
    scores = metrics.summarize_p(raw, perturbations=benchmark, extra=extra)
    return {"model": model_name, "checkpoint": str(r.checkpoint), "dataset": dataset,
            "data_root": str(r.data), "difficulty": r.difficulty, "subset": r.subset is not None,
            "subset_per_class": r.subset, **scores,
            "alexnet_baseline": "difficulty 1 (the published AlexNet table)",
            "sequences": sequences, "unreadable": unreadable, "unreadable_count": len(unreadable),
            "resumed_sequences": resumed}


class ImageNetP(TreeBenchmark):
    """ImageNet-P for one request: the chosen perturbation folders at one difficulty (checked,
    stray folders warned about), flip probability and top-5 distance per sequence, mFP / mT5D."""

    files = RESULT_FILES
    extensions = VIDEO_EXTENSIONS
    load = staticmethod(load_p_item)
    summarize = staticmethod(summarize_run)
    write_csv = staticmethod(write_results_csv)

    def folders(self, root: Path) -> dict[str, Path]:
        r = self.request
        return {group_key(p, r.difficulty): folder_of(root, p, r.difficulty) for p in r.perturbations}

    def warn_strays(self, root: Path) -> None:
        warn_p_strays(root)

    @property
    def frames(self) -> int:
        return max(perturbation_frames(p) for p in self.request.perturbations)

    def config(self) -> dict:
        r = self.request
        return {"command": "eval-p", "dataset": self.label, "data_root": str(self.root), "difficulty": r.difficulty,
                "subset_per_class": r.subset}

    def options(self, precision: str) -> dict:
        r = self.request
        return {"subset": r.subset, "seed": r.seed, "precision": precision, "preprocessing": self.prep.as_dict()}

    def tally(self, pending: list[Item], log: ResumeLog, csv_path: Path) -> SequenceTally:
        return SequenceTally(pending, log, csv_path, write_results_csv, self.request.difficulty)


def evaluate_p(request: PRequest, out: Path | None = None, model=None,
               checkpoint: dict | None = None) -> tuple[dict, RunDir]:
    """Evaluate (or resume) ImageNet-P for ``request``; writes and returns the summary and run.

    ``out`` is the run directory (default: the checkpoint's run, else a stable name under
    runs/). ``model``/``checkpoint`` may be given instead of loading ``request.checkpoint``.
    """
    from gcpbench.models import load_model

    r = request
    if r.difficulty not in DIFFICULTIES:
        raise GcpbenchError(f"--difficulty must be 1, 2 or 3 (got {r.difficulty})")
    if model is None:
        model, checkpoint = load_model(r.checkpoint)
    if r.data is None:
        from gcpbench.robustness.defaults import ensure_synthetic_p

        r = replace(r, data=ensure_synthetic_p(r.perturbations, r.difficulty, quiet=r.quiet))
    return evaluate(ImageNetP(r, model, checkpoint), out)
