"""Sweep specifications: a grid file (TOML, or YAML) expanded into runs with stable names.

A spec file::

    name = "resnets"               # the sweep's name (default: the file's stem)
    data = "/data/imagenet"        # training data of every run (default: the built-in synthetic set)

    [train]                        # `gcpbench train` options of every run
    epochs = 30
    amp = true

    [[grid]]                       # each grid is a product; several grids are united
    models = ["resnet18", "resnet50"]
    heads = ["gap", "gcp"]
    gcp_dims = [256, 128]          # GCP heads only; a GAP model appears once
    gcp_norms = ["isqrt", "mpn"]   # GCP normalisations (GCP heads only) [default: isqrt]
    schedules = ["LRnorm", "LRadju"]
    seeds = [0]
    evaluations = ["eval-imagenet", "eval-c", "detect:faster_rcnn:gcp_m"]

    [options.eval-c]               # command-line options of an evaluation command, for every run
    data = "/data/ImageNet-C"

Without ``[[grid]]`` the top-level ``models`` / ``heads`` / ... keys form the one grid. A run's
name is ``<model>_<schedule>_s<seed>`` plus a tag for every training option that changes the
result (``_e30`` epochs, ``_b64`` batch, ``_lr0.05``, ``_amp``, ``_px128``, ``_ls500`` landscape
probe, ``_tf32``, ``_power0.3`` for each GCP option in ``[train] gcp_options``): the same run gets
the same name in every sweep, so sweeps can share a folder. The GCP normalisation is part of the
model's name (``resnet18_gcp_mpn``).
"""
from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from gcpbench.errors import GcpbenchError
from gcpbench.models.registry import closest, model_info, model_name
from gcpbench.paths import require_folder_name
from gcpbench.runtime import first_line
from gcpbench.train.config import TrainOptions
from gcpbench.train.schedules import canonical_schedule

GRID_KEYS: tuple[str, ...] = ("models", "heads", "gcp_dims", "gcp_norms", "schedules", "seeds", "evaluations", "data",
                              "train")
TOP_KEYS: tuple[str, ...] = ("name", "grid", "options", *GRID_KEYS)
# TrainOptions fields a spec may set under [train]: everything but identity, paths and logging.
SET_BY_SWEEP = {"arch", "head", "gcp_dim", "gcp_norm", "schedule", "seed", "data", "out", "resume", "quiet"}
TRAIN_KEYS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(TrainOptions) if f.name not in SET_BY_SWEEP)
# Options that change the trained model, in name order, and their tags.
NAME_TAGS: dict[str, str] = {"epochs": "e{}", "batch_size": "b{}", "lr": "lr{:g}", "image_size": "px{}",
                             "landscape_every": "ls{}", "amp": "amp", "gcp_precision": "{}"}
EVAL_COMMANDS: tuple[str, ...] = ("eval-imagenet", "eval-c", "eval-p", "detect", "finetune")
FINETUNE_DATASETS: tuple[str, ...] = ("cub", "aircraft", "cars", "folder")  # gcpbench.data.fgvc.DATASETS
DETECT_FRAMEWORKS: tuple[str, ...] = ("faster_rcnn", "mask_rcnn")
DETECT_METHODS: tuple[str, ...] = ("gap", "gcp_d", "gcp_m")


