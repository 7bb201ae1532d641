"""`gcpbench detect`."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from gcpbench.cli import app


@app.command()
def detect(
    framework: str = typer.Option(..., "--framework", help="faster_rcnn or mask_rcnn"),
    backbone: str = typer.Option(..., "--backbone", help="resnet{18,34,50,101}_{gap,gcp_d,gcp_m}, e.g. resnet50_gcp_m"),
    ckpt: Optional[str] = typer.Option(None, "--ckpt", help="backbone weights: gcpbench / iSQRT-COV / torchvision ResNet "
                                       "checkpoint, or 'none' for random weights [default: the config's; random on synthetic data]"),
    data: Optional[Path] = typer.Option(None, "--data", help="COCO 2017 root (annotations/, train2017/, val2017/) "
                                        "[default: the built-in synthetic set]"),
    epochs: Optional[int] = typer.Option(None, "--epochs", help="train N epochs, LR steps scaled [default: 1x = 12]"),
    max_iters: Optional[int] = typer.Option(None, "--max-iters", help="train N iterations instead of epochs"),
    eval_only: bool = typer.Option(False, "--eval-only", help="only evaluate --weights"),
    weights: Optional[Path] = typer.Option(None, "--weights", help="mmdetection checkpoint: evaluated with --eval-only, "
                                           "otherwise the starting point (load_from)"),
    work_dir: Optional[Path] = typer.Option(None, "--work-dir", help="run directory [default: runs/detect_<framework>_<backbone>_<time>]"),
    launcher: str = typer.Option("none", "--launcher", help="none, or pytorch under torchrun for several GPUs"),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda"),
    resume: bool = typer.Option(False, "--resume", help="resume from the work dir's last mmengine checkpoint"),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help="images per GPU [default: 2]"),
    workers: Optional[int] = typer.Option(None, "--workers", help="data-loading processes per GPU"),
    seed: int = typer.Option(0, "--seed"),
    quiet: bool = typer.Option(False, "--quiet", help="only warnings and the final table"),
    config: Optional[Path] = typer.Option(None, "--config", help="your own mmdetection config file instead of the packaged "
                                          "one (the options above still apply)"),
    gcp_norm: Optional[str] = typer.Option(None, "--gcp-norm", help="the GCP normalisation of a GCP_D / GCP_M backbone's "
                                           "weights (must agree with --ckpt's model; labels random weights) [default: "
                                           "the checkpoint's, else isqrt]"),
) -> None:
    """Faster / Mask R-CNN (FPN) fine-tuning and COCO evaluation with GAP, GCP_D or GCP_M backbones."""
    from gcpbench.extras import require_detect

    require_detect()  # one line naming what to install, before mmdetection is imported
    from gcpbench.coco import COCO_METRICS
    from gcpbench.detection.runner import DetectOptions, detect as run_detect
    from gcpbench.runtime import is_main_process

    options = DetectOptions(framework=framework, backbone=backbone, ckpt=ckpt, data=data, epochs=epochs, max_iters=max_iters,
                            eval_only=eval_only, weights=weights, work_dir=work_dir, launcher=launcher, device=device,
                            resume=resume, batch_size=batch_size, workers=workers, seed=seed, quiet=quiet,
                            config=config, gcp_norm=gcp_norm)
    run, result = run_detect(options)
    if not is_main_process():  # under torchrun only the first process reports
        return
    typer.echo(f"{result['framework']} {result['backbone']} {result['method']} on {result['dataset']}: COCO AP (%)")
    table = Table()
    table.add_column("task")
    names = list(COCO_METRICS)
    for name in names:
        table.add_column(name, justify="right")
    for task in ("bbox", "segm"):
        if task in result:
            table.add_row(task, *("-" if result[task][n] is None else f"{result[task][n]:.1f}" for n in names))
    Console().print(table)
    typer.echo(f"wrote {run.eval / ('detection_' + result['framework'] + '.json')}")
