"""Run directories -> pandas DataFrames.

:func:`collect` reads every run directory (the shared format of :mod:`gcpbench.runs`) into
:class:`RunRecord` objects. A run whose config or metrics file is unreadable or partial (bad
JSON, a record without ``epoch``/``val_top1``/``val_top5``) is skipped with one warning line
naming it; an unreadable evaluation file is skipped alone, with a warning naming the file.

The ``*_frame`` functions turn the records into tidy DataFrames (one row per run, epoch,
evaluation or corruption) that :mod:`gcpbench.report.tables` lays out like the paper.

Datasets: every row carries the dataset label its run recorded (``synthetic``, ``imagenet``,
``... (subset)``) and a boolean ``comparable`` that is true only for full ImageNet (or COCO
for detection) data; the paper's numbers are compared only with comparable rows.
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import pandas as pd

from gcpbench.coco import COCO_METRICS
from gcpbench.errors import GcpbenchError
from gcpbench.robustness.benchmarks import NPY_BENCHMARKS, VARIANTS
from gcpbench.runs import RunDir, find_run_dirs

METRIC_COLUMNS: tuple[str, ...] = ("epoch", "val_top1", "val_top5")
_IMAGENET_NAMES = {"imagenet", "imagenet1k", "ilsvrc2012", "ilsvrc"}
_COCO_NAMES = {"coco", "coco2017", "mscoco"}
_MODEL_RE = re.compile(r"^(?P<arch>[a-z0-9]+?)_(?P<head>gap|gcp)(?P<dim>\d+)?$")
_BACKBONE_RE = re.compile(r"^(?P<backbone>resnet\d+)(?:_(?P<method>gap|gcp_d|gcp_m))?$")
_CHECKPOINT_KEYS = ("checkpoint", "ckpt", "weights")


class UnreadableFile(Exception):
    """A results file that cannot be used; the message says why."""


@dataclass(frozen=True)
class ModelId:
    """Architecture, head and GCP dimension of one model (None where unknown)."""

    arch: str | None
    head: str | None
    gcp_dim: int | None


@dataclass
class RunRecord:
    """Everything ``report`` uses from one run directory."""

    path: Path
    config: dict[str, Any]
    metrics: pd.DataFrame | None = None
    imagenet: dict[str, Any] | None = None
    c_summary: dict[str, Any] | None = None
    p_summary: dict[str, Any] | None = None
    variants: dict[str, dict[str, Any]] = field(default_factory=dict)  # eval/imagenet_<variant>.json by key
    npy: dict[str, dict[str, Any]] = field(default_factory=dict)  # eval/<cifar set>_summary.json by key
    detection: list[dict[str, Any]] = field(default_factory=list)
    has_landscape: bool = False
    plots: list[Path] = field(default_factory=list)
    name: str = ""
    owner: RunRecord | None = None  # the training run whose checkpoint this run evaluated (not detection)


@dataclass
class Collection:
    """The readable runs and one warning line per skipped run or file."""

    runs: list[RunRecord]
    warnings: list[str]


# ---------------------------------------------------------------- labels and identities

def _norm(label: str) -> str:
    return re.sub(r"[^a-z0-9]", "", label.lower())


def dataset_label(name: Any, subset: bool = False) -> str:
    """The dataset as shown in tables: ``synthetic``, ``imagenet``, ``imagenet (subset)``."""
    text = str(name) if name not in (None, "") else "unknown"
    return f"{text} (subset)" if subset else text


def is_imagenet(name: Any, subset: bool = False, suffix: str = "") -> bool:
    """True for full ImageNet data (``suffix`` 'c'/'p' also accepts ImageNet-C/-P names)."""
    if subset or not name:
        return False
    norm = _norm(str(name))
    if suffix and norm.endswith(suffix):
        norm = norm[: -len(suffix)]
    return norm in _IMAGENET_NAMES


def is_coco(name: Any) -> bool:
    """True for the COCO 2017 data the paper's detection numbers were measured on."""
    return bool(name) and _norm(str(name)) in _COCO_NAMES


