"""Train and evaluate with mmengine's ``Runner``; write the COCO AP table of the run directory.

``eval/detection_<framework>.json``::

    {"framework", "backbone": "resnet50", "method": "gap|gcp_d|gcp_m", "dataset",
     "checkpoint", "bbox": {"AP", "AP50", "AP75", "APs", "APm", "APl"}, "segm": {...}}

AP values are percent; a value pycocotools cannot measure (-1: no object of that size) is null.
"""
from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

from mmengine.hooks import Hook

from gcpbench.coco import COCO_METRICS
from gcpbench.detection.checkpoints import require_weights_only_default
from gcpbench.detection.config import Backbone, build_config, check_framework, config_file, parse_backbone
from gcpbench.errors import GcpbenchError, Interrupted, require_positive
from gcpbench.identity import Producer, ResultIdentity
from gcpbench.paths import require_writable
from gcpbench.provenance import provenance
from gcpbench.records import DetectionConfig, DetectionResult
from gcpbench.runlock import writer_lock
from gcpbench.runs import DEFAULT_ROOT, RunDir, check_run_accepts, new_run_dir
from gcpbench.runtime import is_main_process, resolve_device

log = logging.getLogger(__name__)

TASKS: dict[str, tuple[str, ...]] = {"faster_rcnn": ("bbox",), "mask_rcnn": ("bbox", "segm")}


class MetricsCollector(Hook):
    """Keeps the metrics of the latest validation run."""

    priority = "LOWEST"

    def __init__(self) -> None:
        self.metrics: dict[str, float] | None = None

    def after_val_epoch(self, runner: Any, metrics: Mapping[str, float] | None = None) -> None:
        self.metrics = dict(metrics or {})


def coco_table(metrics: Mapping[str, float], task: str) -> dict[str, float | None]:
    """AP, AP50, AP75, APs, APm, APl of ``task`` (bbox | segm) in percent from CocoMetric's keys."""
    table: dict[str, float | None] = {}
    for name, suffix in COCO_METRICS.items():
        key = f"coco/{task}_{suffix}"
        if key not in metrics:
            raise GcpbenchError(f"the COCO evaluation returned no '{key}' (got {', '.join(sorted(metrics)) or 'nothing'})")
        value = float(metrics[key])
        table[name] = round(100.0 * value, 2) if value >= 0 else None
    return table


def no_detection_metrics(ann_file: str | os.PathLike, tasks: tuple[str, ...]) -> dict[str, float]:
    """CocoMetric's keys when the detector found nothing (it then returns no metrics): AP 0,
    except -1 for the object sizes the ground truth does not contain (as pycocotools reports)."""
    annotations = [a for a in json.loads(Path(ann_file).read_text())["annotations"] if not a.get("iscrowd")]
    areas = [float(a["area"]) for a in annotations]
    present = {"mAP": bool(areas), "mAP_50": bool(areas), "mAP_75": bool(areas),
               "mAP_s": any(a < 32 ** 2 for a in areas), "mAP_m": any(32 ** 2 <= a < 96 ** 2 for a in areas),
               "mAP_l": any(a >= 96 ** 2 for a in areas)}
    return {f"coco/{task}_{key}": 0.0 if has else -1.0 for task in tasks for key, has in present.items()}


def detection_result(metrics: Mapping[str, float], framework: str, backbone: Backbone, dataset: str,
                     checkpoint: str | None, identity: ResultIdentity | None = None) -> DetectionResult:
    """The ``eval/detection_<framework>.json`` record of COCO ``metrics``."""
    tables = {task: coco_table(metrics, task) for task in TASKS[framework]}
    return DetectionResult(model=backbone.name, framework=framework, backbone=backbone.arch, method=backbone.mode,
                           dataset=dataset, checkpoint=checkpoint, bbox=tables["bbox"], segm=tables.get("segm"),
                           identity=identity, provenance=provenance())


def select_device(device: str) -> str:
    """``auto`` (CUDA when present), ``cpu`` (hides the GPUs from mmengine) or ``cuda``
    (:func:`gcpbench.runtime.resolve_device`; mmengine picks the GPU index itself)."""
    if device.strip().lower() not in ("auto", "cpu", "cuda"):
        raise GcpbenchError(f"unknown device '{device}': use auto, cpu or cuda")
    kind = resolve_device(device).type
    if kind == "cpu":
        os.environ["CUDA_VISIBLE_DEVICES"] = ""  # mmengine places the model on CUDA whenever it sees one
    return kind