@dataclass(frozen=True)
class Evaluation:
    """One evaluation that follows a training: ``eval-imagenet``, ``eval-c``, ``eval-p``,
    ``detect:<framework>:<method>`` or ``finetune:<dataset>`` (its root in ``options.finetune``)."""

    command: str
    framework: str | None = None
    method: str | None = None
    dataset: str | None = None

    @property
    def name(self) -> str:
        if self.command == "finetune":
            return f"finetune:{self.dataset}"
        return self.command if self.command != "detect" else f"detect:{self.framework}:{self.method}"

    @staticmethod
    def parse(text: str) -> "Evaluation":
        parts = str(text).strip().split(":")
        command = parts[0]
        if command not in EVAL_COMMANDS:
            raise GcpbenchError(f"unknown evaluation '{text}'{closest(command, EVAL_COMMANDS)}; use one of "
                                "eval-imagenet, eval-c, eval-p, detect:<faster_rcnn|mask_rcnn>:<gap|gcp_d|gcp_m>, "
                                "finetune:<cub|aircraft|cars|folder>")
        if command == "finetune":
            if len(parts) != 2 or parts[1] not in FINETUNE_DATASETS:
                raise GcpbenchError(f"fine-tuning evaluation '{text}' must read finetune:<cub|aircraft|cars|folder>, "
                                    "e.g. finetune:cub")
            return Evaluation(command, dataset=parts[1])
        if command != "detect":
            if len(parts) > 1:
                raise GcpbenchError(f"evaluation '{text}' takes no ':' part; its options go in the spec's options.{command} table")
            return Evaluation(command)
        if len(parts) != 3 or parts[1] not in DETECT_FRAMEWORKS or parts[2] not in DETECT_METHODS:
            raise GcpbenchError(f"detection evaluation '{text}' must read detect:<faster_rcnn|mask_rcnn>:"
                                "<gap|gcp_d|gcp_m>, e.g. detect:faster_rcnn:gcp_m")
        return Evaluation(command, parts[1], parts[2])


@dataclass
class RunSpec:
    """One training run of a sweep and the evaluations that follow it."""

    name: str
    train: dict[str, Any]  # TrainOptions fields (arch is the zoo model name)
    evaluations: list[str] = field(default_factory=list)

    @property
    def model(self) -> str:
        return self.train["arch"]

    def options(self, out: Path) -> TrainOptions:
        """The `gcpbench train` options of this run in ``out`` (continued if it already holds it)."""
        return TrainOptions(**self.train, out=str(out), resume="auto", quiet=True)


@dataclass
class SweepSpec:
    """A named list of runs, the options of each evaluation command, and notes for the user."""

    name: str
    runs: list[RunSpec]
    eval_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @staticmethod
    def from_json(data: dict[str, Any]) -> "SweepSpec":
        return SweepSpec(data["name"], [RunSpec(**r) for r in data["runs"]], data.get("eval_options", {}),
                         data.get("notes", []))

    def run(self, name: str) -> RunSpec:
        for run in self.runs:
            if run.name == name:
                return run
        raise GcpbenchError(f"sweep '{self.name}' has no run '{name}'{closest(name, [r.name for r in self.runs])}")


# ------------------------------------------------------------------------ names and runs

def run_name(train: dict[str, Any]) -> str:
    """``resnet18_gcp128_LRadju_s0`` plus a tag per result-changing training option."""
    name = f"{train['arch']}_{train['schedule']}_s{train.get('seed') or 0}"
    for key, tag in NAME_TAGS.items():
        value = train.get(key)
        if value is None or value is False or (key == "landscape_every" and value == 0) \
                or (key == "gcp_precision" and value == "float32"):
            continue
        name += "_" + tag.format(value)
    for key, value in sorted((train.get("gcp_options") or {}).items()):
        name += f"_{key.replace('_', '')}{value:g}" if isinstance(value, (int, float)) else f"_{key}{value}"
    return name


def make_run(model: str, schedule: str, seed: int, train: dict[str, Any], evaluations: Iterable[str],
             data: str | None = None) -> RunSpec:
    """A run of zoo model ``model`` (checked), its name derived from its settings."""
    info = model_info(model)
    settings = {"arch": info.name, "schedule": canonical_schedule(schedule), "seed": int(seed), **train}
    if data is not None:
        settings["data"] = str(data)
    checked = [Evaluation.parse(e) for e in evaluations]
    for evaluation in checked:
        if evaluation.command == "detect" and (info.family != "resnet" or (evaluation.method == "gap") == info.head.is_gcp):
            raise GcpbenchError(f"evaluation {evaluation.name} does not fit {info.name}: detection backbones are "
                                "ResNets, method gap for a GAP model and gcp_d / gcp_m for a GCP model")
    return RunSpec(run_name(settings), settings, [e.name for e in checked])


def _as_list(value: Any, key: str, where: str) -> list[Any]:
    values = value if isinstance(value, list) else [value]
    if not values:
        raise GcpbenchError(f"{where}: '{key}' is empty; give at least one value")
    return values


