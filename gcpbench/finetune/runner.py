"""``gcpbench finetune``: a checkpoint fine-tuned on CUB / Aircraft / Cars / an ImageFolder tree
with the published protocol, through the training loop of :mod:`gcpbench.train.trainer`
(checkpoints, exact resume, torchrun, AMP, bars), then evaluated on the test split
(:mod:`gcpbench.finetune.evaluation`) into ``eval/fgvc.json``.

A run directory holds ``config.json`` (a :class:`~gcpbench.records.FinetuneConfig`: the source
checkpoint's path and SHA-256, the protocol's every value, the data's fingerprint), the per-epoch
metrics (validation = the single centre crop), ``checkpoints/last.pt`` / ``best.pt`` and the
result. ``--resume RUN`` (or ``--resume auto --out RUN``) continues it; the options given must
agree with the stored ones, and the source checkpoint and the data must be unchanged.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import torch

from gcpbench.data.fgvc import FgvcData, canonical_dataset, read_dataset
from gcpbench.data.manifests import is_official_fgvc
from gcpbench.errors import GcpbenchError
from gcpbench.finetune.protocol import FinetuneSchedule, Protocol, make_protocol, with_overrides
from gcpbench.provenance import provenance
from gcpbench.records import FgvcResult, FinetuneConfig
from gcpbench.runs import RunDir
from gcpbench.train import distributed as ddp
from gcpbench.train.config import run_to_resume
from gcpbench.train.progress import TrainReporter
from gcpbench.train.trainer import Prepared, Task, make_loaders, new_run, run_training

log = logging.getLogger(__name__)

# Protocol values an option sets (``None``: the published one, or the stored one on resume).
PROTOCOL_OPTIONS: tuple[str, ...] = ("epochs", "batch_size", "lr", "classifier_lr_factor", "weight_decay",
                                     "classifier_weight_decay", "lr_steps", "image_size", "two_crop", "select")


@dataclass
class FinetuneOptions:
    """What the user asked for; ``None`` means the published protocol's value (or, on resume, the stored one)."""

    dataset: str | None = None  # cub | aircraft | cars | folder
    data: str | None = None
    ckpt: str | None = None
    model: str | None = None
    weights: str | None = None
    head: str | None = None  # gcp: give a GAP checkpoint a new GCP head
    gcp_dim: int | None = None
    epochs: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    classifier_lr_factor: float | None = None
    weight_decay: float | None = None
    classifier_weight_decay: float | None = None
    lr_steps: list[int] | None = None
    image_size: int | None = None
    two_crop: bool | None = None
    select: str | None = None
    out: str | None = None
    resume: str | None = None
    workers: int | None = None
    device: str | None = None
    amp: bool | None = None
    channels_last: bool | None = None
    seed: int | None = None
    deterministic: bool | None = None
    quiet: bool = False
    strict: bool = False

    def overrides(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in PROTOCOL_OPTIONS if getattr(self, name) is not None}


def finetune(options: FinetuneOptions, reporter: type[TrainReporter] = TrainReporter) -> RunDir:
    """Run ``gcpbench finetune`` (also each process of ``torchrun ... -m gcpbench finetune``)."""
    return run_training(Task(_prepare_new, _prepare_resume, _finish), options, reporter)


# ------------------------------------------------------------------------------ pieces

def _is_vgg(name: str) -> bool:
    from gcpbench.models.registry import model_identity

    return model_identity(name).arch.split("/")[-1].startswith("vgg")


def _protocol_of(config: FinetuneConfig) -> Protocol:
    stored = {f.name: config.protocol[f.name] for f in fields(Protocol) if f.name in config.protocol}
    stored["lr_steps"] = tuple(stored.get("lr_steps", ()))
    return Protocol(**stored)


def _datasets(data: FgvcData, protocol: Protocol, strict: bool):
    from gcpbench.data.folders import ImageList
    from gcpbench.finetune.transforms import train_transform, val_transform

    return (ImageList(data.train, train_transform(protocol), skip_unreadable=not strict),
            ImageList(data.test, val_transform(protocol), skip_unreadable=not strict))