def verify_backbone_weights(cfg: Any) -> str | None:
    """Check the configured backbone weights before any data is read; returns their zoo model name."""
    import torch
    from mmdet.registry import MODELS

    from gcpbench.detection.weights import fit_backbone_state, read_weights

    backbone_cfg = cfg.model.backbone.copy()
    with torch.device("meta"):
        backbone = MODELS.build(backbone_cfg)
    if backbone.weights_source is None:
        return None
    checkpoint = read_weights(backbone.weights_source)
    fit_backbone_state(backbone.state_dict(), checkpoint, backbone.depth, backbone.weights_source, backbone.weights_prefix,
                       backbone.mode)
    name = checkpoint.get("model")
    return name if isinstance(name, str) else None


def start_cpu_processes(cfg: Any) -> None:
    """torchrun without GPUs: mmengine's launcher insists on CUDA, so join a gloo group here
    (the Runner then skips its own set-up) and wrap the model in DDP without device ids."""
    import torch
    import torch.distributed as dist

    if cfg.launcher != "pytorch" or torch.cuda.is_available():
        return
    if "RANK" not in os.environ:
        raise GcpbenchError("--launcher pytorch runs under torchrun: torchrun --nproc_per_node N -m gcpbench detect ...")
    if not dist.is_initialized():
        dist.init_process_group(backend="gloo")
    cfg.model_wrapper_cfg = dict(type="MMDistributedDataParallel", broadcast_buffers=False, device_ids=None)


def run_config(cfg: Any, eval_only: bool, console: bool = True,
               say: Callable[[str], None] | None = None) -> dict[str, float]:
    """Train then evaluate (or evaluate only) with mmengine's Runner; the final metrics.
    ``console=False``: mmengine's log goes to its file in the work dir only (warnings still
    reach the terminal), and ``say`` names that file."""
    from mmengine.runner import Runner

    start_cpu_processes(cfg)
    runner = Runner.from_cfg(cfg)
    if not console:
        for handler in runner.logger.handlers:
            if isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler):
                handler.setLevel(max(handler.level, logging.WARNING))
        if say is not None:
            say(f"mmengine's log: {Path(runner.log_dir) / (runner.timestamp + '.log')}")
    collector = MetricsCollector()
    runner.register_hook(collector)
    if not eval_only:
        runner.train()
    if collector.metrics is None:
        runner.val()
    return collector.metrics or {}


@dataclass(frozen=True)
class DetectOptions:
    """Everything ``gcpbench detect`` takes."""

    framework: str
    backbone: str
    ckpt: str | None = None
    data: Path | None = None
    epochs: int | None = None
    max_iters: int | None = None
    eval_only: bool = False
    weights: Path | None = None
    work_dir: Path | None = None
    launcher: str = "none"
    device: str = "auto"
    resume: bool = False
    batch_size: int | None = None
    workers: int | None = None
    seed: int = 0
    quiet: bool = False
    config: Path | None = None
    cfg_options: dict[str, Any] | None = None  # --cfg-options KEY=VALUE ...: merged into the config last
    tensorboard: bool = True  # mmengine's TensorboardVisBackend (WORK_DIR/<timestamp>/vis_data/)
    gcp_norm: str | None = None  # the GCP normalisation the backbone was pre-trained with (checked against --ckpt)

    def __post_init__(self) -> None:
        """Counts given as 0 or less are refused (mmengine would accept some of them silently)."""
        for option, value in (("--epochs", self.epochs), ("--max-iters", self.max_iters),
                              ("--batch-size", self.batch_size)):
            require_positive(option, value)
        if self.workers is not None and self.workers < 0:
            raise GcpbenchError(f"--workers must be 0 or more, got {self.workers}")


def _dataset(data: Path | None, say: Callable[[str], None]) -> tuple[str, Path | None, Path | None]:
    """(dataset label, COCO root, synthetic root): a real tree is checked against its manifest,
    a synthetic one (``gcpbench data synth --task detection``) is recognised by its stamp."""
    from gcpbench.data.synthetic_coco import CATEGORIES, detection_set_info, ensure_detection_set

    if data is None:
        root = ensure_detection_set()
        say(f"no --data: using the built-in synthetic COCO-format set at {root} ({len(CATEGORIES)} classes)")
        return "synthetic", None, root
    if detection_set_info(data) is not None:
        from gcpbench.data.coco_check import check_coco_root

        check_coco_root(data)
        return "synthetic", None, Path(data)
    from gcpbench.data.manifests import check_tree

    check_tree("coco", data)
    return "coco", Path(data), None


