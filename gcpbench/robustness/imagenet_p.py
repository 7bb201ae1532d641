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
import functools
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from gcpbench.errors import GcpbenchError
from gcpbench.io import atomic_write_json, atomic_write_text
from gcpbench.robustness import metrics
from gcpbench.robustness.baselines import (
    ALL_PERTURBATIONS, BENCHMARK_PERTURBATIONS, DIFFICULTIES, EXTRA_PERTURBATIONS, alexnet_p, choose, folder_name,
    perturbation_frames,
)
from gcpbench.robustness.loading import load_video
from gcpbench.identity import Producer, ResultIdentity
from gcpbench.robustness.strays import warn_p_strays
from gcpbench.robustness.resume import ResumeLog
from gcpbench.robustness.rundirs import eval_run_dir
from gcpbench.runtime import resolve_device
from gcpbench.robustness.runner import Predictor, run_items
from gcpbench.robustness.trees import (
    VIDEO_EXTENSIONS, Item, check_against_manifest, check_same_classes, collect_items, dataset_label, label_map,
    require_dir,
)
from gcpbench.models.preprocess import BENCHMARK_GEOMETRY, Preprocessing, for_model
from gcpbench.models.weights import output_classes
from gcpbench.runs import RunDir, result_writer

CSV_NAME, SUMMARY_NAME, PROGRESS_NAME = "imagenet_p.csv", "imagenet_p_summary.json", "imagenet_p_progress.jsonl"
FRAMES_PER_BATCH = 64


@dataclass
class PRequest:
    """What to evaluate."""

    checkpoint: Path
    data: Path
    perturbations: Sequence[str] = BENCHMARK_PERTURBATIONS
    difficulty: int = 1
    subset: int | None = None
    seed: int = 0
    batch_size: int = FRAMES_PER_BATCH
    workers: int = 4
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


def write_results_csv(path: Path, records: Sequence[dict]) -> None:
    """``perturbation,difficulty,FP,T5D,FP_rel,T5D_rel`` rows, written atomically."""
    order = {p: i for i, p in enumerate(ALL_PERTURBATIONS)}
    baseline = alexnet_p()
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["perturbation", "difficulty", "FP", "T5D", "FP_rel", "T5D_rel"])
    for r in sorted(records, key=lambda r: (r["difficulty"], order.get(r["perturbation"], len(order)))):
        if r["FP"] is None:
            writer.writerow([r["perturbation"], r["difficulty"], "", "", "", ""])
            continue
        fp_a, t5d_a = baseline[r["perturbation"]]
        writer.writerow([r["perturbation"], r["difficulty"], f"{r['FP']:.6f}", f"{r['T5D']:.6f}",
                         f"{100 * r['FP'] / fp_a:.3f}", f"{100 * r['T5D'] / t5d_a:.3f}"])
    atomic_write_text(path, buffer.getvalue())


def load_p_item(item: Item, prep: Preprocessing | None = None):
    """All frames of one sequence, normalised (``prep``: the model's preprocessing)."""
    return load_video(item.path, prep)


class _Sequences:
    """Per-sequence FP / T5D, finalised per perturbation into log records."""

    def __init__(self, items, log: ResumeLog, csv_path: Path, difficulty: int):
        self.items, self.log, self.csv_path, self.difficulty = items, log, csv_path, difficulty
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
        write_results_csv(self.csv_path, list(self.log.records.values()))


def group_key(perturbation: str, difficulty: int) -> str:
    return f"{perturbation}@{difficulty}"


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
    checkpoint = checkpoint or {}
    prep = r.preprocessing or for_model(model)
    root = require_dir(Path(r.data), "ImageNet-P")
    folders = {group_key(p, r.difficulty): folder_of(root, p, r.difficulty) for p in r.perturbations}
    classes = check_same_classes(list(folders.values()))
    check_against_manifest("imagenet-p", root, [f.name for f in folders.values()], classes)
    warn_p_strays(root)
    labels = label_map(classes, checkpoint, output_classes(model), f"ImageNet-P tree '{root}'")
    items = collect_items(folders, classes, labels, VIDEO_EXTENSIONS, r.subset, r.seed)

    label = r.dataset or dataset_label(root, "imagenet-p")
    device = resolve_device(r.device)
    producer = Producer.of(r.checkpoint, model.zoo_name, checkpoint)
    run = eval_run_dir(producer, out)
    identity = ResultIdentity(producer, str(root.resolve()), {
        "subset": r.subset, "seed": r.seed, "precision": "bf16" if device.type == "cuda" else "float32",
        "preprocessing": prep.as_dict()})
    with result_writer(run, "imagenet_p", (CSV_NAME, SUMMARY_NAME, PROGRESS_NAME), producer, "ImageNet-P results",
                       {"command": "eval-p", "dataset": label, "data_root": str(root), "difficulty": r.difficulty,
                        "subset_per_class": r.subset}):
        log = ResumeLog(run.eval_file(PROGRESS_NAME), identity)
        pending = [it for it in items if not log.done(it.group)]
        tally = _Sequences(pending, log, run.eval_file(CSV_NAME), r.difficulty)
        if pending:
            frames = max(perturbation_frames(p) for p in r.perturbations)
            run_items(pending, functools.partial(load_p_item, prep=prep), Predictor(model, device), on_item=tally.item, on_failed=tally.failed,
                      on_group_done=tally.group_done, batch_size=r.batch_size,
                      items_per_batch=max(1, r.batch_size // frames), workers=r.workers,
                      pin_memory=device.type == "cuda", description="ImageNet-P", quiet=r.quiet)
        write_results_csv(run.eval_file(CSV_NAME), list(log.records.values()))
        summary = summarize_run(r, log, model.zoo_name, label, resumed=len(items) - len(pending))
        summary["preprocessing"] = {**prep.as_dict(), "geometry": BENCHMARK_GEOMETRY}
        summary["identity"] = identity.as_dict()
        atomic_write_json(run.eval_file(SUMMARY_NAME), summary)
    return summary, run


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