def _groups(protocol: Protocol):
    from gcpbench.finetune.model import parameter_groups

    return lambda net: parameter_groups(net, protocol.lr, protocol.classifier_lr_factor, protocol.weight_decay,
                                        protocol.head_weight_decay)


def _initial_model(ckpt: str | None, model: str | None, weights: str | None, classes: int, head: str | None,
                   gcp_dim: int | None, seed: int):
    """The source's network with a new classifier, initialised from ``seed`` (the same on every
    rank, and again when a run killed in its first epoch starts over)."""
    from gcpbench.finetune.model import finetune_model

    state = torch.get_rng_state()
    torch.manual_seed(seed)
    try:
        return finetune_model(ckpt, model, weights, classes, head, gcp_dim)
    finally:
        torch.set_rng_state(state)


def _source_checkpoint(path: Path, checkpoint: dict[str, Any]) -> tuple[str, str | None]:
    from gcpbench.identity import fingerprint

    config = checkpoint.get("config")
    return fingerprint(path), config.get("run_id") if isinstance(config, dict) else None


# ------------------------------------------------------------------------------ new run

def _prepare_new(options: FinetuneOptions, ctx: ddp.DistContext, quiet: bool) -> Prepared:
    import uuid
    import datetime as _dt

    from gcpbench import __version__
    from gcpbench.models.registry import model_identity

    if options.dataset is None or options.data is None:
        raise GcpbenchError("name the dataset and its root: --dataset cub|aircraft|cars|folder --data ROOT")
    if options.ckpt is None and options.model is None:
        raise GcpbenchError("name the checkpoint to fine-tune: --ckpt FILE, or --model NAME --weights FILE")
    dataset = canonical_dataset(options.dataset)
    data = read_dataset(dataset, options.data)
    official = is_official_fgvc(data)
    if ctx.is_main:
        note = "" if official or dataset == "folder" else (
            " (not the official splits: its numbers are not compared with the published ones)")
        log.info(f"{data.title} at {data.root}: {len(data.train):,} train / {len(data.test):,} {data.test_split} "
                 f"images, {len(data.classes)} classes{note}")
    seed = options.seed or 0
    net, transfer = _initial_model(options.ckpt, options.model, options.weights, len(data.classes), options.head,
                                   options.gcp_dim, seed)
    protocol = make_protocol(dataset, vgg=_is_vgg(net.zoo_name), **options.overrides())
    train_set, val_set = _datasets(data, protocol, options.strict)
    train_loader, val_loader, _ = make_loaders(train_set, val_set, protocol.batch_size, seed, ctx, options.workers)
    run = new_run(options, net.zoo_name, f"finetune-{dataset}", ctx)
    source_sha, source_run = _source_checkpoint(transfer.source_path, transfer.checkpoint)
    identity = model_identity(net.zoo_name)
    channels_last = options.channels_last if options.channels_last is not None else ctx.device.type == "cuda"
    config = FinetuneConfig(
        run_id=uuid.uuid4().hex, model=net.zoo_name, arch=identity.arch, head=identity.head.kind,
        gcp_dim=identity.head.dim if identity.head.is_gcp else None, family=identity.family or "external",
        schedule="finetune", dataset=dataset, subset=not official, data_root=str(data.root.resolve()),
        num_classes=len(data.classes), train_images=len(data.train), val_images=len(data.test),
        image_size=protocol.image_size, epochs=protocol.epochs, paper_epochs=100, batch_size=protocol.batch_size,
        paper_batch_size=10, base_lr=protocol.lr, paper_base_lr=1.2e-3, lr_option=options.lr,
        weight_decay=protocol.weight_decay, momentum=protocol.momentum, schedule_notes=protocol.describe(),
        amp=bool(options.amp), channels_last=channels_last, seed=seed, deterministic=bool(options.deterministic),
        workers=options.workers, device=ctx.device.type, world_size=ctx.world_size,
        init_weights=str(transfer.source_path.resolve()), gcpbench_version=__version__,
        started=_dt.datetime.now().isoformat(timespec="seconds"),
        source_checkpoint=str(transfer.source_path.resolve()), source_sha256=source_sha,
        source_model=transfer.source_model, source_run_id=source_run, source_option="ckpt" if options.ckpt else "model",
        source_name=options.model, protocol=protocol.as_dict(),
        data_fingerprint=data.fingerprint(), test_split=data.test_split, provenance=provenance(device=ctx.device.type))
    if ctx.is_main:
        run.write_config(config)
    net.load_report = transfer
    return Prepared(run, config, FinetuneSchedule(protocol), data, (train_loader, val_loader), net=net,
                    param_groups=_groups(protocol))


