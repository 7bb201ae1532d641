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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import pandas as pd

from gcpbench.coco import COCO_METRICS
from gcpbench.errors import GcpbenchError
from gcpbench.records import (CifarResult, CorruptionResult, DetectionResult, EvalConfig, EvalResult, ImageNetResult,
                              PerturbationResult, RunConfig, TrainConfig, UnreadableRecord, VariantResult, read_json_object,
                              run_config_from_json)
from gcpbench.report.status import stale_warning, status
from gcpbench.robustness.benchmarks import NPY_BENCHMARKS, VARIANTS
from gcpbench.runs import RunDir, find_run_dirs

METRIC_COLUMNS: tuple[str, ...] = ("epoch", "val_top1", "val_top5")

UnreadableFile = UnreadableRecord  # a results file that cannot be used; the message says why


@dataclass(frozen=True)
class ModelId:
    """Architecture, head and GCP dimension of one model (None where unknown)."""

    arch: str | None
    head: str | None
    gcp_dim: int | None


@dataclass
class RunRecord:
    """Everything ``report`` uses from one run directory, as the records of :mod:`gcpbench.records`."""

    path: Path
    config: RunConfig  # an empty EvalConfig for a run without config.json
    metrics: pd.DataFrame | None = None
    imagenet: ImageNetResult | None = None
    c_summary: CorruptionResult | None = None
    p_summary: PerturbationResult | None = None
    variants: dict[str, VariantResult] = field(default_factory=dict)  # eval/imagenet_<variant>.json by key
    npy: dict[str, CifarResult] = field(default_factory=dict)  # eval/<cifar set>_summary.json by key
    detection: list[DetectionResult] = field(default_factory=list)
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

def _manifest_name(name: Any) -> str | None:
    """The dataset's canonical name (:func:`gcpbench.data.manifests.canonical_name`), None if unknown."""
    from gcpbench.data.manifests import canonical_name

    try:
        return canonical_name(str(name)) if name else None
    except GcpbenchError:
        return None


def dataset_label(name: Any, subset: bool = False) -> str:
    """The dataset as shown in tables: ``synthetic``, ``imagenet``, ``imagenet (subset)``."""
    text = str(name) if name not in (None, "") else "unknown"
    return f"{text} (subset)" if subset else text


def is_imagenet(name: Any, subset: bool = False, suffix: str = "") -> bool:
    """True for full ImageNet data (``suffix`` 'c'/'p' also accepts ImageNet-C/-P names)."""
    if subset:
        return False
    return _manifest_name(name) in ({"imagenet", f"imagenet-{suffix}"} if suffix else {"imagenet"})


def is_coco(name: Any) -> bool:
    """True for the COCO 2017 data the paper's detection numbers were measured on."""
    return _manifest_name(name) == "coco"


def parse_model(name: str | None) -> ModelId:
    """The architecture, head and GCP dimension of a model name, from the model registry
    (``resnet18_gcp128`` -> ModelId('resnet18', 'gcp', 128)); all None for an unknown name."""
    from gcpbench.models.registry import model_identity

    try:
        info = model_identity(name) if name else None
    except GcpbenchError:
        info = None
    if info is None:
        return ModelId(None, None, None)
    return ModelId(info.arch.lower(), info.head.kind, info.head.dim if info.head.is_gcp else None)


def model_id(config: RunConfig, model: str | None = None) -> ModelId:
    """The model of a run: its config's arch / head / GCP dim, completed from the model name
    (``model``, else the config's) through the registry."""
    parsed = parse_model(model or config.model)
    head = (config.head or parsed.head or "").lower() or None
    dim = config.gcp_dim if config.gcp_dim is not None else parsed.gcp_dim
    if head == "gcp" and dim is None:
        dim = 256
    arch = config.arch or parsed.arch
    return ModelId(str(arch).lower() if arch else None, head, int(dim) if head == "gcp" and dim is not None else None)


def _subset(*sources: RunConfig | EvalResult | None) -> bool:
    return any(bool(getattr(source, "subset", False)) for source in sources if source is not None)


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


def _read_config(run: RunDir) -> RunConfig:
    """The run's typed config (an empty one when it has no config.json)."""
    if not run.config.is_file():
        return EvalConfig()
    return run_config_from_json(read_json_object(run.config))


