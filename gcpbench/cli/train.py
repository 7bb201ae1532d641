"""`gcpbench train`."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from gcpbench.cli import app
from gcpbench.cli.configfile import config_option
from gcpbench.cli.modelopts import cbp_dim_option, gcp_norm_option, gcp_options, gcp_power_option
from gcpbench.cli.choices import (DATA, FAMILIES, GCP_PRECISIONS, HEADS, MODEL, NUMERICS, OUTPUT, RUNTIME, SCHEDULE,
                                  SCHEDULES, apply_quiet, choice, device_option, examples, quiet_option)

EPILOG = examples(
    "gcpbench train resnet18 --head gcp --epochs 2   (the built-in synthetic set, a quick look)",
    "gcpbench train --config study.toml --weight-decay 5e-5 --dry-run   (the file's options, one overridden)",
    "torchrun --nproc_per_node=8 -m gcpbench train resnet50 --head gcp --data /data/imagenet   "
    "(8 GPUs; --batch-size is the global batch; README: several machines)",
)


@app.command(epilog=EPILOG)
def train(
    arch: Optional[str] = typer.Argument(None, help="resnet18/34/50/101, mobilenetv2, shufflenetv2 (or a zoo name), timm/<name> or torchvision/<name>", show_default=False),
    head: Optional[str] = choice(None, "--head", HEADS, "head", "the classifier head [default: gap]", MODEL),
    gcp_dim: Optional[int] = typer.Option(None, "--gcp-dim", help="GCP size D >= 2 (the paper: 256 or 128) [default: 256]", rich_help_panel=MODEL),
    gcp_norm: Optional[str] = gcp_norm_option(),
    gcp_power: Optional[float] = gcp_power_option(),
    cbp_dim: Optional[int] = cbp_dim_option(),
    schedule: Optional[str] = choice(None, "--schedule", SCHEDULES, "schedule", "the paper's LR schedule [default: LRnorm]", SCHEDULE),
    data: Optional[str] = typer.Option(None, "--data", help="ImageFolder root with train/ and val/ [default: the built-in synthetic set]", rich_help_panel=DATA),
    out: Optional[str] = typer.Option(None, "--out", help="run directory [default: a new folder under runs/]", rich_help_panel=OUTPUT),
    epochs: Optional[int] = typer.Option(None, "--epochs", help="stretch the schedule's curve to this many epochs [default: the paper's]", rich_help_panel=SCHEDULE),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help="global batch; the LR scales linearly with it [default: the paper's]", rich_help_panel=SCHEDULE),
    lr: Optional[float] = typer.Option(None, "--lr", help="base LR replacing the paper's (no batch scaling on top)", rich_help_panel=SCHEDULE),
    workers: Optional[int] = typer.Option(None, "--workers", help="loader processes per rank [default: CPU cores - 1, at most 8]", rich_help_panel=RUNTIME),
    amp: Optional[bool] = typer.Option(None, "--amp/--no-amp", help="bf16 autocast (GCP stays float32) [default: off]", rich_help_panel=NUMERICS),
    channels_last: Optional[bool] = typer.Option(None, "--channels-last/--no-channels-last", help="channels-last memory format [default: on for CUDA, off on the CPU]", rich_help_panel=NUMERICS),
    device: Optional[str] = device_option(None, help="where to train [default: auto]"),
    seed: Optional[int] = typer.Option(None, "--seed", help="seed of the initialisation and the data order [default: 0]", rich_help_panel=RUNTIME),
    deterministic: Optional[bool] = typer.Option(None, "--deterministic/--no-deterministic", help="deterministic algorithms [default: off]", rich_help_panel=NUMERICS),
    resume: Optional[str] = typer.Option(None, "--resume", help="continue this run directory exactly (from its last checkpoint); 'auto': continue --out if it holds a run, else start it (for torchrun --max-restarts and requeued jobs)", rich_help_panel=RUNTIME),
    quiet: bool = quiet_option(),
    landscape_every: Optional[int] = typer.Option(None, "--landscape-every", help="record the landscape probe every K iterations into landscape.csv [default: 0, off]", rich_help_panel=OUTPUT),
    landscape_num_eta: Optional[int] = typer.Option(None, "--landscape-num-eta", min=2, help="step sizes per landscape measurement [default: the paper's 50]", rich_help_panel=OUTPUT),
    image_size: Optional[int] = typer.Option(None, "--image-size", help="crop size [default: 224; the synthetic set's own size]", rich_help_panel=DATA),
    weights: Optional[str] = typer.Option(None, "--weights", help="start from these local weights (a timm, torchvision, gcpbench or iSQRT-COV file); a new GCP head is initialised", rich_help_panel=MODEL),
    schedule_family: Optional[str] = choice(None, "--schedule-family", FAMILIES, "model family", "whose schedules a timm/torchvision model follows [default: resnet]", SCHEDULE),
    last_stage_stride_1: Optional[bool] = typer.Option(None, "--last-stage-stride-1", help="the paper's ResNet trick for timm or torchvision ResNets with --head gcp: layer4 at stride 1", rich_help_panel=MODEL),
    gcp_precision: Optional[str] = choice(None, "--gcp-precision", GCP_PRECISIONS, "GCP precision", "float32 (exact) or tf32 (CUDA matrix products inside the GCP layer, ~1e-3 relative; faster on Ampere and newer) [default: float32]", NUMERICS),
    weight_decay: Optional[float] = typer.Option(None, "--weight-decay", help="SGD weight decay [default: the paper's, 1e-4 ResNet, 4e-5 the others]", rich_help_panel=SCHEDULE),
    momentum: Optional[float] = typer.Option(None, "--momentum", help="SGD momentum [default: the paper's 0.9]", rich_help_panel=SCHEDULE),
    label_smoothing: Optional[float] = typer.Option(None, "--label-smoothing", help="training loss label smoothing [default: 0, the paper's]", rich_help_panel=SCHEDULE),
    warmup_epochs: Optional[int] = typer.Option(None, "--warmup-epochs", help="linear LR warm-up over the first K epochs [default: 0, the paper's]", rich_help_panel=SCHEDULE),
    config: Optional[Path] = config_option(),
    dry_run: bool = typer.Option(False, "--dry-run", help="print the resolved configuration and the LR of every epoch, then exit (reads and writes nothing)", rich_help_panel=OUTPUT),
    no_tensorboard: bool = typer.Option(False, "--no-tensorboard", help="write no TensorBoard scalars [default: RUN/tensorboard/; view with tensorboard --logdir runs]", rich_help_panel=OUTPUT),
    as_json: bool = typer.Option(False, "--json", help="print the result (with --dry-run: the plan) as JSON", rich_help_panel=OUTPUT),
    strict: bool = typer.Option(False, "--strict", help="stop at the first unreadable image [default: skip, warn and list it in the run's unreadable_images.txt]", rich_help_panel=DATA),
) -> None:
    """Train a zoo model with the paper's LRnorm / LRfast / LRadju schedules (SGD, momentum 0.9)."""
    apply_quiet(quiet)
    from gcpbench.paths import require_train_output
    from gcpbench.train.config import TrainOptions

    options = TrainOptions(arch=arch, head=head, gcp_dim=gcp_dim, gcp_norm=gcp_norm,
                           gcp_options=gcp_options(gcp_power, cbp_dim), schedule=schedule, data=data, out=out, epochs=epochs,
                           batch_size=batch_size, lr=lr, workers=workers, amp=amp, channels_last=channels_last,
                           device=device, seed=seed, deterministic=deterministic, resume=resume, quiet=quiet or as_json,
                           landscape_every=landscape_every, landscape_num_eta=landscape_num_eta,
                           image_size=image_size, gcp_precision=gcp_precision, weights=weights,
                           schedule_family=schedule_family, last_stride_one=last_stage_stride_1, strict=strict,
                           weight_decay=weight_decay, momentum=momentum, label_smoothing=label_smoothing,
                           warmup_epochs=warmup_epochs, tensorboard=not no_tensorboard)
    if dry_run:
        _print_plan(options, as_json)
        return
    require_train_output(out, resume)  # before the heavy imports: a read-only folder fails at once
    from gcpbench.cli.train_bars import RichTrainReporter
    from gcpbench.train import train as run

    run_dir = run(options, RichTrainReporter)
    from gcpbench.runtime import is_main_process

    if not is_main_process():
        return
    result = _result(run_dir)
    if as_json:
        typer.echo(json.dumps(result, indent=2))
    elif quiet and result["best_epoch"]:  # the result, which the hidden log lines would have said
        best = result["best_epoch"]
        typer.echo(f"{run_dir.path}: best val top-1 {best['val_top1']:.2f}% (epoch {best['epoch']}), last "
                   f"{result['last_epoch']['val_top1']:.2f}%")


def _result(run_dir) -> dict:
    """train --json: the run directory, its configuration and the best and last epochs."""
    from gcpbench.io import read_jsonl

    records = read_jsonl(run_dir.metrics_jsonl) if run_dir.metrics_jsonl.is_file() else []
    best = max(records, key=lambda r: r["val_top1"]) if records else None
    return {"run_dir": str(run_dir.path), "config": run_dir.read_config(), "best_epoch": best,
            "last_epoch": records[-1] if records else None}


def _print_plan(options, as_json: bool) -> None:
    from gcpbench.train.config import dry_run_plan

    plan = dry_run_plan(options)
    if as_json:
        typer.echo(json.dumps(plan, indent=2, default=str))
        return
    typer.echo("dry run: nothing is read or written")
    for key, value in plan["config"].items():
        if key != "options":
            typer.echo(f"  {key}: {value}")
    for line in plan["schedule_notes"]:
        typer.echo(line)
    lrs = plan["lr_per_epoch"]
    typer.echo("LR at the start of each epoch: " + ", ".join(f"{i + 1}: {lr:.4g}" for i, lr in enumerate(lrs)))