def _check_keys(table: dict[str, Any], allowed: Iterable[str], where: str) -> None:
    allowed = tuple(allowed)
    for key in table:
        if key not in allowed:
            raise GcpbenchError(f"{where}: unknown key '{key}'{closest(key, allowed)}; known keys: {', '.join(allowed)}")


_KINDS: dict[str, tuple[type, ...]] = {"int": (int,), "float": (int, float), "bool": (bool,), "str": (str,)}


def train_table(value: Any, where: str) -> dict[str, Any]:
    """A table of `gcpbench train` options, names and value types checked."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise GcpbenchError(f"{where}: 'train' must be a table of `gcpbench train` options")
    table = {key.replace("-", "_"): v for key, v in value.items()}
    _check_keys(table, TRAIN_KEYS, f"{where}, train table")
    annotations = {f.name: str(f.type).split(" |")[0] for f in dataclasses.fields(TrainOptions)}
    for key, v in table.items():
        kinds = _KINDS.get(annotations[key], (object,))
        if not isinstance(v, kinds) or (isinstance(v, bool) and bool not in kinds):
            raise GcpbenchError(f"{where}, train table: {key} = {v!r} must be of type {annotations[key]}")
    return table


def _grid_model(arch: str, head: Any, dim: Any, norm: Any = None) -> str:
    """The zoo model of one grid point: ``gcp_dims`` and ``gcp_norms`` apply to GCP heads only (a
    GAP model appears once); a full zoo name must agree with the grid's ``heads``, ``gcp_dims``
    and ``gcp_norms``."""
    name = model_name(arch, None if head is None else str(head))
    if (dim is None and norm is None) or not model_info(name).head.is_gcp:
        return name
    return model_name(arch, None if head is None else str(head), None if dim is None else int(dim),
                      None if norm is None else str(norm))


def expand_grid(grid: dict[str, Any], defaults: dict[str, Any], where: str) -> list[RunSpec]:
    """The runs of one grid table (its keys win over the spec's top-level ones)."""
    _check_keys(grid, GRID_KEYS, where)
    merged = {**defaults, **{k: v for k, v in grid.items() if k != "train"}}
    train = {**train_table(defaults.get("train"), "spec"), **train_table(grid.get("train"), where)}
    if "models" not in merged:
        raise GcpbenchError(f"{where}: no 'models' (architectures such as resnet18, or zoo names)")
    models = _as_list(merged["models"], "models", where)
    heads = _as_list(merged["heads"], "heads", where) if "heads" in merged else [None]  # None: the name's (GAP for an arch)
    dims = _as_list(merged["gcp_dims"], "gcp_dims", where) if "gcp_dims" in merged else [None]
    norms = _as_list(merged["gcp_norms"], "gcp_norms", where) if "gcp_norms" in merged else [None]
    schedules = _as_list(merged.get("schedules", ["LRnorm"]), "schedules", where)
    seeds = _as_list(merged.get("seeds", [0]), "seeds", where)
    evaluations = merged.get("evaluations") or []
    evaluations = [evaluations] if isinstance(evaluations, str) else evaluations
    runs: dict[str, RunSpec] = {}
    for arch, head, dim, norm, schedule, seed in itertools.product(models, heads, dims, norms, schedules, seeds):
        try:
            model = _grid_model(str(arch), head, dim, norm)
            run = make_run(model, str(schedule), int(seed), train, evaluations, merged.get("data"))
        except GcpbenchError as exc:
            raise GcpbenchError(f"{where}: {exc}") from None
        runs.setdefault(run.name, run)  # a GAP model ignores gcp_dims and gcp_norms
    return list(runs.values())


def merge_runs(runs: Iterable[RunSpec]) -> list[RunSpec]:
    """Runs in order, each name once; the same name with other settings is an error, and the
    evaluations of repeated runs are united."""
    merged: dict[str, RunSpec] = {}
    for run in runs:
        known = merged.get(run.name)
        if known is None:
            merged[run.name] = RunSpec(run.name, dict(run.train), list(run.evaluations))
            continue
        if known.train != run.train:
            differing = sorted(k for k in set(known.train) | set(run.train) if known.train.get(k) != run.train.get(k))
            raise GcpbenchError(f"two runs are named '{run.name}' but differ in {', '.join(differing)}; give them "
                                "different settings that show in the name, or another sweep folder")
        known.evaluations += [e for e in run.evaluations if e not in known.evaluations]
    return list(merged.values())


def _eval_options(value: Any) -> dict[str, dict[str, Any]]:
    """``[options.<command>]`` tables: the command-line options of each evaluation command."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise GcpbenchError("spec: 'options' must hold one table per evaluation command, e.g. options.eval-c")
    for command, options in value.items():
        if command not in EVAL_COMMANDS:
            raise GcpbenchError(f"spec: options.{command} names no evaluation command"
                                f"{closest(command, EVAL_COMMANDS)}; use one of {', '.join(EVAL_COMMANDS)}")
        if not isinstance(options, dict):
            raise GcpbenchError(f"spec: options.{command} must be a table of command-line options")
    return {command: {k.replace("-", "_"): v for k, v in options.items()} for command, options in value.items()}


def parse_spec(data: dict[str, Any], default_name: str) -> SweepSpec:
    """A spec file's contents (already parsed from TOML / YAML) -> the sweep's runs.

    Error messages avoid square brackets: the command line prints them as rich markup.
    """
    if not isinstance(data, dict):
        raise GcpbenchError("spec: the file must hold a table (keys such as models, heads, schedules)")
    _check_keys(data, TOP_KEYS, "spec")
    defaults = {k: v for k, v in data.items() if k in GRID_KEYS}
    grids = data.get("grid")
    if grids is None:
        grids = [{}]
    if not isinstance(grids, list) or not all(isinstance(g, dict) for g in grids):
        raise GcpbenchError("spec: 'grid' must be a list of tables (in TOML, one double-bracketed grid header each)")
    runs = [run for index, grid in enumerate(grids, 1) for run in expand_grid(grid, defaults, f"spec grid {index}")]
    name = require_folder_name(str(data.get("name") or default_name), "spec: name")
    return SweepSpec(name, merge_runs(runs), _eval_options(data.get("options")))


def load_spec(path: str | Path) -> SweepSpec:
    """Read a TOML (``.toml``) or YAML (``.yaml`` / ``.yml``) spec file."""
    path = Path(path)
    if not path.is_file():
        raise GcpbenchError(f"spec file '{path}' does not exist (or use --paper imagenet|robustness|detection|landscape|fgvc)")
    suffix = path.suffix.lower()
    if suffix not in (".toml", ".yaml", ".yml"):
        raise GcpbenchError(f"spec file '{path}' must end in .toml, .yaml or .yml")
    kind = "TOML" if suffix == ".toml" else "YAML"
    if kind == "TOML":
        import tomllib as parser

        load, invalid = parser.loads, (ValueError, UnicodeDecodeError)  # TOMLDecodeError is a ValueError
    else:
        import yaml as parser  # PyYAML comes with mmengine

        load, invalid = parser.safe_load, (parser.YAMLError, UnicodeDecodeError)
    try:
        data = load(path.read_text())
    except invalid as exc:
        raise GcpbenchError(f"spec file '{path}' is not valid {kind}: {first_line(exc)}") from None
    return absolute_paths(parse_spec(data, path.stem), path.parent)


PATH_OPTIONS: tuple[str, ...] = ("data", "clean_data", "weights", *FINETUNE_DATASETS)


def absolute_paths(spec: SweepSpec, base: Path) -> SweepSpec:
    """Data roots of a spec file made absolute, relative ones taken from the file's folder (jobs
    run in other folders and on other machines)."""
    def resolve(value: Any) -> Any:
        return str((base / str(value)).resolve()) if isinstance(value, str) else value

    for run in spec.runs:
        if "data" in run.train:
            run.train["data"] = resolve(run.train["data"])
    for options in spec.eval_options.values():
        for key in PATH_OPTIONS:
            if key in options:
                options[key] = resolve(options[key])
    return spec