def parse_model(name: str | None) -> ModelId:
    """``resnet18_gcp128`` -> ModelId('resnet18', 'gcp', 128); unknown parts are None."""
    match = _MODEL_RE.match((name or "").lower())
    if not match:
        return ModelId(None, None, None)
    head = match["head"]
    dim = int(match["dim"]) if match["dim"] else (256 if head == "gcp" else None)
    return ModelId(match["arch"], head, dim)


def model_id(config: dict[str, Any], model: str | None = None) -> ModelId:
    """The model of a run: the config's arch/head/gcp_dim, else parsed from its model name."""
    parsed = parse_model(model or config.get("model"))
    arch = config.get("arch") or parsed.arch
    head = (config.get("head") or parsed.head or "").lower() or None
    dim = config.get("gcp_dim") if config.get("gcp_dim") is not None else parsed.gcp_dim
    if head == "gcp" and dim is None:
        dim = 256
    return ModelId(str(arch).lower() if arch else None, head, int(dim) if head == "gcp" and dim is not None else None)


def _subset(*sources: dict[str, Any] | None) -> bool:
    return any(bool(source.get("subset")) for source in sources if source)


# ---------------------------------------------------------------- reading files

def _parse_jsonl(path: Path) -> tuple[list[dict[str, Any]], bool]:
    """Strict JSONL: only a torn final line (no newline: a crash mid-write) is left out, and
    said (the second value)."""
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise UnreadableFile(f"cannot read ({exc.__class__.__name__})") from None
    lines = text.split("\n")
    records = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            if number == len(lines):  # last line without a newline: torn write
                return records, True
            raise UnreadableFile(f"line {number} is not valid JSON") from None
        if not isinstance(record, dict):
            raise UnreadableFile(f"line {number} is not a JSON object")
        records.append(record)
    return records, False


def read_metrics(path: Path, notes: list[str] | None = None) -> pd.DataFrame:
    """A run's per-epoch metrics (metrics.jsonl, or metrics.csv), sorted by epoch.

    Raises :class:`UnreadableFile` for bad JSON, a missing column, non-numeric values or no
    finished epoch. A repeated epoch (a resumed run) keeps its last record. A torn last JSONL
    line is left out and a note appended to ``notes``.
    """
    if path.suffix == ".csv":
        try:
            frame = pd.read_csv(path)
        except (OSError, ValueError) as exc:
            raise UnreadableFile(f"cannot parse CSV ({exc})") from None
    else:
        records, torn = _parse_jsonl(path)
        if torn and notes is not None:
            notes.append(f"{path}: left out a torn last record (an interrupted write)")
        for number, record in enumerate(records, 1):
            missing = [c for c in METRIC_COLUMNS if c not in record]
            if missing:
                raise UnreadableFile(f"record {number} lacks {', '.join(missing)}")
        frame = pd.DataFrame.from_records(records)
    if frame.empty:
        raise UnreadableFile("no finished epoch")
    missing = [c for c in METRIC_COLUMNS if c not in frame.columns]
    if missing:
        raise UnreadableFile(f"missing column {', '.join(missing)}")
    for column in METRIC_COLUMNS:
        values = pd.to_numeric(frame[column], errors="coerce")
        if values.isna().any():
            raise UnreadableFile(f"column {column} has missing or non-numeric values")
        frame[column] = values
    frame["epoch"] = frame["epoch"].astype(int)
    return frame.drop_duplicates("epoch", keep="last").sort_values("epoch").reset_index(drop=True)


