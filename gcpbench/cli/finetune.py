"""`gcpbench finetune`."""
from __future__ import annotations

from typing import Optional

import typer

from gcpbench.cli import app
from gcpbench.cli.choices import (DATA, HEADS, MODEL, NUMERICS, OUTPUT, RUNTIME, SCHEDULE, apply_quiet, choice,
                                  device_option, examples, quiet_option, workers_option)
from gcpbench.cli.modelopts import MODEL_HELP, WEIGHTS_HELP

EPILOG = examples(
    "gcpbench finetune --dataset cub --data /data/CUB_200_2011 --ckpt r50_gcp.pth   (the published protocol: "
    "batch 10, 100 epochs, LR 1.2e-3 with the classifier x5, weight decay 1e-3, 448 px, centre crop + mirror)",
    "gcpbench finetune --dataset aircraft --data /data/fgvc-aircraft-2013b --ckpt runs/r50_gcp/checkpoints/best.pt "
    "--epochs 50",
    "torchrun --nproc_per_node=4 -m gcpbench finetune --dataset cars --data /data/stanford_cars --ckpt r50_gcp.pth   "
    "(--batch-size is the global batch)",
)


@app.command(epilog=EPILOG)
def finetune(
    dataset: Optional[str] = typer.Option(None, "--dataset", help="cub, aircraft, cars or folder (ImageFolder train/ + val/ or test/)", rich_help_panel=DATA),
    data: Optional[str] = typer.Option(None, "--data", help="the dataset's root: CUB_200_2011/, fgvc-aircraft-2013b/, stanford_cars/ (or the folder holding it), or an ImageFolder tree", rich_help_panel=DATA),
    ckpt: Optional[str] = typer.Option(None, "--ckpt", help="checkpoint to fine-tune: gcpbench run, iSQRT-COV .pth.tar, torchvision file", rich_help_panel=MODEL),
    model: Optional[str] = typer.Option(None, "--model", help=MODEL_HELP, rich_help_panel=MODEL),
    weights: Optional[str] = typer.Option(None, "--weights", help=WEIGHTS_HELP, rich_help_panel=MODEL),
    head: Optional[str] = choice(None, "--head", HEADS, "head", "gcp: give a GAP checkpoint a new GCP head [default: the checkpoint's head]", MODEL),
    gcp_dim: Optional[int] = typer.Option(None, "--gcp-dim", help="size of a new GCP head [default: 256]", rich_help_panel=MODEL),
    epochs: Optional[int] = typer.Option(None, "--epochs", help="[default: 100]", rich_help_panel=SCHEDULE),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help="global batch [default: 10]", rich_help_panel=SCHEDULE),
    lr: Optional[float] = typer.Option(None, "--lr", help="LR of every layer but the classifier [default: 1.2e-3]", rich_help_panel=SCHEDULE),
    classifier_lr_factor: Optional[float] = typer.Option(None, "--classifier-lr-factor", help="the classifier's LR multiple [default: 5]", rich_help_panel=SCHEDULE),
    weight_decay: Optional[float] = typer.Option(None, "--weight-decay", help="[default: 1e-3]", rich_help_panel=SCHEDULE),
    classifier_weight_decay: Optional[float] = typer.Option(None, "--classifier-weight-decay", help="[default: --weight-decay; 0 for VGG, as the authors]", rich_help_panel=SCHEDULE),
    lr_steps: Optional[str] = typer.Option(None, "--lr-steps", help="comma-separated epochs where the LR drops x0.1 (steps at or past --epochs never act) [default: 100]", rich_help_panel=SCHEDULE),
    image_size: Optional[int] = typer.Option(None, "--image-size", help="crop size; every resize scales with it [default: 448]", rich_help_panel=DATA),
    two_crop: Optional[bool] = typer.Option(None, "--two-crop/--one-crop", help="test on the centre crop and its mirror, logits averaged [default: two]", rich_help_panel=DATA),
    select: Optional[str] = typer.Option(None, "--select", help="checkpoint to test: best (by per-epoch validation on the test split, as the authors) or last [default: best]", rich_help_panel=OUTPUT),
    out: Optional[str] = typer.Option(None, "--out", help="run directory [default: runs/<model>_finetune-<dataset>_<time>]", rich_help_panel=OUTPUT),
    resume: Optional[str] = typer.Option(None, "--resume", help="continue this run directory exactly; 'auto': continue --out if it holds a run, else start it", rich_help_panel=RUNTIME),
    workers: Optional[int] = workers_option(),
    device: Optional[str] = device_option(None, help="where to train [default: auto]"),
    amp: Optional[bool] = typer.Option(None, "--amp/--no-amp", help="bf16 autocast (GCP stays float32) [default: off]", rich_help_panel=NUMERICS),
    channels_last: Optional[bool] = typer.Option(None, "--channels-last/--no-channels-last", help="[default: on for CUDA, off on the CPU]", rich_help_panel=NUMERICS),
    seed: Optional[int] = typer.Option(None, "--seed", help="[default: 0]", rich_help_panel=RUNTIME),
    deterministic: Optional[bool] = typer.Option(None, "--deterministic/--no-deterministic", help="deterministic algorithms [default: off]", rich_help_panel=NUMERICS),
    quiet: bool = quiet_option(),
    strict: bool = typer.Option(False, "--strict", help="stop at the first unreadable image [default: skip and list it]", rich_help_panel=DATA),
) -> None:
    """Fine-tune a checkpoint on CUB-200-2011, FGVC-Aircraft, Stanford Cars or an ImageFolder tree
    with the published iSQRT-COV protocol; the test top-1 goes to RUN/eval/fgvc.json."""
    apply_quiet(quiet)
    from gcpbench.errors import GcpbenchError
    from gcpbench.paths import require_train_output

    steps = None
    if lr_steps is not None:
        try:
            steps = [int(part) for part in lr_steps.split(",") if part.strip()]
        except ValueError:
            raise GcpbenchError(f"--lr-steps takes comma-separated epochs, e.g. 30,60; got '{lr_steps}'") from None
    require_train_output(out, resume)  # before the heavy imports: a read-only folder fails at once
    from gcpbench.cli.train_bars import RichTrainReporter
    from gcpbench.finetune import FinetuneOptions, finetune as run

    run(FinetuneOptions(dataset=dataset, data=data, ckpt=ckpt, model=model, weights=weights, head=head,
                        gcp_dim=gcp_dim, epochs=epochs, batch_size=batch_size, lr=lr,
                        classifier_lr_factor=classifier_lr_factor, weight_decay=weight_decay,
                        classifier_weight_decay=classifier_weight_decay, lr_steps=steps, image_size=image_size,
                        two_crop=two_crop, select=select, out=out, resume=resume, workers=workers, device=device,
                        amp=amp, channels_last=channels_last, seed=seed, deterministic=deterministic, quiet=quiet,
                        strict=strict),
        RichTrainReporter)