def run_config_record(options: DetectOptions, backbone: Backbone, dataset: str, root: Path, cfg: Any,
                      zoo_model: str | None) -> DetectionConfig:
    """The run directory's ``config.json`` (without the fingerprint of the weights)."""
    from gcpbench.models.registry import MODELS as ZOO

    info = ZOO.get(zoo_model) if zoo_model else None
    gcp_norm = backbone_norm(options, backbone, info)
    schedule = f"{options.epochs} epochs" if options.epochs else f"{options.max_iters} iters" if options.max_iters else "1x"
    backbone_cfg = cfg.model.backbone
    return DetectionConfig(
        model=backbone.name, arch=backbone.arch, head="gap" if backbone.mode == "gap" else "gcp",
        gcp_dim=info.head.dim if info is not None and info.head.is_gcp else None, gcp_norm=gcp_norm,
        schedule=schedule, dataset=dataset, data_root=str(root), framework=options.framework, method=backbone.mode,
        backbone_weights=(backbone_cfg.get("init_cfg") or {}).get("checkpoint"), backbone_weights_model=zoo_model,
        weights=str(options.weights) if options.weights else None, eval_only=options.eval_only, epochs=options.epochs,
        max_iters=options.max_iters, launcher=options.launcher, seed=options.seed,
        mmdet_config=str(config_file(options.framework, backbone, options.config)),
        cfg_options=dict(options.cfg_options) if options.cfg_options else None, provenance=provenance(device=options.device))


def backbone_norm(options: DetectOptions, backbone: Backbone, info: Any) -> str | None:
    """The GCP normalisation a GCP_D / GCP_M backbone stands for: its weights' (a zoo GCP
    model's), else ``--gcp-norm`` (random weights); the two must agree. None for GAP."""
    from gcpbench.pooling.registry import DEFAULT_NORM, method

    given = method(options.gcp_norm).name if options.gcp_norm else None
    if backbone.mode == "gap":
        if given is not None:
            raise GcpbenchError(f"--gcp-norm {given} applies to GCP_D / GCP_M backbones, not {backbone.name}")
        return None
    stored = info.head.norm if info is not None and info.head.is_gcp else None
    if given is not None and stored is not None and given != stored:
        raise GcpbenchError(f"the backbone weights are of {info.name} (the {stored} normalisation) but --gcp-norm "
                            f"{given} was given; drop one of them")
    return stored or given or DEFAULT_NORM


def detect(options: DetectOptions, say: Callable[[str], None] | None = None) -> tuple[RunDir, dict[str, Any]]:
    """Run ``gcpbench detect``: build the config, train + evaluate, write the run directory.

    Notes go to ``say`` (default: logged; debug-level with ``options.quiet``)."""
    say = say or (log.debug if options.quiet else log.info)
    require_weights_only_default()
    options = dataclasses.replace(options, framework=check_framework(options.framework))
    framework = options.framework
    backbone = parse_backbone(options.backbone)
    if options.eval_only:
        if options.weights is None:
            raise GcpbenchError("--eval-only needs --weights DET_CKPT (an mmdetection checkpoint of this framework)")
        if options.ckpt is not None or options.epochs or options.max_iters or options.resume:
            raise GcpbenchError("--eval-only evaluates --weights as they are: drop --ckpt / --epochs / --max-iters / --resume")
    if options.weights is not None:
        if not Path(options.weights).is_file():
            raise GcpbenchError(f"detector checkpoint '{options.weights}' does not exist")
        from gcpbench.detection.weights import read_weights

        read_weights(options.weights)  # a file that is no checkpoint fails here, not inside mmengine's Runner
    if options.work_dir is not None:
        require_writable(options.work_dir, "choose another --work-dir", "work directory")
    else:
        require_writable(DEFAULT_ROOT, "pass --work-dir DIR or set GCPBENCH_RUNS", "runs folder")
    select_device(options.device)
    dataset, coco_root, synthetic_root = _dataset(options.data, say)
    run = new_run_dir(options.work_dir, f"detect_{framework}_{backbone.name}")
    if options.resume:
        check_resume_checkpoint(run.path)
    ckpt = "none" if options.eval_only else options.ckpt
    if ckpt is None and dataset == "synthetic":
        ckpt = "none"
        say("no --ckpt: the backbone starts from random weights")
    cfg = build_config(framework, backbone, work_dir=run.path, data_root=coco_root, synthetic_root=synthetic_root,
                       weights=ckpt, epochs=options.epochs, max_iters=options.max_iters,
                       load_from=str(options.weights) if options.weights else None, resume=options.resume,
                       launcher=options.launcher, batch_size=options.batch_size, workers=options.workers, seed=options.seed,
                       config=options.config, cfg_options=options.cfg_options, tensorboard=options.tensorboard)
    zoo_model = verify_backbone_weights(cfg)
    record = run_config_record(options, backbone, dataset, coco_root or synthetic_root, cfg, zoo_model)
    identity = detection_identity(record)
    main_rank = is_main_process()  # torch.distributed starts inside the Runner: RANK tells
    with writer_lock(run.path, f"detection_{framework}") if main_rank else contextlib.nullcontext():
        if main_rank:
            check_detection_run(run, record, identity.producer)
            run.write_config(dataclasses.replace(record, checkpoint_sha256=identity.producer.sha256 or None))
        with contextlib.redirect_stdout(io.StringIO()) if options.quiet else contextlib.nullcontext():  # pycocotools prints
            try:
                metrics = run_config(cfg, options.eval_only, console=log.isEnabledFor(logging.DEBUG), say=say)
            except KeyboardInterrupt:
                raise Interrupted(interrupted_note(run.path, options)) from None
        if not metrics:
            say("the detector found no object above the score threshold: every AP is 0")
            metrics = no_detection_metrics(cfg.val_evaluator.ann_file, TASKS[framework])
        checkpoint = str(options.weights) if options.eval_only else _last_checkpoint(run.path)
        result = detection_result(metrics, framework, backbone, dataset, checkpoint, identity)
        if main_rank:
            run.write_result(result)
    return run, result.to_json()


