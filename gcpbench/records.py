"""The records a run directory holds, one typed class each: the schema of every file that the
commands write and that resume and ``report`` read (layout in ``docs/architecture.md``).

- :class:`TrainConfig` (``config.json`` of ``train``), :class:`FinetuneConfig` (``finetune``),
  :class:`EvalConfig` (``config.json`` of an evaluation-only run: eval-imagenet, eval-c, eval-p,
  eval-cifar, landscape) and :class:`DetectionConfig` (``detect``);
- :class:`EpochRecord` (one line of ``metrics.jsonl``, one row of ``metrics.csv``);
- the results under ``eval/``, each with the producing model's identity
  (:class:`gcpbench.identity.ResultIdentity`): :class:`ImageNetResult`, :class:`VariantResult`,
  :class:`CorruptionResult` (ImageNet-C), :class:`PerturbationResult` (ImageNet-P),
  :class:`CifarResult`, :class:`DetectionResult`, :class:`FgvcResult` (``finetune``);
- :class:`LandscapeRow` (one row of ``landscape.csv``; its identity is the run's config).

Every record is a keyword-only dataclass that reads and writes its JSON object with the same
keys as its fields. A field without a default is required: :meth:`JsonRecord.from_json` raises
:class:`UnreadableRecord` naming the missing key. Keys a record does not declare (a
benchmark's per-item breakdown, fields of newer versions) travel unchanged in ``extra``; a
field marked ``omit_none`` is left out of the JSON while it is None.
"""
from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, ClassVar, Mapping, TypeVar

from gcpbench.identity import ResultIdentity

R = TypeVar("R", bound="JsonRecord")


class UnreadableRecord(Exception):
    """A record file that cannot be used; the message says why (one line)."""


def read_json_object(path: str | os.PathLike) -> dict[str, Any]:
    """The JSON object stored at ``path``; :class:`UnreadableRecord` when it cannot be read."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError) as exc:
        raise UnreadableRecord(f"cannot read ({exc.__class__.__name__})") from None
    except json.JSONDecodeError as exc:
        raise UnreadableRecord(f"bad JSON ({exc.msg}, line {exc.lineno})") from None
    if not isinstance(data, dict):
        raise UnreadableRecord("not a JSON object")
    return data


def _codec(decode: Callable[[Any], Any], encode: Callable[[Any], Any]) -> dict[str, Any]:
    return {"decode": decode, "encode": encode}


def _decode_identity(value: Any) -> ResultIdentity | None:
    return ResultIdentity.from_dict(value) if isinstance(value, Mapping) else None


IDENTITY = _codec(_decode_identity, lambda identity: identity.as_dict() if identity is not None else None)


@dataclass(kw_only=True)
class JsonRecord:
    """A record stored as one JSON object whose keys are the dataclass's fields."""

    extra: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    # Keys of an older layout of this file (numbers without their unit in the key): refused with a
    # message that says so, instead of being read with a wrong unit.
    LEGACY_KEYS: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def declared(cls) -> tuple[dataclasses.Field, ...]:
        """The fields stored under their own key (all but ``extra``)."""
        return tuple(f for f in fields(cls) if f.name != "extra")

    @classmethod
    def required(cls) -> tuple[str, ...]:
        """Keys every stored object must hold (fields without a default)."""
        return tuple(f.name for f in cls.declared()
                     if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING)

    @classmethod
    def from_json(cls: type[R], data: Mapping[str, Any]) -> R:
        """The record of a stored JSON object; a missing required key raises :class:`UnreadableRecord`."""
        if not isinstance(data, Mapping):
            raise UnreadableRecord("not a JSON object")
        legacy = [key for key in cls.LEGACY_KEYS if key in data]
        if legacy:
            raise UnreadableRecord(f"an older layout without units in its keys ({', '.join(legacy)}); "
                                   "rerun the evaluation to rewrite it (docs/units.md)")
        missing = [key for key in cls.required() if key not in data]
        if missing:
            raise UnreadableRecord(f"missing key {', '.join(missing)}")
        values: dict[str, Any] = {}
        for f in cls.declared():
            if f.name in data:
                decode = f.metadata.get("decode")
                values[f.name] = decode(data[f.name]) if decode else data[f.name]
        names = {f.name for f in cls.declared()}
        return cls(**values, extra={k: v for k, v in data.items() if k not in names})

    def to_json(self) -> dict[str, Any]:
        """The JSON object to store (declared fields, then ``extra``)."""
        data: dict[str, Any] = {}
        for f in self.declared():
            value = getattr(self, f.name)
            if value is None and f.metadata.get("omit_none"):
                continue
            encode = f.metadata.get("encode")
            data[f.name] = encode(value) if encode else value
        return {**data, **self.extra}

    CHECK_TYPES: ClassVar[bool] = False  # read() checks the JSON type of every declared field

    @classmethod
    def read(cls: type[R], path: str | os.PathLike) -> R:
        """The record stored in the JSON file ``path`` (with ``CHECK_TYPES``, a field of the wrong
        JSON type raises :class:`UnreadableRecord` naming it: a number is never guessed)."""
        data = read_json_object(path)
        if cls.CHECK_TYPES:
            for f in cls.declared():
                if f.name in data and not f.metadata.get("decode"):
                    problem = type_problem(data[f.name], str(f.type))
                    if problem:
                        raise UnreadableRecord(f"field '{f.name}' {problem}")
        return cls.from_json(data)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


