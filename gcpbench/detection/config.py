"""Build the mmengine ``Config`` of a ``gcpbench detect`` run from ``configs/detection``.

The config files name R-50 / R-101 only (the GCP variants inherit the GAP file); ResNet-18 / 34
reuse the R-50 file with their depth, FPN input channels and initial weights. Every command-line
option (data root, schedule length, backbone weights, work directory, launcher) is a dict of
dotted keys merged into the loaded config with mmengine's ``Config.merge_from_dict`` (list
entries by index, replaced sections with ``_delete_``); nothing edits the config in place.
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


def default_weights(backbone: Backbone) -> str:
    """The packaged configs' initial backbone weights of ``backbone``'s depth and mode: torchvision's
    ImageNet GAP ResNet, or the gcpbench GCP checkpoint under ``checkpoints/``."""
    return f"torchvision://{backbone.arch}" if backbone.mode == "gap" else f"checkpoints/{backbone.arch}_gcp.pth"


def _replacing(section: Any, key: str, value: dict[str, Any]) -> dict[str, Any]:
    """``value`` to replace ``section[key]`` whole in a merge (mmengine's ``_delete_``, which must
    not be given for a key the section lacks: it would stay in the config)."""
    return dict(value, _delete_=True) if section.get(key) is not None else dict(value)


def _each_resize(cfg: Any, value: dict[str, Any]) -> dict[str, Any]:
    """``value`` merged into every ``Resize`` of the train / val / test pipelines (list-index keys)."""
    merged: dict[str, Any] = {}
    for key in ("train_dataloader", "val_dataloader", "test_dataloader"):
        if cfg.get(key) is None:
            continue
        for index, transform in enumerate(cfg[key].dataset.pipeline):
            if transform.get("type") == "Resize":
                merged[f"{key}.dataset.pipeline.{index}"] = dict(value)
    return merged


def _each_scheduler(cfg: Any, kind: str, value: Any) -> dict[str, Any]:
    """``value(scheduler)`` merged into every ``param_scheduler`` entry of type ``kind``."""
    return {f"param_scheduler.{index}": value(scheduler) for index, scheduler in enumerate(cfg.param_scheduler)
            if scheduler.type == kind}


def data_overrides(cfg: Any, root: Path, classes: tuple[str, ...] | None = None) -> dict[str, Any]:
    """Every loader and evaluator on the COCO 2017 tree ``root`` (optionally other classes)."""
    data_root = str(root).rstrip("/") + "/"
    options: dict[str, Any] = {}
    for key in ("train_dataloader", "val_dataloader", "test_dataloader"):
        options[f"{key}.dataset.data_root"] = data_root
        if classes is not None:
            options[f"{key}.dataset.metainfo"] = _replacing(cfg[key].dataset, "metainfo", dict(classes=tuple(classes)))
    for key in ("val_evaluator", "test_evaluator"):
        options[f"{key}.ann_file"] = data_root + "annotations/instances_val2017.json"
    if classes is not None:
        options["model.roi_head.bbox_head.num_classes"] = len(classes)
        if "mask_head" in cfg.model.roi_head:
            options["model.roi_head.mask_head.num_classes"] = len(classes)
    return options


def backbone_overrides(cfg: Any, backbone: Backbone, weights: str | None) -> dict[str, Any]:
    """Depth (FPN input channels for ResNet-18 / 34, and the initial weights made for that depth)
    and the backbone weights ("none": random)."""
    options: dict[str, Any] = {}
    if backbone.depth != cfg.model.backbone.depth:
        options["model.backbone.depth"] = backbone.depth
        if (cfg.model.backbone.get("init_cfg") or {}).get("checkpoint"):
            options["model.backbone.init_cfg.checkpoint"] = default_weights(backbone)
    if backbone.depth in (18, 34):
        options["model.neck.in_channels"] = list(BASIC_BLOCK_CHANNELS)
    if weights is not None:
        options["model.backbone.init_cfg"] = (None if weights.lower() == "none" else _replacing(
            cfg.model.backbone, "init_cfg", dict(type="Pretrained", checkpoint=str(weights))))
    return options


def proposal_overrides(cfg: Any, proposals: int, rois: int) -> dict[str, Any]:
    """Fewer RPN proposals and sampled RoIs (the R-CNN head's cost on a CPU is per RoI)."""
    options: dict[str, Any] = {}
    for key, stage in (("model.train_cfg.rpn_proposal", cfg.model.train_cfg.rpn_proposal),
                       ("model.test_cfg.rpn", cfg.model.test_cfg.rpn)):
        options[key] = dict(nms_pre=min(stage.nms_pre, 2 * proposals), max_per_img=min(stage.max_per_img, proposals))
    options["model.train_cfg.rcnn.sampler.num"] = min(cfg.model.train_cfg.rcnn.sampler.num, rois)
    return options


def _milestones(length: int, base_length: int, base_milestones: list[int]) -> list[int]:
    """The base schedule's LR steps scaled to ``length`` (steps at or past the end are dropped)."""
    scaled = sorted({round(m * length / base_length) for m in base_milestones})
    return [m for m in scaled if 0 < m < length]


def epoch_overrides(cfg: Any, epochs: int) -> dict[str, Any]:
    """An epoch-based schedule of ``epochs`` with the 1x schedule's LR steps scaled to it."""
    base = cfg.train_cfg.max_epochs
    return {"train_cfg.max_epochs": epochs, "train_cfg.val_interval": min(cfg.train_cfg.get("val_interval", 1), epochs),
            **_each_scheduler(cfg, "MultiStepLR", lambda s: dict(milestones=_milestones(epochs, base, list(s.milestones)),
                                                                  end=epochs))}


def iteration_overrides(cfg: Any, max_iters: int) -> dict[str, Any]:
    """An iteration-based schedule (validation and checkpoint at the end) with scaled LR steps;
    the warm-up lasts at most a fifth of a short run."""
    base_epochs = cfg.train_cfg.max_epochs
    return {
        "train_cfg": _replacing(cfg, "train_cfg", dict(type="IterBasedTrainLoop", max_iters=max_iters, val_interval=max_iters)),
        **_each_scheduler(cfg, "MultiStepLR", lambda s: dict(milestones=_milestones(max_iters, base_epochs, list(s.milestones)),
                                                              by_epoch=False, begin=0, end=max_iters)),
        **_each_scheduler(cfg, "LinearLR", lambda s: dict(end=min(s.end, max(1, max_iters // 5)))),
        "train_dataloader.sampler": _replacing(cfg.train_dataloader, "sampler", dict(type="InfiniteSampler", shuffle=True)),
        "default_hooks.checkpoint": _replacing(cfg.default_hooks, "checkpoint",
                                               dict(type="CheckpointHook", by_epoch=False, interval=max_iters)),
        "log_processor.by_epoch": False,
    }


def worker_overrides(workers: int, batch_size: int | None) -> dict[str, Any]:
    """Data-loader processes (0: in the main process) and the training batch size per GPU."""
    options: dict[str, Any] = {f"{key}.{field}": value for key in ("train_dataloader", "val_dataloader", "test_dataloader")
                               for field, value in (("num_workers", workers), ("persistent_workers", workers > 0))}
    if batch_size is not None:
        options["train_dataloader.batch_size"] = batch_size
    return options


def build_config(framework: str, backbone: str | Backbone, *, work_dir: str | os.PathLike, data_root: str | os.PathLike | None = None,
                 synthetic_root: str | os.PathLike | None = None, weights: str | None = None, epochs: int | None = None,
                 max_iters: int | None = None, load_from: str | None = None, resume: bool = False, launcher: str = "none",
                 batch_size: int | None = None, workers: int | None = None, image_scale: tuple[int, int] | None = None,
                 seed: int = 0, log_interval: int | None = None, config: str | os.PathLike | None = None,
                 cfg_options: dict[str, Any] | None = None, tensorboard: bool = True) -> Any:
    """The resolved mmengine ``Config`` of one run.

    ``data_root`` is a COCO 2017 tree; without it ``synthetic_root`` (the built-in set: 3
    classes, images kept at their size, 100 proposals / 64 RoIs per image, single-process loading) is used. ``weights`` names the backbone
    weights (``"none"``: random), None keeps the config's. Exactly one of ``epochs`` /
    ``max_iters`` may be given (neither: the 1x schedule). The learning rate follows the
    linear scaling rule (0.02 at 16 images per step). ``config`` replaces the packaged config
    file by a user's own (the options above still apply to it). ``cfg_options`` (``detect
    --cfg-options KEY=VALUE ...``) are merged last with ``Config.merge_from_dict``, as
    mmdetection's own tools do; the keys gcpbench owns (work dir, launcher, resume, load_from)
    are refused. ``tensorboard``: mmengine's ``TensorboardVisBackend`` beside its local one
    (scalars in ``WORK_DIR/<timestamp>/vis_data/``).
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
    # Each step reads the config as the steps before it left it (list indices, base schedule).
    cfg.merge_from_dict(backbone_overrides(cfg, backbone, weights))
    if data_root is not None:
        cfg.merge_from_dict(data_overrides(cfg, Path(data_root)))
    else:
        if synthetic_root is None:
            raise GcpbenchError("no data: pass --data COCO_ROOT or build the synthetic set")
        from gcpbench.data.synthetic_coco import CATEGORIES, detection_set_info

        size = int((detection_set_info(synthetic_root) or {}).get("image_size", 128))
        cfg.merge_from_dict({**data_overrides(cfg, Path(synthetic_root), CATEGORIES),
                             **_each_resize(cfg, dict(scale=(size, size))),  # the images' own size: no up-sampling on a CPU
                             **proposal_overrides(cfg, SYNTHETIC_PROPOSALS, SYNTHETIC_ROIS)})
        workers = 0 if workers is None else workers
        log_interval = 1 if log_interval is None else log_interval
    if image_scale is not None:
        cfg.merge_from_dict(_each_resize(cfg, dict(scale=tuple(image_scale))))
    if workers is not None or batch_size is not None:
        cfg.merge_from_dict(worker_overrides(cfg.train_dataloader.num_workers if workers is None else workers, batch_size))
    if epochs is not None:
        cfg.merge_from_dict(epoch_overrides(cfg, epochs))
    if max_iters is not None:
        cfg.merge_from_dict(iteration_overrides(cfg, max_iters))
    run: dict[str, Any] = {"auto_scale_lr": _replacing(cfg, "auto_scale_lr", dict(enable=True, base_batch_size=16)),
                           "randomness": _replacing(cfg, "randomness", dict(seed=seed)), "work_dir": str(work_dir),
                           "load_from": str(load_from) if load_from else None, "resume": resume, "launcher": launcher}
    if log_interval is not None:
        run["default_hooks.logger.interval"] = log_interval
    if tensorboard:
        backends = list((cfg.get("visualizer") or {}).get("vis_backends") or [dict(type="LocalVisBackend")])
        if not any(b.get("type") == "TensorboardVisBackend" for b in backends):
            backends.append(dict(type="TensorboardVisBackend"))
        run["visualizer.vis_backends"] = backends
    cfg.merge_from_dict(run)
    if cfg_options:
        cfg.merge_from_dict(check_cfg_options(cfg_options))
    return cfg


# config keys that gcpbench's own options set: --cfg-options must not change them behind its back
OWNED_KEYS = {"work_dir": "work-dir", "launcher": "launcher", "resume": "resume", "load_from": "weights"}


def check_cfg_options(options: dict[str, Any]) -> dict[str, Any]:
    """``options`` unchanged, or one line naming a key that gcpbench's own options set."""
    owned = sorted(k for k in options if k.split(".")[0] in OWNED_KEYS)
    if owned:
        raise GcpbenchError(f"--cfg-options {owned[0]}: gcpbench sets it; use --{OWNED_KEYS[owned[0].split('.')[0]]}")
    return dict(options)


def parse_cfg_options(pairs: list[str]) -> dict[str, Any]:
    """``KEY=VALUE`` strings -> a dict, with values parsed as mmdetection's tools parse them
    (mmengine's ``DictAction``: numbers, booleans, None, ``a,b`` and ``[a,b]`` lists)."""
    import argparse

    from mmengine.config import DictAction

    for pair in pairs:
        if "=" not in pair or pair.startswith("="):
            raise GcpbenchError(f"--cfg-options takes KEY=VALUE pairs (e.g. optim_wrapper.optimizer.lr=0.01), got '{pair}'")
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--cfg-options", nargs="+", action=DictAction, default={})
    return check_cfg_options(parser.parse_args(["--cfg-options", *pairs]).cfg_options) if pairs else {}
