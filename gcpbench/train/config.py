"""Training options -> the resolved run configuration (config.json), and resume checks."""
from __future__ import annotations

import datetime as _dt
import uuid
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from gcpbench.errors import GcpbenchError, require_positive
from gcpbench.models.registry import is_zoo_name
from gcpbench.paths import auto_resume_run
from gcpbench.records import TrainConfig
from gcpbench.runs import RunDir
from gcpbench.train.schedules import Schedule, canonical_schedule, make_schedule


@dataclass
class TrainOptions:
    """What the user asked for; ``None`` means "the default" (or "as stored", on resume)."""

    arch: str | None = None
    head: str | None = None  # gap
    gcp_dim: int | None = None  # 256
    gcp_norm: str | None = None  # GCP heads: isqrt (gcpbench.pooling.NORMS)
    gcp_options: dict[str, Any] | None = None  # the normalisation's options (--gcp-power, --cbp-dim)
    schedule: str | None = None  # LRnorm
    data: str | None = None  # None: the built-in synthetic set
    out: str | None = None
    epochs: int | None = None
    batch_size: int | None = None  # global batch
    lr: float | None = None
    workers: int | None = None
    amp: bool | None = None
    channels_last: bool | None = None  # None: on for CUDA, off on the CPU
    device: str | None = None  # auto
    seed: int | None = None  # 0
    deterministic: bool | None = None
    resume: str | None = None
    quiet: bool = False
    landscape_every: int | None = None  # 0: off
    landscape_num_eta: int | None = None  # None: the paper's 50 step sizes
    image_size: int | None = None  # None: the synthetic set's size, else 224
    gcp_precision: str | None = None  # float32 (exact); tf32 is an opt-in CUDA speed-up
    weights: str | None = None  # initial weights (a local file); None: fresh initialisation
    schedule_family: str | None = None  # timm / torchvision models: whose schedules (default resnet)
    last_stride_one: bool | None = None  # timm / torchvision ResNets with a GCP head: layer4 at stride 1
    strict: bool = False  # stop at the first unreadable image instead of skipping and listing it
    weight_decay: float | None = None  # None: the paper's (per family)
    momentum: float | None = None  # None: the paper's 0.9
    label_smoothing: float | None = None  # None: 0, the paper's plain cross-entropy
    warmup_epochs: int | None = None  # None: 0, no warm-up (the paper's)
    tensorboard: bool = True  # TensorBoard scalars in RUN/tensorboard/ (rank 0)

    def __post_init__(self) -> None:
        """Refuse option values that would otherwise be accepted silently."""
        require_positive("--image-size", self.image_size)
        require_positive("--landscape-num-eta", self.landscape_num_eta)
        if self.label_smoothing is not None and not 0.0 <= self.label_smoothing < 1.0:
            raise GcpbenchError(f"--label-smoothing must be in [0, 1), got {self.label_smoothing}")
        if self.workers is not None and self.workers < 0:
            raise GcpbenchError(f"--workers must be 0 or more, got {self.workers}")
        if self.resume is None and self.arch and "/" not in self.arch:  # timm/torchvision names check their own
            from gcpbench.models import model_name

            model_name(self.arch, self.head, self.gcp_dim)  # options that contradict the name are refused


def auto_resume_target(options: TrainOptions) -> str | None:
    """``--resume auto``: the run directory to continue (``--out`` when it holds a training run,
    whose stored configuration the other options must then match), or None to start it there.

    This is what a restarted torchrun worker or a requeued job runs: the same command line
    continues from ``last.pt`` (or starts over when the first epoch never finished).
    """
    if not options.out:
        raise GcpbenchError("--resume auto needs --out RUN_DIR: the run directory to continue, or to start "
                            "when it holds no run yet")
    return auto_resume_run(options.out)


def unstarted_run(options: TrainOptions) -> str | None:
    """``train --out RUN`` where RUN holds a training run that never finished an epoch (its
    ``config.json``, no ``checkpoints/last.pt``: it was stopped during its first epoch) with the
    same configuration: RUN, to continue as ``--resume RUN`` (from epoch 1), so that rerunning the
    same command starts it again. None otherwise (a finished epoch needs ``--resume``)."""
    if options.resume is not None or not options.out:
        return None
    run = RunDir(Path(options.out))
    if not run.config.is_file() or run.last_checkpoint.is_file():
        return None
    try:
        stored_config(replace(options, resume=options.out))
    except GcpbenchError:  # another configuration (or no training run): refused as a new run would be
        return None
    return options.out