_TYPES: dict[str, tuple[str, Callable[[Any], bool]]] = {
    "float": ("a number", _is_number),
    "int": ("a whole number", lambda v: isinstance(v, int) and not isinstance(v, bool)),
    "str": ("a string", lambda v: isinstance(v, str)),
    "bool": ("true or false", lambda v: isinstance(v, bool)),
    "dict[str, float]": ("an object of numbers",
                         lambda v: isinstance(v, dict) and all(_is_number(x) for x in v.values())),
    "dict[str, Any]": ("an object", lambda v: isinstance(v, dict)),
    "list[str]": ("a list of strings", lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v)),
}


def _json_kind(value: Any) -> str:
    if isinstance(value, dict):
        return "an object holding " + ", ".join(sorted({_json_kind(v) for v in value.values()})) if value else "an empty object"
    return {bool: "true/false", str: "a string", list: "a list", type(None): "null"}.get(
        type(value), "a number" if _is_number(value) else type(value).__name__)


def type_problem(value: Any, annotation: str) -> str | None:
    """Why ``value`` (parsed JSON) does not fit the field annotation ``annotation`` (e.g.
    ``dict[str, float]``, ``float | None``), or None (also for annotations not checked here)."""
    optional = annotation.endswith(" | None")
    base = annotation.removesuffix(" | None")
    if value is None:
        return None if optional else "must not be null"
    if base not in _TYPES:
        return None
    wanted, fits = _TYPES[base]
    return None if fits(value) else f"must be {wanted}, got {_json_kind(value)}"


# ------------------------------------------------------------------------------ configurations

def _flag(option: str, label: str | None = None) -> dict[str, Any]:
    """Field metadata: the ``TrainOptions`` attribute a stored value comes from, and how
    messages name it (``--lr``; ``model`` for the zoo name)."""
    return {"option": option, "label": label or "--" + option.replace("_", "-")}