def _read_json(path: Path, required: Iterable[str]) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError) as exc:
        raise UnreadableFile(f"cannot read ({exc.__class__.__name__})") from None
    except json.JSONDecodeError as exc:
        raise UnreadableFile(f"bad JSON ({exc.msg}, line {exc.lineno})") from None
    if not isinstance(data, dict):
        raise UnreadableFile("not a JSON object")
    missing = [key for key in required if key not in data]
    if missing:
        raise UnreadableFile(f"missing key {', '.join(missing)}")
    return data


_EVAL_FILES: dict[str, tuple[str, ...]] = {
    "imagenet.json": ("top1", "top5"),
    "imagenet_c_summary.json": ("mCE", "relative_mCE"),
    "imagenet_p_summary.json": ("mFP", "mT5D"),
}


def read_run_metrics(run: RunDir, warnings: list[str]) -> pd.DataFrame | None:
    """The run's epochs from metrics.jsonl and metrics.csv. Where the two disagree (a crash
    between their writes, a torn line) the one with more epochs is used and a warning says so."""
    frames: dict[str, pd.DataFrame] = {}
    problems: dict[str, str] = {}
    for path in (run.metrics_jsonl, run.metrics_csv):
        if path.is_file():
            try:
                frames[path.name] = read_metrics(path, warnings)
            except UnreadableFile as exc:
                problems[path.name] = f"{path.name} unreadable or partial ({exc})"
    if not frames:
        if problems:
            raise UnreadableFile(next(iter(problems.values())))
        return None
    for name, problem in problems.items():
        warnings.append(f"run {run.path}: ignored {problem}; using {next(iter(frames))}")
    last = {name: int(frame["epoch"].iloc[-1]) for name, frame in frames.items()}
    chosen = max(frames, key=lambda name: (last[name], name.endswith(".jsonl")))
    if len(set(last.values())) > 1:
        others = ", ".join(f"{name} ends at epoch {epoch}" for name, epoch in last.items())
        warnings.append(f"run {run.path}: {others}; using {chosen}")
    return frames[chosen]


def foreign_result(config: dict[str, Any], data: dict[str, Any]) -> str | None:
    """Why an evaluation result does not belong to the run whose config is ``config`` (another
    model or another checkpoint), or None when it does or cannot be told."""
    owner, model = config.get("model"), data.get("model")
    if owner and model and owner != model:
        return f"results of {model} in a run of {owner}"
    identity = data.get("identity")
    stored = config.get("checkpoint_sha256")
    if isinstance(identity, dict) and stored and identity.get("sha256") not in (None, stored):
        return (f"results of checkpoint {str(identity.get('sha256'))[:12]} in a run of checkpoint {stored[:12]}")
    run_id = config.get("run_id")
    if isinstance(identity, dict) and run_id and identity.get("run_id") not in (None, run_id):
        return f"results of a checkpoint of another training run ({identity.get('run_id')})"
    return None


def read_run(run: RunDir, warnings: list[str]) -> RunRecord | None:
    """One run directory as a record, or None (with a warning) when it must be skipped."""
    try:
        config = run.read_config()
    except GcpbenchError:
        warnings.append(f"skipped run {run.path}: config.json is not valid JSON")
        return None
    if not isinstance(config, dict):
        warnings.append(f"skipped run {run.path}: config.json is not a JSON object")
        return None
    record = RunRecord(run.path, config)
    try:
        record.metrics = read_run_metrics(run, warnings)
    except UnreadableFile as exc:
        warnings.append(f"skipped run {run.path}: {exc}")
        return None

    def load(name: str, required: Iterable[str]) -> dict[str, Any] | None:
        path = run.eval / name
        if not path.is_file():
            return None
        try:
            data = _read_json(path, required)
        except UnreadableFile as exc:
            warnings.append(f"skipped file {path}: {exc}")
            return None
        foreign = foreign_result(config, data)
        if foreign:
            warnings.append(f"skipped file {path}: {foreign}")
            return None
        return data

    record.imagenet = load("imagenet.json", _EVAL_FILES["imagenet.json"])
    record.c_summary = load("imagenet_c_summary.json", _EVAL_FILES["imagenet_c_summary.json"])
    record.p_summary = load("imagenet_p_summary.json", _EVAL_FILES["imagenet_p_summary.json"])
    for key, variant in VARIANTS.items():
        data = load(variant.result_file, ("top1", "top5"))
        if data is not None:
            record.variants[key] = data
    for key, bench in NPY_BENCHMARKS.items():
        data = load(bench.files[1], ("benchmark",))
        if data is not None:
            record.npy[key] = data
    if run.eval.is_dir():
        for path in sorted(run.eval.glob("detection_*.json")):
            data = load(path.name, ("framework", "backbone", "bbox"))
            if data is not None:
                record.detection.append(data)
    record.has_landscape = run.landscape.is_file()
    record.plots = sorted(run.plots.glob("*.png")) if run.plots.is_dir() else []
    return record


