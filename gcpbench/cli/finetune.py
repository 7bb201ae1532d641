"""`gcpbench finetune`."""
from __future__ import annotations

from typing import Optional

import typer

from gcpbench.cli import app
from gcpbench.cli.modelopts import MODEL_HELP, WEIGHTS_HELP

EPILOG = ("Published protocol (fast-MPN-COV finetune.sh): batch 10, 100 epochs, LR 1.2e-3 (classifier x5), weight "
          "decay 1e-3, 448 px, test on the centre crop and its mirror. Several GPUs: torchrun --nproc_per_node=N -m "
          "gcpbench finetune ...; --batch-size is the global batch.")


@app.command(epilog=EPILOG)
def finetune(
    dataset: Optional[str] = typer.Option(None, "--dataset", help="cub, aircraft, cars or folder (ImageFolder train/ + val/ or test/)"),
    data: Optional[str] = typer.Option(None, "--data", help="the dataset's root: CUB_200_2011/, fgvc-aircraft-2013b/, stanford_cars/ (or the folder holding it), or an ImageFolder tree"),
    ckpt: Optional[str] = typer.Option(None, "--ckpt", help="checkpoint to fine-tune: gcpbench run, iSQRT-COV .pth.tar, torchvision file"),
    model: Optional[str] = typer.Option(None, "--model", help=MODEL_HELP),
    weights: Optional[str] = typer.Option(None, "--weights", help=WEIGHTS_HELP),
    head: Optional[str] = typer.Option(None, "--head", help="gcp: give a GAP checkpoint a new GCP head [default: the checkpoint's head]"),
    gcp_dim: Optional[int] = typer.Option(None, "--gcp-dim", help="size of a new GCP head [default: 256]"),
    epochs: Optional[int] = typer.Option(None, "--epochs", help="[default: 100]"),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help="global batch [default: 10]"),
    lr: Optional[float] = typer.Option(None, "--lr", help="LR of every layer but the classifier [default: 1.2e-3]"),
    classifier_lr_factor: Optional[float] = typer.Option(None, "--classifier-lr-factor", help="the classifier's LR multiple [default: 5]"),
    weight_decay: Optional[float] = typer.Option(None, "--weight-decay", help="[default: 1e-3]"),
    classifier_weight_decay: Optional[float] = typer.Option(None, "--classifier-weight-decay", help="[default: --weight-decay; 0 for VGG, as the authors]"),
    lr_steps: Optional[str] = typer.Option(None, "--lr-steps", help="comma-separated epochs where the LR drops x0.1 (steps at or past --epochs never act) [default: 100]"),
    image_size: Optional[int] = typer.Option(None, "--image-size", help="crop size; every resize scales with it [default: 448]"),
    two_crop: Optional[bool] = typer.Option(None, "--two-crop/--one-crop", help="test on the centre crop and its mirror, logits averaged [default: two]"),
    select: Optional[str] = typer.Option(None, "--select", help="checkpoint to test: best (by per-epoch validation on the test split, as the authors) or last [default: best]"),
    out: Optional[str] = typer.Option(None, "--out", help="run directory [default: runs/<model>_finetune-<dataset>_<time>]"),
    resume: Optional[str] = typer.Option(None, "--resume", help="continue this run directory exactly; 'auto': continue --out if it holds a run, else start it"),
    workers: Optional[int] = typer.Option(None, "--workers", help="loader processes per rank [default: CPU cores - 1, at most 8]"),
    device: Optional[str] = typer.Option(None, "--device", help="auto, cpu or cuda [default: auto]"),
    amp: Optional[bool] = typer.Option(None, "--amp/--no-amp", help="bf16 autocast (GCP stays float32) [default: off]"),
    channels_last: Optional[bool] = typer.Option(None, "--channels-last/--no-channels-last", help="[default: on for CUDA, off on the CPU]"),
    seed: Optional[int] = typer.Option(None, "--seed", help="[default: 0]"),
    deterministic: Optional[bool] = typer.Option(None, "--deterministic/--no-deterministic", help="deterministic algorithms [default: off]"),
    quiet: bool = typer.Option(False, "--quiet", help="plain log lines instead of progress bars"),
    strict: bool = typer.Option(False, "--strict", help="stop at the first unreadable image [default: skip and list it]"),
) -> None:
    """Fine-tune a checkpoint on CUB-200-2011, FGVC-Aircraft, Stanford Cars or an ImageFolder tree
    with the published iSQRT-COV protocol; the test top-1 goes to RUN/eval/fgvc.json."""
    from gcpbench.errors import GcpbenchError
    from gcpbench.paths import require_train_output

    steps = None
    if lr_steps is not None:
        try:
            steps = [int(part) for part in lr_steps.split(",") if part.strip()]
        except ValueError:
            raise GcpbenchError(f"--lr-steps takes comma-separated epochs, e.g. 30,60; got '{lr_steps}'") from None
    require_train_output(out, resume)  # before the heavy imports: a read-only folder fails at once
    from gcpbench.cli.ui import RichTrainReporter
    from gcpbench.finetune import FinetuneOptions, finetune as run

    run(FinetuneOptions(dataset=dataset, data=data, ckpt=ckpt, model=model, weights=weights, head=head,
                        gcp_dim=gcp_dim, epochs=epochs, batch_size=batch_size, lr=lr,
                        classifier_lr_factor=classifier_lr_factor, weight_decay=weight_decay,
                        classifier_weight_decay=classifier_weight_decay, lr_steps=steps, image_size=image_size,
                        two_crop=two_crop, select=select, out=out, resume=resume, workers=workers, device=device,
                        amp=amp, channels_last=channels_last, seed=seed, deterministic=deterministic, quiet=quiet,
                        strict=strict),
        RichTrainReporter)
