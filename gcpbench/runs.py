"""The run directory: one layout that every command writes and ``report`` reads.

::

    RUN/
      config.json              resolved configuration (command, model, dataset, schedule, ...)
      metrics.jsonl            one record per epoch (training), also as metrics.csv
      checkpoints/last.pt      gcpbench checkpoints, written atomically
      checkpoints/best.pt
      eval/imagenet.json       top-1 / top-5 of eval-imagenet
      eval/imagenet_c.csv      error per corruption x severity;  eval/imagenet_c_summary.json
      eval/imagenet_p.csv      FP / T5D per perturbation;        eval/imagenet_p_summary.json
      eval/imagenet_<variant>.json  top-1 / top-5 on ImageNetV2, -Sketch, -R, -A (v2, sketch, r, a)
      eval/cifar10_c.csv       CIFAR-10-C / -100-C / -10-P (unnormalised); eval/cifar10_c_summary.json, ...
      eval/detection_<framework>.json   COCO AP table of detect
      landscape.csv            optimisation-landscape probe records
      landscape_eta.csv        a single probe's loss / gradient per step size (landscape --ckpt)
      plots/                   PNG figures
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, TypeVar

from gcpbench.errors import GcpbenchError
from gcpbench.io import atomic_write_json, atomic_write_text, remove_stale_temps

if TYPE_CHECKING:
    from gcpbench.identity import Producer
    from gcpbench.records import EpochRecord, EvalResult, RunConfig

    ResultT = TypeVar("ResultT", bound=EvalResult)

DEFAULT_ROOT = Path(os.environ.get("GCPBENCH_RUNS", "runs"))


@dataclass(frozen=True)
class RunDir:
    """Paths of one run directory (``path`` may be given as a string)."""

    path: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))

    @property
    def config(self) -> Path:
        return self.path / "config.json"

    @property
    def metrics_jsonl(self) -> Path:
        return self.path / "metrics.jsonl"

    @property
    def metrics_csv(self) -> Path:
        return self.path / "metrics.csv"

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    @property
    def last_checkpoint(self) -> Path:
        return self.checkpoints / "last.pt"

    @property
    def best_checkpoint(self) -> Path:
        return self.checkpoints / "best.pt"

    @property
    def eval(self) -> Path:
        return self.path / "eval"

    @property
    def landscape(self) -> Path:
        return self.path / "landscape.csv"

    @property
    def landscape_eta(self) -> Path:
        """Per-step-size values of a single probe (``gcpbench landscape --ckpt``)."""
        return self.path / "landscape_eta.csv"

    @property
    def plots(self) -> Path:
        return self.path / "plots"

    def eval_file(self, name: str) -> Path:
        """A file under ``eval/`` (the folder is created)."""
        self.eval.mkdir(parents=True, exist_ok=True)
        return self.eval / name

    def plot_file(self, name: str) -> Path:
        """A file under ``plots/`` (the folder is created)."""
        self.plots.mkdir(parents=True, exist_ok=True)
        return self.plots / name

    def write_config(self, config: RunConfig | dict[str, Any]) -> None:
        """Write the configuration (a :mod:`gcpbench.records` config, or its JSON) atomically."""
        atomic_write_json(self.config, config if isinstance(config, dict) else config.to_json())

    def read_config(self) -> dict[str, Any]:
        """The run's configuration as stored ({} when none was written)."""
        if not self.config.is_file():
            return {}
        try:
            data = json.loads(self.config.read_text())
        except json.JSONDecodeError as exc:
            raise GcpbenchError(f"run directory '{self.path}' has an unreadable config.json ({exc.msg})") from None
        if not isinstance(data, dict):
            raise GcpbenchError(f"run directory '{self.path}' has a config.json that is not a JSON object")
        return data

    def run_config(self) -> RunConfig | None:
        """The typed configuration (:class:`~gcpbench.records.TrainConfig` or
        :class:`~gcpbench.records.EvalConfig`); None when none was written."""
        from gcpbench.records import run_config_from_json

        data = self.read_config()
        return run_config_from_json(data) if data else None

    def read_result(self, kind: type[ResultT], name: str | None = None) -> ResultT | None:
        """The result ``eval/<name>`` (default: the kind's own file) as a ``kind`` record; None
        when absent. An unreadable file raises :class:`~gcpbench.records.UnreadableRecord`."""
        path = self.eval / (name or kind.FILE)
        return kind.read(path) if path.is_file() else None

    def write_result(self, result: EvalResult) -> Path:
        """Write ``result`` atomically to its file under ``eval/``; returns the path."""
        path = self.eval_file(result.file_name)
        atomic_write_json(path, result.to_json())
        return path

    def write_epochs(self, records: list[EpochRecord]) -> None:
        """metrics.jsonl and metrics.csv, each replaced atomically and both from the same records
        (a crash between the two leaves each file whole)."""
        from gcpbench.records import EpochRecord

        atomic_write_text(self.metrics_jsonl, "".join(json.dumps(r.to_json()) + "\n" for r in records))
        rows = [",".join(EpochRecord.COLUMNS)] + [",".join(repr(getattr(r, k)) for k in EpochRecord.COLUMNS)
                                                  for r in records]
        atomic_write_text(self.metrics_csv, "\n".join(rows) + "\n")