def _stored_value(option: str, given: Any, stored: Any) -> Any:
    """The configuration value that option value ``given`` stands for, beside the ``stored`` one."""
    if option == "head":
        return str(given).lower()
    if option == "schedule":
        return canonical_schedule(given)
    if option == "gcp_dim" and stored is None:
        return None  # a GAP run ignores --gcp-dim
    if option == "gcp_norm":
        from gcpbench.pooling.registry import method

        return method(given).name
    if option == "gcp_options":
        return {**(stored or {}), **given}  # the options given replace the stored ones
    if option == "weights":
        return str(Path(given).resolve())
    return given


def requested_config(stored: TrainConfig, options: TrainOptions) -> TrainConfig:
    """``stored`` with the values of the options the user gave (those that define a run)."""
    from gcpbench.models.registry import model_identity

    changes: dict[str, Any] = {}
    for f in TrainConfig.defining():
        option = f.metadata["option"]
        given = getattr(options, option)
        if given is None:
            continue
        if f.name == "arch":
            changes["arch"] = model_identity(given).arch
        elif f.name == "model":
            if is_zoo_name(given):  # a full zoo name such as resnet18_gcp
                changes["model"] = given.lower()
        else:
            changes[f.name] = _stored_value(option, given, getattr(stored, f.name))
    return replace(stored, **changes)


def run_to_resume(resume: str, out: str | None, kind: type[TrainConfig], command: str,
                  what: str) -> tuple[RunDir, TrainConfig]:
    """The run directory ``--resume`` names and its configuration, which must be a ``kind`` made
    by ``gcpbench command`` (``what``: how the message names such a run); ``--out`` must be
    absent or that same directory."""
    run = RunDir(Path(resume))
    if not run.path.is_dir():
        raise GcpbenchError(f"--resume '{run.path}' is not a directory")
    config = run.run_config()
    if not isinstance(config, kind):
        raise GcpbenchError(f"--resume '{run.path}' is not a {what} run directory (no {command} config.json)")
    if config.command != command:
        raise GcpbenchError(f"--resume '{run.path}' is a {config.command} run: continue it with "
                            f"`gcpbench {config.command} --resume {run.path}`")
    if out is not None and Path(out).resolve() != run.path.resolve():
        raise GcpbenchError("--resume continues the run in its own directory; drop --out")
    return run, config


def stored_config(options: TrainOptions) -> tuple[RunDir, TrainConfig]:
    """The run directory and configuration to resume; options that would change it raise."""
    run, config = run_to_resume(options.resume, options.out, TrainConfig, "train", "training")
    if options.data is not None and Path(options.data).resolve() != Path(config.data_root).resolve():
        raise GcpbenchError(f"--data {options.data} differs from the run's data root {config.data_root}; "
                            "--resume continues the stored configuration")
    requested = requested_config(config, options)
    if requested != config:
        name = config.differences(requested)[0]
        meta = next(f.metadata for f in TrainConfig.defining() if f.name == name)
        raise GcpbenchError(f"{meta['label']} {getattr(options, meta['option'])} differs from the run's "
                            f"{getattr(config, name)}; --resume continues the stored configuration (start a new "
                            "run with --out to change it)")
    return run, config


def schedule_from_config(config: TrainConfig) -> Schedule:
    """The schedule a stored configuration describes."""
    return make_schedule(config.family or config.arch, config.schedule, config.epochs, config.batch_size,
                         config.lr_option, weight_decay=config.weight_decay, momentum=config.momentum,
                         warmup_epochs=config.warmup_epochs)


def imagenet_subset(dataset: str, train_images: int, val_images: int) -> bool:
    """True for an ImageNet tree whose image counts differ from ILSVRC2012's (not comparable to the paper)."""
    from gcpbench.data.manifests import load_manifest

    if dataset != "imagenet":
        return False
    counts = load_manifest("imagenet")["files"]["counts"]
    return (train_images, val_images) != (counts["train"], counts["val"])