def detection_identity(record: DetectionConfig) -> ResultIdentity:
    """What a detection result comes from: the backbone (name and initial weights, fingerprinted),
    the data and the options that shape it (an ``--eval-only`` run: the detector checkpoint)."""
    source = record.weights if record.eval_only else record.backbone_weights
    if source and Path(source).is_file():
        producer = Producer.of(source, record.model)
    else:
        producer = Producer(record.model, str(source or "none"), "")
    options = {key: getattr(record, key) for key in ("framework", "eval_only", "epochs", "max_iters", "seed")}
    if record.cfg_options:
        options["cfg_options"] = dict(sorted(record.cfg_options.items()))
    if record.gcp_norm not in (None, "isqrt"):  # iSQRT-COV backbones keep the identity of earlier versions
        options["gcp_norm"] = record.gcp_norm
    return ResultIdentity(producer, record.data_root, options)


def check_detection_run(run: RunDir, record: DetectionConfig, producer: Producer) -> None:
    """Refuse (one line) a ``--work-dir`` that holds another command's run, another backbone's,
    another framework's or one started from other weights."""
    existing = run.run_config()
    if existing is None:
        return
    if not isinstance(existing, DetectionConfig):
        raise GcpbenchError(f"'{run.path}' holds a {existing.command} run of {existing.model}; "
                            "detection writes its own run directory: choose another --work-dir")
    check_run_accepts(run.path, existing, producer, "detection results")
    if existing.framework != record.framework:
        raise GcpbenchError(f"'{run.path}' holds a {existing.framework} detection run; choose another "
                            f"--work-dir for {record.framework}")


def interrupted_note(work_dir: Path, options: DetectOptions) -> str:
    """What a stopped ``detect`` kept and the command that continues it."""
    if options.eval_only:
        return "nothing was written; rerun the same command to evaluate"
    if (Path(work_dir) / "last_checkpoint").is_file():
        again = "rerun the same command" if options.resume else "rerun the same command with --resume"
        return f"the detector's checkpoints so far are in '{work_dir}'; {again} to continue from the last one"
    return "no detector checkpoint was written yet; rerun the same command to start again"


RESUME_KEYS = ("meta", "state_dict", "message_hub")  # what mmengine's Runner.resume reads unconditionally


def check_resume_checkpoint(work_dir: Path) -> Path | None:
    """``detect --resume``: the checkpoint mmengine continues from (named by its ``last_checkpoint``
    file), checked before mmengine reads it: a missing, damaged or incomplete file is one line
    (mmengine raised FileNotFoundError / KeyError). None: no pointer, training starts afresh."""
    pointer = Path(work_dir) / "last_checkpoint"
    if not pointer.is_file():
        return None
    named = pointer.read_text().strip()
    fix = (f"delete '{pointer}' to start over, or write the path of an earlier epoch_N.pth / iter_N.pth of "
           f"'{work_dir}' into it")
    path = Path(named)
    if not named or not path.is_file():
        raise GcpbenchError(f"--resume: '{pointer}' names '{named}', which does not exist; {fix}")
    from gcpbench.detection.weights import read_weights

    try:
        checkpoint = read_weights(path)
    except GcpbenchError as exc:
        raise GcpbenchError(f"--resume: {exc}; or {fix}") from None
    missing = [key for key in RESUME_KEYS if key not in checkpoint]
    if not missing and not isinstance(checkpoint["meta"], dict):
        missing = ["meta (not a table)"]
    if missing:
        raise GcpbenchError(f"--resume: '{path}' is not a complete mmengine checkpoint (no {', '.join(missing)}); {fix}")
    return path


def _last_checkpoint(work_dir: Path) -> str | None:
    """The checkpoint mmengine wrote last (its ``last_checkpoint`` pointer file)."""
    pointer = Path(work_dir) / "last_checkpoint"
    return pointer.read_text().strip() if pointer.is_file() else None