def read_run(run: RunDir, warnings: list[str]) -> RunRecord | None:
    """One run directory as a record, or None (with a warning) when it must be skipped."""
    try:
        config = _read_config(run)
    except UnreadableRecord as exc:
        warnings.append(f"skipped run {run.path}: config.json {exc}")
        return None
    record = RunRecord(run.path, config)
    try:
        record.metrics = read_run_metrics(run, warnings)
    except UnreadableFile as exc:
        warnings.append(f"skipped run {run.path}: {exc}")
        return None

    def load(kind: type[EvalResult], name: str | None = None) -> Any:
        path = run.eval / (name or kind.FILE)
        try:
            result = run.read_result(kind, name)
        except UnreadableRecord as exc:
            warnings.append(f"skipped file {path}: {exc}")
            return None
        foreign = result.foreign_to(config) if result is not None else None
        if foreign:
            warnings.append(f"skipped file {path}: {foreign}")
            return None
        if result is not None and (stale := stale_warning(result, path)) is not None:
            warnings.append(stale)
        return result

    record.imagenet = load(ImageNetResult)
    record.c_summary = load(CorruptionResult)
    record.p_summary = load(PerturbationResult)
    for key, variant in VARIANTS.items():
        if (result := load(VariantResult, variant.result_file)) is not None:
            record.variants[key] = result
    for key, bench in NPY_BENCHMARKS.items():
        if (result := load(CifarResult, bench.files[1])) is not None:
            record.npy[key] = result
    if run.eval.is_dir():
        for path in sorted(run.eval.glob("detection_*.json")):
            if (result := load(DetectionResult, path.name)) is not None:
                record.detection.append(result)
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


def _owner_of(source: RunConfig | EvalResult | None, by_run_id: dict[str, RunRecord],
              by_path: dict[Path, RunRecord]) -> RunRecord | None:
    """The training run that wrote the checkpoint ``source`` names: by the training run id its
    identity carries, else by the checkpoint's place (``RUN/checkpoints/x.pt``)."""
    identity = getattr(source, "identity", None)
    if identity is not None and identity.producer.run_id in by_run_id:
        return by_run_id[identity.producer.run_id]
    checkpoint = getattr(source, "checkpoint", None)
    if not isinstance(checkpoint, str) or not checkpoint:
        return None
    path = Path(checkpoint).expanduser()
    return by_path.get((path.parent.parent if path.parent.name == "checkpoints" else path.parent).resolve())


def _link_owners(records: list[RunRecord]) -> None:
    """Point evaluation-only runs at the training run whose checkpoint they evaluated."""
    by_path = {r.path.resolve(): r for r in records}
    by_run_id = {r.config.run_id: r for r in records if isinstance(r.config, TrainConfig) and r.config.run_id}
    for record in records:
        sources = [record.imagenet, record.c_summary, record.p_summary, *record.variants.values(),
                   *record.npy.values(), record.config]
        for source in sources:
            owner = _owner_of(source, by_run_id, by_path)
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
        "schedule": subject.config.schedule or record.config.schedule,
    }


def _imagenet_row(record: RunRecord, evaluation: ImageNetResult, source: str) -> dict[str, Any]:
    subset = _subset(evaluation, record.config)
    dataset = evaluation.dataset or record.config.dataset
    return {
        **_identity(record, evaluation.model),
        "dataset": dataset_label(dataset, subset),
        "comparable": is_imagenet(dataset, subset),
        "epochs": len(record.owner.metrics) if record.owner is not None and record.owner.metrics is not None else pd.NA,
        "top1": float(evaluation.top1),
        "top5": float(evaluation.top5),
        "source": source,
        "status": status(evaluation),
    }


TRAINING_COLUMNS = ("run", "arch", "head", "gcp_dim", "schedule", "dataset", "comparable",
                    "epochs", "top1", "top5", "source", "status")


def is_finetune(record: RunRecord) -> bool:
    """A ``gcpbench finetune`` run (its result is in the fine-grained table, not the ImageNet ones)."""
    return record.config.command == "finetune"


def training_frame(collection: Collection) -> pd.DataFrame:
    """One row per trained (or ImageNet-evaluated) model: final top-1/top-5 and their source.

    A training run's numbers are its last epoch's val metrics, or ``eval/imagenet.json`` when
    the run has one (its own, else one from an evaluation run of its checkpoint).
    """
    rows = []
    used: set[int] = set()
    for record in collection.runs:
        if record.metrics is None or is_finetune(record):  # fine-tunings: the fgvc table
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
            row = {**_identity(record), "dataset": dataset_label(record.config.dataset, subset),
                   "comparable": is_imagenet(record.config.dataset, subset),
                   "top1": float(last["val_top1"]), "top5": float(last["val_top5"]),
                   "source": f"metrics.jsonl epoch {int(last['epoch'])}", "status": ""}
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
        if record.metrics is None or is_finetune(record):
            continue
        frame = record.metrics.copy()
        for key, value in _identity(record).items():
            frame[key] = value
        frame["dataset"] = dataset_label(record.config.dataset, _subset(record.config))
        frames.append(frame)
    if not frames:
        return pd.DataFrame(columns=["run", "arch", "head", "gcp_dim", "schedule", "dataset", *METRIC_COLUMNS])
    frame = pd.concat(frames, ignore_index=True)
    frame["gcp_dim"] = frame["gcp_dim"].astype("Int64")
    return frame