def new_config(options: TrainOptions, *, name: str, family: str, schedule: Schedule, dataset: str, root: Path,
               classes: list[str], train_images: int, val_images: int, image_size: int, device: str,
               world_size: int, channels_last: bool) -> TrainConfig:
    """The resolved configuration of a new run (written to config.json)."""
    from gcpbench import __version__
    from gcpbench.models.registry import model_identity
    from gcpbench.provenance import provenance

    info = model_identity(name, options.gcp_options)
    return TrainConfig(
        run_id=uuid.uuid4().hex, model=name, arch=info.arch, head=info.head.kind,
        gcp_dim=info.head.dim if info.head.is_gcp else None, gcp_norm=info.head.norm if info.head.is_gcp else None,
        gcp_options=info.head.gcp_options() or None, family=family, schedule=schedule.name, dataset=dataset,
        subset=imagenet_subset(dataset, train_images, val_images), data_root=str(root.resolve()),
        num_classes=len(classes), train_images=train_images, val_images=val_images, image_size=image_size,
        epochs=schedule.epochs, paper_epochs=schedule.paper.epochs, batch_size=schedule.batch_size,
        paper_batch_size=schedule.paper.batch_size, base_lr=schedule.base_lr, paper_base_lr=schedule.paper.base_lr,
        lr_option=options.lr, weight_decay=schedule.weight_decay, momentum=schedule.momentum,
        label_smoothing=options.label_smoothing or 0.0, warmup_epochs=schedule.warmup_epochs,
        schedule_notes=schedule.describe(), amp=bool(options.amp), channels_last=channels_last,
        seed=options.seed or 0, deterministic=bool(options.deterministic), workers=options.workers, device=device,
        world_size=world_size, landscape_every=options.landscape_every or 0,
        landscape_num_eta=options.landscape_num_eta, gcp_precision=options.gcp_precision or "float32",
        init_weights=str(Path(options.weights).resolve()) if options.weights else None, gcpbench_version=__version__,
        started=_dt.datetime.now().isoformat(timespec="seconds"), provenance=provenance(device=device))


def dry_run_plan(options: TrainOptions) -> dict[str, Any]:
    """``train --dry-run``: the resolved configuration and the LR at the start of every epoch,
    without reading the data or creating anything. With ``--resume`` the stored configuration
    (after the same checks as a real resume)."""
    from dataclasses import asdict

    if options.resume:
        target = auto_resume_target(options) if options.resume == "auto" else options.resume
        if target is None:  # --resume auto with nothing to continue: a new run
            return dry_run_plan(replace(options, resume=None))
        run, config = stored_config(replace(options, resume=target))
        schedule = schedule_from_config(config)
        resolved: dict[str, Any] = {"resume": str(run.path), **config.to_json()}
    else:
        from gcpbench.models.registry import model_identity
        from gcpbench.models.training import train_model

        if not options.arch:
            raise GcpbenchError("name an architecture (e.g. `gcpbench train resnet18 --head gcp --dry-run`) or pass --resume RUN_DIR")
        name, family = train_model(options.arch, options.head, options.gcp_dim, options.last_stride_one,
                                   options.schedule_family)
        schedule = make_schedule(family, canonical_schedule(options.schedule or "LRnorm"), options.epochs,
                                 options.batch_size, options.lr, weight_decay=options.weight_decay,
                                 momentum=options.momentum, warmup_epochs=options.warmup_epochs)
        info = model_identity(name)
        resolved = {"model": name, "arch": info.arch, "head": info.head.kind,
                    "gcp_dim": info.head.dim if info.head.is_gcp else None, "family": family,
                    "schedule": schedule.name, "epochs": schedule.epochs, "batch_size": schedule.batch_size,
                    "base_lr": schedule.base_lr, "weight_decay": schedule.weight_decay, "momentum": schedule.momentum,
                    "label_smoothing": options.label_smoothing or 0.0, "warmup_epochs": schedule.warmup_epochs,
                    "data": options.data or "the built-in synthetic set", "out": options.out,
                    "options": {k: v for k, v in asdict(options).items() if v not in (None, False)}}
    # the LR at each epoch's first iteration, per-iteration parts (warm-up, ShuffleNetV2) taken as continuous
    steps = 10**6
    lrs = [schedule.lr(epoch, 0, steps) for epoch in range(schedule.epochs)]
    return {"config": resolved, "schedule_notes": schedule.describe(), "lr_per_epoch": lrs}