@dataclass(kw_only=True)
class TrainConfig(JsonRecord):
    """``config.json`` of a training run: what ``--resume`` continues and ``report`` labels.

    Fields marked with an option (``metadata['option']``) define the run: ``--resume`` with any
    of those options given must reproduce the stored values (:func:`gcpbench.train.config.stored_config`).
    The fields compared by ``==`` are exactly those; the rest describe where and how it ran
    (device, workers, start time) or follow from the defining ones (the schedule's base LR).
    ``train`` writes every field; a config of an older version (or written by hand) reads with
    the missing ones as None / their defaults.
    """

    command: str = "train"
    run_id: str | None = field(default=None, compare=False)
    arch: str | None = field(default=None, metadata=_flag("arch"))
    head: str | None = field(default=None, metadata=_flag("head"))
    gcp_dim: int | None = field(default=None, metadata=_flag("gcp_dim"))
    gcp_norm: str | None = field(default=None, metadata=_flag("gcp_norm"))  # GCP heads: isqrt, mpn, ... (None: GAP)
    gcp_options: dict[str, Any] | None = field(default=None, metadata=_flag("gcp_options", "GCP options"))  # all, defaults filled
    schedule: str | None = field(default=None, metadata=_flag("schedule"))
    epochs: int | None = field(default=None, metadata=_flag("epochs"))
    batch_size: int | None = field(default=None, metadata=_flag("batch_size"))
    lr_option: float | None = field(default=None, metadata=_flag("lr"))
    amp: bool = field(default=False, metadata=_flag("amp"))
    channels_last: bool = field(default=False, metadata=_flag("channels_last"))
    seed: int = field(default=0, metadata=_flag("seed"))
    deterministic: bool = field(default=False, metadata=_flag("deterministic"))
    landscape_every: int = field(default=0, metadata=_flag("landscape_every"))
    landscape_num_eta: int | None = field(default=None, metadata=_flag("landscape_num_eta"))
    image_size: int | None = field(default=None, metadata=_flag("image_size"))
    gcp_precision: str = field(default="float32", metadata=_flag("gcp_precision"))
    init_weights: str | None = field(default=None, metadata=_flag("weights"))
    family: str | None = field(default=None, metadata=_flag("schedule_family"))
    model: str | None = field(default=None, metadata=_flag("arch", "model"))
    weight_decay: float | None = field(default=None, metadata=_flag("weight_decay"))
    momentum: float | None = field(default=None, metadata=_flag("momentum"))
    label_smoothing: float = field(default=0.0, metadata=_flag("label_smoothing"))
    warmup_epochs: int = field(default=0, metadata=_flag("warmup_epochs"))
    dataset: str | None = field(default=None, compare=False)
    subset: bool = field(default=False, compare=False)
    data_root: str | None = field(default=None, compare=False)
    num_classes: int | None = field(default=None, compare=False)
    train_images: int | None = field(default=None, compare=False)
    val_images: int | None = field(default=None, compare=False)
    paper_epochs: int | None = field(default=None, compare=False)
    paper_batch_size: int | None = field(default=None, compare=False)
    base_lr: float | None = field(default=None, compare=False)
    paper_base_lr: float | None = field(default=None, compare=False)
    schedule_notes: str | None = field(default=None, compare=False)
    workers: int | None = field(default=None, compare=False)
    device: str | None = field(default=None, compare=False)
    world_size: int = field(default=1, compare=False)
    gcpbench_version: str | None = field(default=None, compare=False)
    started: str | None = field(default=None, compare=False)
    provenance: dict[str, Any] | None = field(default=None, compare=False, metadata={"omit_none": True})  # gcpbench.provenance

    @classmethod
    def defining(cls) -> tuple[dataclasses.Field, ...]:
        """The fields that define the run (compared on resume), in the order messages check them."""
        return tuple(f for f in cls.declared() if "option" in f.metadata)

    def differences(self, other: TrainConfig) -> list[str]:
        """Names of the defining fields whose values differ between two configurations."""
        return [f.name for f in self.defining() if getattr(self, f.name) != getattr(other, f.name)]


@dataclass(kw_only=True)
class FinetuneConfig(TrainConfig):
    """``config.json`` of a ``finetune`` run: a training run (the trainer's fields) plus its source
    checkpoint (path, SHA-256, model, training run), the protocol's every value and the data's
    fingerprint (:meth:`gcpbench.data.fgvc.FgvcData.fingerprint`). ``finetune --resume`` compares
    the fields :data:`gcpbench.finetune.runner.DEFINING` lists."""

    command: str = "finetune"
    source_checkpoint: str | None = field(default=None, compare=False)
    source_sha256: str | None = field(default=None, compare=False)
    source_model: str | None = field(default=None, compare=False)
    source_run_id: str | None = field(default=None, compare=False)
    source_option: str | None = field(default=None, compare=False)  # ckpt (--ckpt) or model (--model --weights)
    source_name: str | None = field(default=None, compare=False)  # the --model NAME given
    protocol: dict[str, Any] = field(default_factory=dict, compare=False)
    data_fingerprint: str | None = field(default=None, compare=False)
    test_split: str | None = field(default=None, compare=False)


@dataclass(kw_only=True)
class EvalConfig(JsonRecord):
    """``config.json`` of an evaluation-only run: the model it holds results of and, for a
    checkpoint, its path and content fingerprint (the run accepts no other)."""

    command: str | None = None
    model: str | None = None
    arch: str | None = None
    head: str | None = None
    gcp_dim: int | None = None
    gcp_norm: str | None = None
    gcp_options: dict[str, Any] | None = None
    schedule: str | None = None
    checkpoint: str | None = None
    checkpoint_sha256: str | None = None
    dataset: str | None = None
    data_root: str | None = None
    provenance: dict[str, Any] | None = field(default=None, compare=False, metadata={"omit_none": True})  # gcpbench.provenance