def robustness_frame(collection: Collection) -> pd.DataFrame:
    """One row per evaluated model: mCE, relative_mCE (ImageNet-C), mFP, mT5D (ImageNet-P).

    ImageNet-C and -P results of the same checkpoint's run (or run directory) share a row.
    ``CE`` / ``extra_CE`` hold the per-corruption dictionaries; ``status_c`` / ``status_p`` the
    flags of each result (:func:`gcpbench.report.status.status`: stale, partial, ...).
    """
    rows: dict[tuple[str, Any], dict[str, Any]] = {}
    for record in collection.runs:
        for kind, summary in (("c", record.c_summary), ("p", record.p_summary)):
            if summary is None:
                continue
            ident = _identity(record, summary.model)
            key = (ident["run"], (ident["arch"], ident["head"], ident["gcp_dim"]))
            row = rows.setdefault(key, {**ident, "dataset_c": None, "dataset_p": None, "comparable_c": False,
                                        "comparable_p": False, "status_c": "", "status_p": "", "CE": {},
                                        "extra_CE": {}})
            row[f"status_{kind}"] = status(summary)
            subset = _subset(summary, record.config)
            dataset = summary.dataset or record.config.dataset
            native = summary.extra.get("geometry_mode") == "native"  # make-c / make-p --native-size
            row[f"dataset_{kind}"] = dataset_label(dataset, subset) + (" (native size)" if native else "")
            row[f"comparable_{kind}"] = is_imagenet(dataset, subset, suffix=kind)
            metrics = ("mCE", "relative_mCE") if kind == "c" else ("mFP", "mT5D")
            for metric in metrics:
                row[metric] = _number(getattr(summary, metric))
            if isinstance(summary, CorruptionResult):
                row["CE"] = {k: _number(v) for k, v in (summary.CE or {}).items()}
                row["extra_CE"] = {k: _number(v) for k, v in (summary.extra_CE or {}).items()}
    columns = ["run", "arch", "head", "gcp_dim", "schedule", "dataset_c", "comparable_c", "status_c", "mCE",
               "relative_mCE", "dataset_p", "comparable_p", "status_p", "mFP", "mT5D", "CE", "extra_CE"]
    frame = pd.DataFrame(list(rows.values()), columns=columns)
    frame["gcp_dim"] = frame["gcp_dim"].astype("Int64")
    return frame


def variants_frame(collection: Collection) -> pd.DataFrame:
    """One row per ImageNet-variant result (``eval/imagenet_<variant>.json``): run, model
    identity, variant title, class folders evaluated, whether the tree was complete, top-1 / top-5."""
    rows = []
    for record in collection.runs:
        for key, result in record.variants.items():
            rows.append({**_identity(record, result.model), "variant": VARIANTS[key].title,
                         "classes": result.class_folders, "complete": bool(result.complete),
                         "top1": _number(result.top1), "top5": _number(result.top5), "status": status(result)})
    columns = ["run", "arch", "head", "gcp_dim", "schedule", "variant", "classes", "complete", "top1", "top5",
               "status"]
    frame = pd.DataFrame(rows, columns=columns)
    frame["gcp_dim"] = frame["gcp_dim"].astype("Int64")
    return frame


def cifar_frame(collection: Collection) -> pd.DataFrame:
    """One row per CIFAR robustness result (``eval/cifar10_c_summary.json`` ...): run, model
    identity, benchmark, whether it is partial, mean error (-C) or mFP / mT5D (-P), unnormalised."""
    rows = []
    for record in collection.runs:
        for key, result in record.npy.items():
            rows.append({**_identity(record, result.model), "benchmark": NPY_BENCHMARKS[key].title,
                         "partial": bool(result.partial), "mean_error": _number(result.mean_error),
                         "mFP": _number(result.mFP), "mT5D": _number(result.mT5D), "status": status(result)})
    columns = ["run", "arch", "head", "gcp_dim", "schedule", "benchmark", "partial", "mean_error", "mFP", "mT5D",
               "status"]
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
            dataset = result.dataset or record.config.dataset
            for task in ("bbox", "segm"):
                values = getattr(result, task)
                if not isinstance(values, dict):
                    continue
                rows.append({"run": record.name, "framework": result.framework,
                             "backbone": result.backbone, "method": result.method, "task": task,
                             "dataset": dataset_label(dataset), "comparable": is_coco(dataset),
                             **{m: _number(values.get(m)) for m in COCO_METRICS}, "status": status(result)})
    columns = ["run", "framework", "backbone", "method", "task", "dataset", "comparable", *COCO_METRICS, "status"]
    return pd.DataFrame(rows, columns=columns)


def landscape_runs(collection: Collection) -> list[Path]:
    """Run directories that hold a ``landscape.csv``."""
    return [r.path for r in collection.runs if r.has_landscape]