# ---------------------------------------------------------------- collection

def _display_names(records: list[RunRecord]) -> None:
    names = [r.path.name for r in records]
    for record in records:
        if names.count(record.path.name) > 1:
            try:
                record.name = os.path.relpath(record.path)
            except ValueError:
                record.name = str(record.path)
        else:
            record.name = record.path.name


def _link_owners(records: list[RunRecord]) -> None:
    """Point evaluation-only runs at the training run whose checkpoint they evaluated."""
    by_path = {r.path.resolve(): r for r in records}
    for record in records:
        sources = [record.imagenet or {}, record.c_summary or {}, record.p_summary or {}, *record.variants.values(), *record.npy.values(),
                   record.config]
        for source in sources:
            checkpoint = next((source[k] for k in _CHECKPOINT_KEYS if isinstance(source.get(k), str)), None)
            if not checkpoint:
                continue
            path = Path(checkpoint).expanduser()
            parent = path.parent.parent if path.parent.name == "checkpoints" else path.parent
            owner = by_path.get(parent.resolve())
            if owner is not None and owner is not record:
                record.owner = owner
                break


def collect(paths: Iterable[str | os.PathLike]) -> Collection:
    """Read every run directory at or below ``paths``.

    Raises GcpbenchError when a path does not exist or no run directory is found.
    """
    paths = [Path(p) for p in paths]
    for path in paths:
        if not path.exists():
            raise GcpbenchError(f"'{path}' does not exist: pass run directories or a folder that holds them")
    warnings: list[str] = []
    records = [r for run in find_run_dirs(*paths) if (r := read_run(run, warnings)) is not None]
    if not records and not warnings:
        where = ", ".join(str(p) for p in paths)
        raise GcpbenchError(f"no run directories under {where}: run `gcpbench train` first or pass run directories")
    _display_names(records)
    _link_owners(records)
    return Collection(records, warnings)


# ---------------------------------------------------------------- frames

def _identity(record: RunRecord, model: str | None = None) -> dict[str, Any]:
    """Run name, model identity and schedule (the owner's schedule for evaluation runs)."""
    subject = record.owner or record
    ident = model_id(record.config, model)
    if ident.arch is None and record.owner is not None:
        ident = model_id(record.owner.config)
    return {
        "run": subject.name,
        "arch": ident.arch,
        "head": ident.head,
        "gcp_dim": ident.gcp_dim,
        "schedule": subject.config.get("schedule") or record.config.get("schedule"),
    }


def _imagenet_row(record: RunRecord, evaluation: dict[str, Any], source: str) -> dict[str, Any]:
    subset = _subset(evaluation, record.config)
    dataset = evaluation.get("dataset") or record.config.get("dataset")
    return {
        **_identity(record, evaluation.get("model")),
        "dataset": dataset_label(dataset, subset),
        "comparable": is_imagenet(dataset, subset),
        "epochs": len(record.owner.metrics) if record.owner is not None and record.owner.metrics is not None else pd.NA,
        "top1": float(evaluation["top1"]),
        "top5": float(evaluation["top5"]),
        "source": source,
    }