# ------------------------------------------------------------------------------ resume

def _stored(options: FinetuneOptions) -> tuple[RunDir, FinetuneConfig]:
    return run_to_resume(options.resume, options.out, FinetuneConfig, "finetune", "fine-tuning")


def _require_same(options: FinetuneOptions, config: FinetuneConfig, protocol: Protocol) -> None:
    """Options given on resume must say what the run stores (one line naming the first that does not)."""
    def differs(option: str, given: Any, stored: Any) -> None:
        raise GcpbenchError(f"{option} {given} differs from the run's {stored}; --resume continues the stored "
                            "configuration (start a new run with --out to change it)")

    if options.dataset is not None and canonical_dataset(options.dataset) != config.dataset:
        differs("--dataset", options.dataset, config.dataset)
    if options.data is not None:
        from gcpbench.data.fgvc import dataset_folder

        if dataset_folder(config.dataset, options.data).resolve() != Path(config.data_root):
            differs("--data", options.data, config.data_root)
    for option, given in (("--ckpt", options.ckpt), ("--weights", options.weights)):
        if given is not None and str(Path(given).resolve()) != config.source_checkpoint:
            differs(option, given, config.source_checkpoint)
    wanted = with_overrides(protocol, **options.overrides())
    for name in PROTOCOL_OPTIONS:
        if getattr(wanted, name) != getattr(protocol, name):
            differs("--" + name.replace("_", "-"), getattr(wanted, name), getattr(protocol, name))
    for name in ("amp", "channels_last", "seed", "deterministic"):
        given = getattr(options, name)
        if given is not None and given != getattr(config, name):
            differs("--" + name.replace("_", "-"), given, getattr(config, name))


def _data_of(config: FinetuneConfig) -> FgvcData:
    """The stored dataset, read again; it must be the data the run started with."""
    data = read_dataset(config.dataset, config.data_root)
    if data.fingerprint() != config.data_fingerprint:
        raise GcpbenchError(f"the {data.title} splits under '{config.data_root}' changed since the run started "
                            "(other files or labels); resume needs the same data")
    return data


def _prepare_resume(options: FinetuneOptions, ctx: ddp.DistContext, quiet: bool,
                    reporter: type[TrainReporter]) -> Prepared | RunDir:
    from gcpbench.train.state import read_training_checkpoint

    run, config = _stored(options)
    protocol = _protocol_of(config)
    _require_same(options, config, protocol)
    checkpoint = read_training_checkpoint(run.last_checkpoint) if run.last_checkpoint.is_file() else None
    if checkpoint is not None and checkpoint["epoch"] >= config.epochs:
        if ctx.is_main:
            reporter(True, True, config.epochs, config.epochs).log(
                f"run '{run.path}' already finished all {config.epochs} epochs; nothing to train")
        return run
    data = _data_of(config)
    net = None
    if checkpoint is None:  # killed in the first epoch: start over from the same source and seed
        source = Path(config.source_checkpoint)
        if not source.is_file() or _source_checkpoint(source, {})[0] != config.source_sha256:
            raise GcpbenchError(f"the source checkpoint '{source}' is missing or changed since the run started "
                                f"(SHA-256 {config.source_sha256[:12]}); restore it or start a new run")
        ckpt, model, weights = ((str(source), None, None) if config.source_option == "ckpt"
                                else (None, config.source_name, str(source)))
        net, transfer = _initial_model(ckpt, model, weights, config.num_classes, config.head, config.gcp_dim,
                                       config.seed)
        net.load_report = transfer
    train_set, val_set = _datasets(data, protocol, options.strict)
    workers = options.workers if options.workers is not None else config.workers
    train_loader, val_loader, _ = make_loaders(train_set, val_set, protocol.batch_size, config.seed, ctx, workers)
    return Prepared(run, config, FinetuneSchedule(protocol), data, (train_loader, val_loader), checkpoint, net,
                    _groups(protocol))


