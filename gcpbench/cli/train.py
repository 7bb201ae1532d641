"""`gcpbench train`."""
from __future__ import annotations

from typing import Optional

import typer

from gcpbench.cli import app
from gcpbench.cli.modelopts import cbp_dim_option, gcp_norm_option, gcp_options, gcp_power_option

EPILOG = (
    "Several GPUs or machines: torchrun --nproc_per_node=N -m gcpbench train ... (multi-node: add --nnodes=M "
    "--node_rank=R --master_addr=HOST --master_port=PORT on every node); --batch-size is the global batch."
)


@app.command(epilog=EPILOG)
def train(
    arch: Optional[str] = typer.Argument(None, help="resnet18/34/50/101, mobilenetv2, shufflenetv2 (or a zoo name), timm/<name> or torchvision/<name>"),
    head: Optional[str] = typer.Option(None, "--head", help="gap or gcp [default: gap]"),
    gcp_dim: Optional[int] = typer.Option(None, "--gcp-dim", help="GCP size, 256 or 128 [default: 256]"),
    gcp_norm: Optional[str] = gcp_norm_option(),
    gcp_power: Optional[float] = gcp_power_option(),
    cbp_dim: Optional[int] = cbp_dim_option(),
    schedule: Optional[str] = typer.Option(None, "--schedule", help="LRnorm, LRfast or LRadju [default: LRnorm]"),
    data: Optional[str] = typer.Option(None, "--data", help="ImageFolder root with train/ and val/ [default: the built-in synthetic set]"),
    out: Optional[str] = typer.Option(None, "--out", help="run directory [default: runs/<model>_<schedule>_<time>]"),
    epochs: Optional[int] = typer.Option(None, "--epochs", help="stretch the schedule's curve to this many epochs [default: the paper's]"),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help="global batch; the LR scales linearly with it [default: the paper's]"),
    lr: Optional[float] = typer.Option(None, "--lr", help="base LR replacing the paper's (no batch scaling on top)"),
    workers: Optional[int] = typer.Option(None, "--workers", help="loader processes per rank [default: CPU cores - 1, at most 8]"),
    amp: Optional[bool] = typer.Option(None, "--amp/--no-amp", help="bf16 autocast (GCP stays float32) [default: off]"),
    channels_last: Optional[bool] = typer.Option(None, "--channels-last/--no-channels-last", help="[default: on for CUDA, off on the CPU]"),
    device: Optional[str] = typer.Option(None, "--device", help="auto, cpu or cuda [default: auto]"),
    seed: Optional[int] = typer.Option(None, "--seed", help="[default: 0]"),
    deterministic: Optional[bool] = typer.Option(None, "--deterministic/--no-deterministic", help="deterministic algorithms [default: off]"),
    resume: Optional[str] = typer.Option(None, "--resume", help="continue this run directory exactly (from checkpoints/last.pt); 'auto': continue --out if it holds a run, else start it (for torchrun --max-restarts and requeued jobs)"),
    quiet: bool = typer.Option(False, "--quiet", help="plain log lines instead of progress bars"),
    landscape_every: Optional[int] = typer.Option(None, "--landscape-every", help="record the landscape probe every K iterations into landscape.csv [default: 0, off]"),
    landscape_num_eta: Optional[int] = typer.Option(None, "--landscape-num-eta", min=2, help="step sizes per landscape measurement [default: the paper's 50]"),
    image_size: Optional[int] = typer.Option(None, "--image-size", help="crop size [default: 224; the synthetic set's own size]"),
    weights: Optional[str] = typer.Option(None, "--weights", help="start from these local weights (timm/torchvision/gcpbench/iSQRT-COV file); a new GCP head is initialised"),
    schedule_family: Optional[str] = typer.Option(None, "--schedule-family", help="resnet, mobilenetv2 or shufflenetv2 schedules for timm/torchvision models [default: resnet]"),
    last_stage_stride_1: Optional[bool] = typer.Option(None, "--last-stage-stride-1/--no-last-stage-stride-1", help="the paper's ResNet trick for timm/torchvision ResNets with --head gcp: layer4 at stride 1"),
    gcp_precision: Optional[str] = typer.Option(None, "--gcp-precision", help="float32 (exact) or tf32 (CUDA matrix products inside the GCP layer, ~1e-3 relative; faster on Ampere and newer) [default: float32]"),
    strict: bool = typer.Option(False, "--strict", help="stop at the first unreadable image [default: skip, warn and list it in RUN/unreadable_images.txt]"),
) -> None:
    """Train a zoo model with the paper's LRnorm / LRfast / LRadju schedules (SGD, momentum 0.9)."""
    from gcpbench.paths import require_train_output

    require_train_output(out, resume)  # before the heavy imports: a read-only folder fails at once
    from gcpbench.cli.ui import RichTrainReporter
    from gcpbench.train import TrainOptions, train as run

    run(TrainOptions(arch=arch, head=head, gcp_dim=gcp_dim, gcp_norm=gcp_norm,
                     gcp_options=gcp_options(gcp_power, cbp_dim), schedule=schedule, data=data, out=out, epochs=epochs,
                     batch_size=batch_size, lr=lr, workers=workers, amp=amp, channels_last=channels_last,
                     device=device, seed=seed, deterministic=deterministic, resume=resume, quiet=quiet,
                     landscape_every=landscape_every, landscape_num_eta=landscape_num_eta,
                     image_size=image_size, gcp_precision=gcp_precision, weights=weights,
                     schedule_family=schedule_family, last_stride_one=last_stage_stride_1, strict=strict),
        RichTrainReporter)