TRAINING_COLUMNS = ("run", "arch", "head", "gcp_dim", "schedule", "dataset", "comparable",
                    "epochs", "top1", "top5", "source")


def training_frame(collection: Collection) -> pd.DataFrame:
    """One row per trained (or ImageNet-evaluated) model: final top-1/top-5 and their source.

    A training run's numbers are its last epoch's val metrics, or ``eval/imagenet.json`` when
    the run has one (its own, else one from an evaluation run of its checkpoint).
    """
    rows = []
    used: set[int] = set()
    for record in collection.runs:
        if record.metrics is None:
            continue
        last = record.metrics.iloc[-1]
        linked = [e for e in collection.runs if e.owner is record and e.metrics is None and e.imagenet]
        if record.imagenet is not None:
            row = _imagenet_row(record, record.imagenet, "eval/imagenet.json")
        elif linked:
            used.add(id(linked[0]))
            row = _imagenet_row(record, linked[0].imagenet, f"eval/imagenet.json of {linked[0].name}")
        else:
            subset = _subset(record.config)
            row = {**_identity(record), "dataset": dataset_label(record.config.get("dataset"), subset),
                   "comparable": is_imagenet(record.config.get("dataset"), subset),
                   "top1": float(last["val_top1"]), "top5": float(last["val_top5"]),
                   "source": f"metrics.jsonl epoch {int(last['epoch'])}"}
        row["epochs"] = int(last["epoch"])
        rows.append(row)
    for record in collection.runs:
        if record.metrics is None and record.imagenet is not None and id(record) not in used:
            name = "eval/imagenet.json" if record.owner is None else f"eval/imagenet.json of {record.name}"
            rows.append(_imagenet_row(record, record.imagenet, name))
    frame = pd.DataFrame(rows, columns=list(TRAINING_COLUMNS))
    frame["gcp_dim"] = frame["gcp_dim"].astype("Int64")
    frame["epochs"] = frame["epochs"].astype("Int64")
    return frame


def curves_frame(collection: Collection) -> pd.DataFrame:
    """Per-epoch validation curves: run, arch, head, gcp_dim, schedule, dataset, epoch, val_top1, ..."""
    frames = []
    for record in collection.runs:
        if record.metrics is None:
            continue
        frame = record.metrics.copy()
        for key, value in _identity(record).items():
            frame[key] = value
        frame["dataset"] = dataset_label(record.config.get("dataset"), _subset(record.config))
        frames.append(frame)
    if not frames:
        return pd.DataFrame(columns=["run", "arch", "head", "gcp_dim", "schedule", "dataset", *METRIC_COLUMNS])
    frame = pd.concat(frames, ignore_index=True)
    frame["gcp_dim"] = frame["gcp_dim"].astype("Int64")
    return frame


def robustness_frame(collection: Collection) -> pd.DataFrame:
    """One row per evaluated model: mCE, relative_mCE (ImageNet-C), mFP, mT5D (ImageNet-P).

    ImageNet-C and -P results of the same checkpoint's run (or run directory) share a row.
    ``CE`` / ``extra_CE`` hold the per-corruption dictionaries.
    """
    rows: dict[tuple[str, Any], dict[str, Any]] = {}
    for record in collection.runs:
        for kind, summary in (("c", record.c_summary), ("p", record.p_summary)):
            if summary is None:
                continue
            ident = _identity(record, summary.get("model"))
            key = (ident["run"], (ident["arch"], ident["head"], ident["gcp_dim"]))
            row = rows.setdefault(key, {**ident, "dataset_c": None, "dataset_p": None, "comparable_c": False,
                                        "comparable_p": False, "CE": {}, "extra_CE": {}})
            subset = _subset(summary, record.config)
            dataset = summary.get("dataset") or record.config.get("dataset")
            row[f"dataset_{kind}"] = dataset_label(dataset, subset)
            row[f"comparable_{kind}"] = is_imagenet(dataset, subset, suffix=kind)
            metrics = ("mCE", "relative_mCE") if kind == "c" else ("mFP", "mT5D")
            for metric in metrics:
                row[metric] = _number(summary.get(metric))
            if kind == "c":
                row["CE"] = {k: _number(v) for k, v in (summary.get("CE") or {}).items()}
                row["extra_CE"] = {k: _number(v) for k, v in (summary.get("extra_CE") or {}).items()}
    columns = ["run", "arch", "head", "gcp_dim", "schedule", "dataset_c", "comparable_c", "mCE", "relative_mCE",
               "dataset_p", "comparable_p", "mFP", "mT5D", "CE", "extra_CE"]
    frame = pd.DataFrame(list(rows.values()), columns=columns)
    frame["gcp_dim"] = frame["gcp_dim"].astype("Int64")
    return frame