# ------------------------------------------------------------------------------ final evaluation

def _finish(ctx: ddp.DistContext, run: RunDir, options: FinetuneOptions) -> None:
    """Evaluate the selected checkpoint on the test split into ``eval/fgvc.json`` (once per
    identity); unreadable test images are skipped and listed in the result (``--strict``: stop)."""
    from torch.utils.data import Subset

    from gcpbench.data.folders import ImageList, make_loader
    from gcpbench.finetune.evaluation import evaluate_views
    from gcpbench.finetune.transforms import eval_transform
    from gcpbench.identity import Producer, ResultIdentity
    from gcpbench.models.weights import load_model

    config = run.run_config()
    assert isinstance(config, FinetuneConfig)
    protocol = _protocol_of(config)
    path = run.best_checkpoint if protocol.select == "best" else run.last_checkpoint
    if not path.is_file():
        raise GcpbenchError(f"'{path}' is missing: the {protocol.select} checkpoint of '{run.path}' cannot be evaluated")
    net, checkpoint = load_model(path)
    producer = Producer.of(path, config.model, checkpoint)
    identity = ResultIdentity(producer, config.data_root, {
        "dataset": config.dataset, "data_fingerprint": config.data_fingerprint, "protocol": config.protocol,
        "source_sha256": config.source_sha256})
    existing = run.read_result(FgvcResult) if run.eval.joinpath(FgvcResult.FILE).is_file() else None
    if existing is not None and existing.identity is not None and existing.identity.key == identity.key:
        if ctx.is_main:
            log.info(f"{run.eval / FgvcResult.FILE} already holds this evaluation: top-1 {existing.top1:.2f}%")
        return
    data = _data_of(config)
    dataset = ImageList(data.test, eval_transform(protocol), skip_unreadable=not options.strict)
    if ctx.distributed:
        dataset = Subset(dataset, range(ctx.rank, len(dataset), ctx.world_size))
    per_rank = max(1, config.batch_size // ctx.world_size)
    workers = options.workers if options.workers is not None else config.workers
    loader = make_loader(dataset, per_rank, shuffle=False, workers=workers)
    result = evaluate_views(net.to(ctx.device), loader, ctx.device, amp=config.amp,
                            progress=ctx.is_main and not options.quiet, distributed=ctx.distributed)
    unreadable = sorted(path for part in ddp.all_gather_object(result.get("unreadable", []), ctx) for path in part)
    if not ctx.is_main:
        return
    views = 2 if protocol.two_crop else 1
    record = FgvcResult(model=config.model, checkpoint=str(path.resolve()), dataset=config.dataset,
                        subset=config.subset, identity=identity, top1=result["top1"], top5=result["top5"],
                        images=result["images"], views=views, epoch=int(checkpoint["epoch"]), select=protocol.select,
                        loss=result["loss"], source_model=config.source_model, source_sha256=config.source_sha256,
                        provenance=provenance(device=ctx.device.type),
                        extra={"test_split": config.test_split,
                               **({"unreadable": unreadable} if unreadable else {})})
    written = run.write_result(record)
    crops = "centre crop + mirror" if views == 2 else "centre crop"
    log.info(f"{data.title} {config.test_split} top-1 {record.top1:.2f}% top-5 {record.top5:.2f}% on "
             f"{record.images} images ({crops}; {protocol.select} checkpoint, epoch {record.epoch}) -> {written}")