@dataclass(kw_only=True)
class DetectionConfig(EvalConfig):
    """``config.json`` of a ``detect`` run: the backbone (``model`` is its name, e.g.
    ``resnet50_gcp_m``), its initial weights, the framework and the schedule's options."""

    command: str | None = "detect"
    framework: str | None = None
    method: str | None = None
    backbone_weights: str | None = None
    backbone_weights_model: str | None = None
    weights: str | None = None  # the detector checkpoint (``--weights``)
    eval_only: bool = False
    epochs: int | None = None
    max_iters: int | None = None
    launcher: str | None = None
    seed: int | None = None
    mmdet_config: str | None = None
    cfg_options: dict[str, Any] | None = None  # detect --cfg-options, merged into the mmdetection config last


RunConfig = TrainConfig | EvalConfig


def run_config_from_json(data: Mapping[str, Any]) -> RunConfig:
    """The typed configuration of a stored ``config.json`` (training, detection or evaluation run)."""
    command = data.get("command") if isinstance(data, Mapping) else None
    kind = {"train": TrainConfig, "finetune": FinetuneConfig, "detect": DetectionConfig}.get(command, EvalConfig)
    return kind.from_json(data)


# ------------------------------------------------------------------------------------ epochs

@dataclass(kw_only=True)
class EpochRecord(JsonRecord):
    """One finished training epoch (``lr`` is the LR of its first iteration; percentages)."""

    epoch: int
    lr: float
    train_loss: float
    train_top1: float
    val_loss: float
    val_top1: float
    val_top5: float
    images_per_s: float
    wall_time_s: float

    COLUMNS: ClassVar[tuple[str, ...]] = ("epoch", "lr", "train_loss", "train_top1", "val_loss", "val_top1",
                                          "val_top5", "images_per_s", "wall_time_s")

    def nonfinite(self) -> list[str]:
        """Names of the metrics that are NaN or infinite."""
        import math

        return [name for name in self.COLUMNS[1:] if not math.isfinite(getattr(self, name))]


# ------------------------------------------------------------------------------------ results

@dataclass(kw_only=True)
class EvalResult(JsonRecord):
    """What every evaluation result stores beside its numbers: the model, its checkpoint, the
    data, and the identity of the whole (model, checkpoint fingerprint, data, options)."""

    model: str | None = None
    checkpoint: str | None = None
    dataset: str | None = None
    subset: bool = False
    identity: ResultIdentity | None = field(default=None, metadata=IDENTITY)
    provenance: dict[str, Any] | None = field(default=None, compare=False, metadata={"omit_none": True})  # gcpbench.provenance

    FILE: ClassVar[str] = ""
    CHECK_TYPES: ClassVar[bool] = True  # report reads results written by any version, or by hand

    @property
    def file_name(self) -> str:
        """The file under ``eval/`` that holds this result."""
        return self.FILE

    def foreign_to(self, config: RunConfig | None) -> str | None:
        """Why this result does not belong to a run of ``config`` (another model, another
        checkpoint, another training run), or None when it does or cannot be told."""
        if config is None:
            return None
        if config.model and self.model and config.model != self.model:
            return f"results of {self.model} in a run of {config.model}"
        if self.identity is None:
            return None
        producer = self.identity.producer
        stored = getattr(config, "checkpoint_sha256", None)
        if stored and producer.sha256 not in (None, stored):
            return f"results of checkpoint {producer.sha256[:12]} in a run of checkpoint {stored[:12]}"
        run_id = getattr(config, "run_id", None)
        if run_id and producer.run_id not in (None, run_id):
            return f"results of a checkpoint of another training run ({producer.run_id})"
        return None


@dataclass(kw_only=True)
class ImageNetResult(EvalResult):
    """``eval/imagenet.json``: top-1 / top-5 (percent) on a validation tree."""

    top1: float
    top5: float
    images: int | None = None
    loss: float | None = None

    FILE: ClassVar[str] = "imagenet.json"


@dataclass(kw_only=True)
class VariantResult(ImageNetResult):
    """``eval/imagenet_<variant>.json``: ImageNetV2, -Sketch, -R or -A."""

    variant: str
    class_folders: int | None = None
    complete: bool = False

    @property
    def file_name(self) -> str:
        return f"imagenet_{self.variant}.json"


