"""Build the mmengine ``Config`` of a ``gcpbench detect`` run from ``configs/detection``.

The config files name R-50 / R-101 only; ResNet-18 / 34 reuse the R-50 file with their depth
and FPN input channels. Command-line options override the data root, the schedule length,
the backbone weights, the work directory and the launcher.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gcpbench.errors import GcpbenchError
from gcpbench.models.registry import closest

FRAMEWORKS: tuple[str, ...] = ("faster_rcnn", "mask_rcnn")
DEPTHS: tuple[int, ...] = (18, 34, 50, 101)
MODES: tuple[str, ...] = ("gap", "gcp_d", "gcp_m")
BACKBONES: tuple[str, ...] = tuple(f"resnet{d}_{m}" for d in DEPTHS for m in MODES)
BASIC_BLOCK_CHANNELS = [64, 128, 256, 512]  # ResNet-18/34 C2-C5
SYNTHETIC_PROPOSALS, SYNTHETIC_ROIS = 100, 64  # <= 3 objects per image: 1000 proposals / 512 RoIs are wasted


@dataclass(frozen=True)
class Backbone:
    """A ``resnet{depth}_{mode}`` backbone spelling."""

    depth: int
    mode: str

    @property
    def arch(self) -> str:
        return f"resnet{self.depth}"

    @property
    def name(self) -> str:
        return f"{self.arch}_{self.mode}"


def parse_backbone(name: str) -> Backbone:
    """``resnet50_gcp_m`` -> Backbone(50, 'gcp_m'); anything else raises with the closest name."""
    match = re.fullmatch(rf"resnet(\d+)_({'|'.join(MODES)})", name.strip().lower().replace("-", "_"))
    if match is None or int(match.group(1)) not in DEPTHS:
        raise GcpbenchError(f"unknown detection backbone '{name}'{closest(name, BACKBONES)}; "
                            f"spell it resnet{{18,34,50,101}}_{{gap,gcp_d,gcp_m}}")
    return Backbone(int(match.group(1)), match.group(2))


def check_framework(framework: str) -> str:
    """The framework name, or a one-line error with the closest valid one."""
    key = framework.strip().lower().replace("-", "_")
    if key not in FRAMEWORKS:
        raise GcpbenchError(f"unknown framework '{framework}'{closest(key, FRAMEWORKS)}; choose faster_rcnn or mask_rcnn")
    return key


def configs_dir() -> Path:
    """The packaged ``configs/detection`` (``gcpbench/configs``, shipped in the wheel; in a checkout
    a link to the repository's ``configs/``), or ``$GCPBENCH_CONFIGS/detection``."""
    root = Path(os.environ["GCPBENCH_CONFIGS"]) if "GCPBENCH_CONFIGS" in os.environ else Path(__file__).resolve().parents[1] / "configs"
    folder = root / "detection"
    if not folder.is_dir():
        raise GcpbenchError(f"detection configs not found at '{folder}'; reinstall gcpbench or point GCPBENCH_CONFIGS at a "
                            "folder holding detection/*.py")
    return folder


def config_file(framework: str, backbone: Backbone, config: str | os.PathLike | None = None) -> Path:
    """``config`` (a user's mmdetection config file) when given, else the packaged file for a
    framework and backbone (R-50's for ResNet-18 / 34)."""
    if config is not None:
        path = Path(config)
        if not path.is_file() or path.suffix not in (".py", ".json", ".yaml", ".yml"):
            raise GcpbenchError(f"--config '{config}' is not an mmdetection config file (.py, .json, .yaml)")
        return path
    depth = backbone.depth if backbone.depth in (50, 101) else 50
    stem = framework.replace("_", "-")
    return configs_dir() / f"{stem}_r{depth}-{backbone.mode.replace('_', '-')}_fpn_1x_coco.py"


def _pipelines(cfg: Any) -> list[list[dict]]:
    """The transform lists of the train / val / test data loaders."""
    loaders = [cfg.get(k) for k in ("train_dataloader", "val_dataloader", "test_dataloader")]
    return [loader.dataset.pipeline for loader in loaders if loader is not None]


def set_image_scale(cfg: Any, scale: tuple[int, int]) -> None:
    """Every ``Resize`` of every pipeline resizes to ``scale`` (keeping the aspect ratio)."""
    for pipeline in _pipelines(cfg):
        for transform in pipeline:
            if transform.get("type") == "Resize":
                transform["scale"] = tuple(scale)


def set_data(cfg: Any, root: Path, classes: tuple[str, ...] | None = None) -> None:
    """Point every loader and evaluator at the COCO 2017 tree ``root`` (optionally other classes)."""
    data_root = str(root).rstrip("/") + "/"
    for key in ("train_dataloader", "val_dataloader", "test_dataloader"):
        dataset = cfg[key].dataset
        dataset.data_root = data_root
        if classes is not None:
            dataset.metainfo = dict(classes=tuple(classes))
    for key in ("val_evaluator", "test_evaluator"):
        cfg[key].ann_file = data_root + "annotations/instances_val2017.json"
    if classes is not None:
        roi_head = cfg.model.roi_head
        roi_head.bbox_head.num_classes = len(classes)
        if "mask_head" in roi_head:
            roi_head.mask_head.num_classes = len(classes)


def set_backbone(cfg: Any, backbone: Backbone, weights: str | None) -> None:
    """Depth (and FPN channels for ResNet-18 / 34) and the backbone weights ("none": random)."""
    model_backbone = cfg.model.backbone
    if backbone.depth != model_backbone.depth:
        default = (model_backbone.get("init_cfg") or {}).get("checkpoint", "")
        model_backbone.depth = backbone.depth
        if default:
            model_backbone.init_cfg.checkpoint = default.replace("resnet50", backbone.arch)
    if backbone.depth in (18, 34):
        cfg.model.neck.in_channels = list(BASIC_BLOCK_CHANNELS)
    if weights is not None:
        model_backbone.init_cfg = None if weights.lower() == "none" else dict(type="Pretrained", checkpoint=str(weights))


def set_proposals(cfg: Any, proposals: int, rois: int) -> None:
    """Fewer RPN proposals and sampled RoIs (the R-CNN head's cost on a CPU is per RoI)."""
    for stage in (cfg.model.train_cfg.rpn_proposal, cfg.model.test_cfg.rpn):
        stage.nms_pre = min(stage.nms_pre, 2 * proposals)
        stage.max_per_img = min(stage.max_per_img, proposals)
    cfg.model.train_cfg.rcnn.sampler.num = min(cfg.model.train_cfg.rcnn.sampler.num, rois)


def _milestones(length: int, base_length: int, base_milestones: list[int]) -> list[int]:
    """The base schedule's LR steps scaled to ``length`` (steps at or past the end are dropped)."""
    scaled = sorted({round(m * length / base_length) for m in base_milestones})
    return [m for m in scaled if 0 < m < length]


def set_epochs(cfg: Any, epochs: int) -> None:
    """An epoch-based schedule of ``epochs`` with the 1x schedule's LR steps scaled to it."""
    base = cfg.train_cfg.max_epochs
    cfg.train_cfg.max_epochs = epochs
    cfg.train_cfg.val_interval = min(cfg.train_cfg.get("val_interval", 1), epochs)
    for scheduler in cfg.param_scheduler:
        if scheduler.type == "MultiStepLR":
            scheduler.milestones = _milestones(epochs, base, list(scheduler.milestones))
            scheduler.end = epochs


def set_max_iters(cfg: Any, max_iters: int) -> None:
    """An iteration-based schedule (validation and checkpoint at the end) with scaled LR steps."""
    base_epochs = cfg.train_cfg.max_epochs
    cfg.train_cfg = dict(type="IterBasedTrainLoop", max_iters=max_iters, val_interval=max_iters)  # replaces, no merge
    for scheduler in cfg.param_scheduler:
        if scheduler.type == "MultiStepLR":
            scheduler.milestones = _milestones(max_iters, base_epochs, list(scheduler.milestones))
            scheduler.by_epoch, scheduler.begin, scheduler.end = False, 0, max_iters
        elif scheduler.type == "LinearLR":
            scheduler.end = min(scheduler.end, max(1, max_iters // 5))  # warm up over at most a fifth of a short run
    cfg.train_dataloader.sampler = dict(type="InfiniteSampler", shuffle=True)
    cfg.default_hooks.checkpoint = dict(type="CheckpointHook", by_epoch=False, interval=max_iters)
    cfg.log_processor.by_epoch = False


def set_workers(cfg: Any, workers: int, batch_size: int | None) -> None:
    """Data-loader processes (0: in the main process) and the training batch size per GPU."""
    for key in ("train_dataloader", "val_dataloader", "test_dataloader"):
        cfg[key].num_workers = workers
        cfg[key].persistent_workers = workers > 0
    if batch_size is not None:
        cfg.train_dataloader.batch_size = batch_size


def build_config(framework: str, backbone: str | Backbone, *, work_dir: str | os.PathLike, data_root: str | os.PathLike | None = None,
                 synthetic_root: str | os.PathLike | None = None, weights: str | None = None, epochs: int | None = None,
                 max_iters: int | None = None, load_from: str | None = None, resume: bool = False, launcher: str = "none",
                 batch_size: int | None = None, workers: int | None = None, image_scale: tuple[int, int] | None = None,
                 seed: int = 0, log_interval: int | None = None, config: str | os.PathLike | None = None) -> Any:
    """The resolved mmengine ``Config`` of one run.

    ``data_root`` is a COCO 2017 tree; without it ``synthetic_root`` (the built-in set: 3
    classes, images kept at their size, 100 proposals / 64 RoIs per image, single-process loading) is used. ``weights`` names the backbone
    weights (``"none"``: random), None keeps the config's. Exactly one of ``epochs`` /
    ``max_iters`` may be given (neither: the 1x schedule). The learning rate follows the
    linear scaling rule (0.02 at 16 images per step). ``config`` replaces the packaged config
    file by a user's own (the options above still apply to it).
    """
    from mmengine.config import Config

    framework = check_framework(framework)
    backbone = parse_backbone(backbone) if isinstance(backbone, str) else backbone
    if epochs is not None and max_iters is not None:
        raise GcpbenchError("give either --epochs or --max-iters, not both")
    if (epochs is not None and epochs < 1) or (max_iters is not None and max_iters < 1):
        raise GcpbenchError("--epochs / --max-iters must be at least 1")
    if launcher not in ("none", "pytorch"):
        raise GcpbenchError(f"unknown launcher '{launcher}': use none or pytorch (torchrun)")
    cfg = Config.fromfile(str(config_file(framework, backbone, config)))
    set_backbone(cfg, backbone, weights)
    if data_root is not None:
        set_data(cfg, Path(data_root))
    else:
        if synthetic_root is None:
            raise GcpbenchError("no data: pass --data COCO_ROOT or build the synthetic set")
        from gcpbench.data.synthetic_coco import CATEGORIES, detection_set_info

        set_data(cfg, Path(synthetic_root), CATEGORIES)
        size = int((detection_set_info(synthetic_root) or {}).get("image_size", 128))
        set_image_scale(cfg, (size, size))  # the images' own size: no up-sampling on a CPU
        set_proposals(cfg, SYNTHETIC_PROPOSALS, SYNTHETIC_ROIS)
        workers = 0 if workers is None else workers
        log_interval = 1 if log_interval is None else log_interval
    if image_scale is not None:
        set_image_scale(cfg, image_scale)
    if workers is not None or batch_size is not None:
        set_workers(cfg, cfg.train_dataloader.num_workers if workers is None else workers, batch_size)
    if epochs is not None:
        set_epochs(cfg, epochs)
    if max_iters is not None:
        set_max_iters(cfg, max_iters)
    if log_interval is not None:
        cfg.default_hooks.logger.interval = log_interval
    cfg.auto_scale_lr = dict(enable=True, base_batch_size=16)
    cfg.randomness = dict(seed=seed)
    cfg.work_dir = str(work_dir)
    cfg.load_from = str(load_from) if load_from else None
    cfg.resume = resume
    cfg.launcher = launcher
    return cfg