def write_eval_config(run: RunDir, config: dict[str, Any]) -> None:
    """Write ``config.json`` for a fresh evaluation run (``command``, ``model`` and what else
    ``config`` holds, plus the model's arch / head / GCP dim); a run that has one keeps it."""
    if run.config.is_file():
        return
    from gcpbench.models.registry import model_identity
    from gcpbench.provenance import provenance
    from gcpbench.records import EvalConfig

    info = model_identity(config["model"], config.get("gcp_options"))
    gcp = {"gcp_norm": info.head.norm, "gcp_options": info.head.gcp_options()} if info.head.is_gcp else {}
    run.write_config(EvalConfig.from_json({"provenance": provenance(device=config.get("device")), **config,
                                           "model": info.name, "arch": info.arch, "head": info.head.kind,
                                           "gcp_dim": info.head.dim if info.head.is_gcp else None, **gcp,
                                           "schedule": None}))


def _inside(path: str, folder: Path) -> bool:
    return Path(path).parent == folder.resolve()


def check_run_accepts(run_path: str | os.PathLike, config: RunConfig | None, producer: Producer, what: str) -> None:
    """Refuse (one line) to file ``what`` of ``producer`` into a run directory of another model,
    of another training run, or of another checkpoint. ``config`` is the run's typed config.json
    (None for a new directory, which accepts anything)."""
    from gcpbench.records import TrainConfig

    if config is None:
        return
    run_path = Path(run_path)
    elsewhere = "write them to another directory with --out"
    owner = config.model
    if owner and owner != producer.model:
        raise GcpbenchError(f"'{run_path}' holds results of {owner}; {what} of {producer.model} (checkpoint "
                            f"'{producer.checkpoint}') cannot be filed there: {elsewhere}")
    if isinstance(config, TrainConfig):
        own = (producer.run_id is not None and producer.run_id == config.run_id) or \
            _inside(producer.checkpoint, run_path / "checkpoints")
        if not own:
            raise GcpbenchError(f"'{run_path}' is a training run and '{producer.checkpoint}' is not one of its "
                                f"checkpoints; {what} of it cannot be filed there: {elsewhere}")
        return
    stored = config.checkpoint_sha256
    if stored and stored != producer.sha256:
        raise GcpbenchError(f"'{run_path}' holds results of checkpoint {stored[:12]} ('{config.checkpoint}'); "
                            f"{what} of checkpoint {producer.sha256[:12]} ('{producer.checkpoint}') cannot be filed "
                            f"there: {elsewhere}")


@contextlib.contextmanager
def result_writer(run: RunDir, result: str, files: tuple[str, ...], producer: Producer, what: str,
                  eval_config: dict[str, Any]) -> Iterator[RunDir]:
    """Write result ``result`` (e.g. ``imagenet_c``) of ``producer`` into ``run``: hold its writer
    lock, refuse a run of another model or checkpoint (one line), write ``config.json`` for a
    fresh evaluation run (with the checkpoint's fingerprint) and remove the temporary files that
    a killed writer left of this result's ``files`` (under ``eval/``)."""
    from gcpbench.runlock import writer_lock

    run.path.mkdir(parents=True, exist_ok=True)
    with writer_lock(run.path, result):
        check_run_accepts(run.path, run.run_config(), producer, what)
        gcp = {k: v for k, v in (producer.gcp or {}).items() if k != "norm"}
        write_eval_config(run, {**eval_config, "model": producer.model, "checkpoint": producer.checkpoint,
                                "checkpoint_sha256": producer.sha256, **({"gcp_options": gcp} if gcp else {})})
        remove_stale_temps(run.eval, files)
        yield run


def timestamp() -> str:
    """A sortable local time stamp for run names."""
    return _dt.datetime.now().strftime("%Y%m%d-%H%M%S")


def run_slug(name: str) -> str:
    """A model name as one folder-name component (``timm/convnext_atto`` -> ``timm-convnext_atto``)."""
    return name.replace("/", "-")


def new_run_dir(out: str | os.PathLike | None, default_name: str, root: Path = DEFAULT_ROOT) -> RunDir:
    """``out`` if given, else ``root/<default_name>_<time>``; the folder is created."""
    path = Path(out) if out else root / f"{run_slug(default_name)}_{timestamp()}"
    path.mkdir(parents=True, exist_ok=True)
    return RunDir(path)


def is_run_dir(path: Path) -> bool:
    """True when ``path`` holds a config, metrics or evaluation results."""
    return (path / "config.json").is_file() or (path / "metrics.jsonl").is_file() or (path / "eval").is_dir()


def find_run_dirs(*roots: str | os.PathLike) -> Iterator[RunDir]:
    """Every run directory at or below ``roots`` (sorted, each once)."""
    seen: set[Path] = set()
    for root in roots:
        root = Path(root)
        candidates = [root] if is_run_dir(root) else sorted(p.parent for p in root.rglob("config.json"))
        for path in candidates:
            if path.resolve() not in seen and is_run_dir(path):
                seen.add(path.resolve())
                yield RunDir(path)