@dataclass(kw_only=True)
class CorruptionResult(EvalResult):
    """``eval/imagenet_c_summary.json``: CE per corruption, mCE, relative mCE (percent of
    AlexNet's), the clean error and the error per corruption x severity (percent)."""

    mCE_pct: float | None
    relative_mCE_pct: float | None
    CE_pct: dict[str, float] = field(default_factory=dict)
    extra_CE_pct: dict[str, float] = field(default_factory=dict)
    clean_error_pct: float | None = None
    partial: bool = False
    source_kind: str | None = None  # what the tree was made from: imagenet-val, synthetic, other (None: older files)
    missing_images: int = 0  # files the tree lacks (its means are over fewer images)

    FILE: ClassVar[str] = "imagenet_c_summary.json"
    LEGACY_KEYS: ClassVar[tuple[str, ...]] = ("mCE", "relative_mCE")


@dataclass(kw_only=True)
class PerturbationResult(EvalResult):
    """``eval/imagenet_p_summary.json``: mFP, mT5D (percent of AlexNet's), per perturbation the
    AlexNet-relative ``rel_FP_pct`` / ``rel_T5D_pct`` and the raw ``FP_pct`` / ``T5D``."""

    mFP_pct: float | None
    mT5D_pct: float | None
    rel_FP_pct: dict[str, float] = field(default_factory=dict)
    rel_T5D_pct: dict[str, float] = field(default_factory=dict)
    FP_pct: dict[str, float] = field(default_factory=dict)
    T5D: dict[str, float] = field(default_factory=dict)
    partial: bool = False
    source_kind: str | None = None  # what the tree was made from: imagenet-val, synthetic, other (None: older files)
    missing_images: int = 0  # sequences the tree lacks (its means are over fewer sequences)

    FILE: ClassVar[str] = "imagenet_p_summary.json"
    LEGACY_KEYS: ClassVar[tuple[str, ...]] = ("mFP", "mT5D")


@dataclass(kw_only=True)
class CifarResult(EvalResult):
    """``eval/<cifar set>_summary.json``: CIFAR-10-C / -100-C mean error (percent), CIFAR-10-P
    mean raw flip probability (percent) and top-5 distance (no baseline: unnormalised)."""

    benchmark: str
    mean_error_pct: float | None = None
    mean_FP_pct: float | None = None
    mean_T5D: float | None = None
    partial: bool = False

    LEGACY_KEYS: ClassVar[tuple[str, ...]] = ("mean_error", "mFP")

    @property
    def file_name(self) -> str:
        from gcpbench.robustness.benchmarks import get_npy_benchmark

        return get_npy_benchmark(self.benchmark).files[1]


@dataclass(kw_only=True)
class DetectionResult(EvalResult):
    """``eval/detection_<framework>.json``: the COCO AP tables (bbox; segm for Mask R-CNN)."""

    framework: str
    backbone: str
    method: str | None = None
    bbox: dict[str, float]
    segm: dict[str, float] | None = field(default=None, metadata={"omit_none": True})  # Mask R-CNN only

    @property
    def file_name(self) -> str:
        return f"detection_{self.framework}.json"


@dataclass(kw_only=True)
class FgvcResult(EvalResult):
    """``eval/fgvc.json``: top-1 / top-5 (percent) of a fine-tuned model on the test split of a
    fine-grained dataset, each image scored on ``views`` crops (2: the centre crop and its
    mirror, logits averaged), from the checkpoint of epoch ``epoch`` (the best or the last)."""

    top1: float
    top5: float
    images: int
    views: int
    epoch: int
    select: str = "best"
    loss: float | None = None
    source_model: str | None = None  # the checkpoint the fine-tuning started from
    source_sha256: str | None = None

    FILE: ClassVar[str] = "fgvc.json"


@dataclass(kw_only=True)
class LandscapeRow(JsonRecord):
    """One optimisation-landscape measurement (a row of ``landscape.csv``)."""

    step: int
    epoch: int
    train_loss: float
    loss_min: float
    loss_max: float
    grad_diff_min: float
    grad_diff_max: float
    beta_smoothness: float
    eta_min: float
    eta_max: float
    num_eta: int

    @classmethod
    def columns(cls) -> tuple[str, ...]:
        """The CSV header, in order."""
        return tuple(f.name for f in cls.declared())

    @classmethod
    def measured(cls, step: int, epoch: int, train_loss: float, probe: Mapping[str, Any]) -> LandscapeRow:
        """The row of one probe result (:func:`gcpbench.landscape.probe.measure`) at ``step``."""
        return cls(step=step, epoch=epoch, train_loss=train_loss,
                   **{name: probe[name] for name in cls.columns()[3:]})


RESULT_TYPES: tuple[type[EvalResult], ...] = (ImageNetResult, VariantResult, CorruptionResult, PerturbationResult,
                                              CifarResult, DetectionResult, FgvcResult)