def variants_frame(collection: Collection) -> pd.DataFrame:
    """One row per ImageNet-variant result (``eval/imagenet_<variant>.json``): run, model
    identity, variant title, class folders evaluated, whether the tree was complete, top-1 / top-5."""
    rows = []
    for record in collection.runs:
        for key, result in record.variants.items():
            rows.append({**_identity(record, result.get("model")), "variant": VARIANTS[key].title,
                         "classes": result.get("class_folders"), "complete": bool(result.get("complete")),
                         "top1": _number(result.get("top1")), "top5": _number(result.get("top5"))})
    columns = ["run", "arch", "head", "gcp_dim", "schedule", "variant", "classes", "complete", "top1", "top5"]
    frame = pd.DataFrame(rows, columns=columns)
    frame["gcp_dim"] = frame["gcp_dim"].astype("Int64")
    return frame


def cifar_frame(collection: Collection) -> pd.DataFrame:
    """One row per CIFAR robustness result (``eval/cifar10_c_summary.json`` ...): run, model
    identity, benchmark, whether it is partial, mean error (-C) or mFP / mT5D (-P), unnormalised."""
    rows = []
    for record in collection.runs:
        for key, result in record.npy.items():
            rows.append({**_identity(record, result.get("model")), "benchmark": NPY_BENCHMARKS[key].title,
                         "partial": bool(result.get("partial")), "mean_error": _number(result.get("mean_error")),
                         "mFP": _number(result.get("mFP")), "mT5D": _number(result.get("mT5D"))})
    columns = ["run", "arch", "head", "gcp_dim", "schedule", "benchmark", "partial", "mean_error", "mFP", "mT5D"]
    frame = pd.DataFrame(rows, columns=columns)
    frame["gcp_dim"] = frame["gcp_dim"].astype("Int64")
    return frame


def _number(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def detection_frame(collection: Collection) -> pd.DataFrame:
    """One row per detection result and task: framework, backbone, method, task, dataset, AP..."""
    rows = []
    for record in collection.runs:
        for result in record.detection:
            match = _BACKBONE_RE.match(str(result.get("backbone", "")).lower())
            backbone = match["backbone"] if match else str(result.get("backbone"))
            method = result.get("method") or (match["method"] if match else None)
            dataset = result.get("dataset") or record.config.get("dataset")
            for task in ("bbox", "segm"):
                values = result.get(task)
                if not isinstance(values, dict):
                    continue
                rows.append({"run": record.name, "framework": result["framework"],
                             "backbone": backbone, "method": method, "task": task,
                             "dataset": dataset_label(dataset), "comparable": is_coco(dataset),
                             **{m: _number(values.get(m)) for m in COCO_METRICS}})
    columns = ["run", "framework", "backbone", "method", "task", "dataset", "comparable", *COCO_METRICS]
    return pd.DataFrame(rows, columns=columns)


def landscape_runs(collection: Collection) -> list[Path]:
    """Run directories that hold a ``landscape.csv``."""
    return [r.path for r in collection.runs if r.has_landscape]
