"""`gcpbench detect`."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from gcpbench.cli import app
from gcpbench.errors import GcpbenchError
from gcpbench.cli.choices import (DATA, DETECT_LAUNCHERS, FRAMEWORKS, MODEL, OUTPUT, RUNTIME, SCHEDULE, apply_quiet, choice,
                                  device_option, examples, json_option, quiet_option)

EPILOG = examples(
    "gcpbench detect --framework faster_rcnn --backbone resnet50_gcp_m --max-iters 20   (synthetic COCO, a quick look)",
    "gcpbench detect --framework mask_rcnn --backbone resnet50_gcp_d --ckpt r50_gcp.pth --data /data/coco",
    "gcpbench detect --framework faster_rcnn --backbone resnet50_gcp_m --data /data/coco --cfg-options "
    "optim_wrapper.optimizer.lr=0.01 train_dataloader.batch_size=4",
)


@app.command(epilog=EPILOG)
def detect(
    framework: str = choice(..., "--framework", FRAMEWORKS, "framework", "the detector (FPN)", MODEL),
    backbone: str = typer.Option(..., "--backbone", help="resnet18, 34, 50 or 101 with _gap, _gcp_d or _gcp_m, e.g. resnet50_gcp_m", rich_help_panel=MODEL),
    ckpt: Optional[str] = typer.Option(None, "--ckpt", help="backbone weights: gcpbench / iSQRT-COV / torchvision ResNet "
                                       "checkpoint, or 'none' for random weights [default: the config's; random on synthetic data]",
                                       rich_help_panel=MODEL),
    weights: Optional[Path] = typer.Option(None, "--weights", help="mmdetection checkpoint: evaluated with --eval-only, "
                                           "otherwise the starting point (load_from)", rich_help_panel=MODEL),
    config: Optional[Path] = typer.Option(None, "--config", help="your own mmdetection config file instead of the packaged "
                                          "one (the options above still apply)", rich_help_panel=MODEL),
    gcp_norm: Optional[str] = typer.Option(None, "--gcp-norm", help="the GCP normalisation of a GCP_D / GCP_M backbone's "
                                           "weights (must agree with --ckpt's model; labels random weights) [default: "
                                           "the checkpoint's, else isqrt]", rich_help_panel=MODEL),
    cfg_options: Optional[List[str]] = typer.Option(None, "--cfg-options", help="KEY=VALUE [KEY=VALUE ...] merged into "
                                                    "the mmdetection config last, as mmdetection's tools do "
                                                    "(KEY: a dotted config path; examples below)", rich_help_panel=MODEL),
    more_cfg_options: Optional[List[str]] = typer.Argument(None, hidden=True, show_default=False),
    data: Optional[Path] = typer.Option(None, "--data", help="COCO 2017 root (annotations/, train2017/, val2017/) "
                                        "[default: the built-in synthetic set]", rich_help_panel=DATA),
    epochs: Optional[int] = typer.Option(None, "--epochs", help="train N epochs, LR steps scaled [default: 1x = 12]", rich_help_panel=SCHEDULE),
    max_iters: Optional[int] = typer.Option(None, "--max-iters", help="train N iterations instead of epochs", rich_help_panel=SCHEDULE),
    eval_only: bool = typer.Option(False, "--eval-only", help="only evaluate --weights", rich_help_panel=SCHEDULE),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help="images per GPU [default: 2]", rich_help_panel=SCHEDULE),
    launcher: str = choice("none", "--launcher", DETECT_LAUNCHERS, "launcher", "pytorch under torchrun for several GPUs", RUNTIME),
    device: str = device_option(),
    resume: bool = typer.Option(False, "--resume", help="resume from the work dir's last mmengine checkpoint", rich_help_panel=RUNTIME),
    workers: Optional[int] = typer.Option(None, "--workers", help="data-loading processes per GPU", rich_help_panel=RUNTIME),
    seed: int = typer.Option(0, "--seed", rich_help_panel=RUNTIME),
    work_dir: Optional[Path] = typer.Option(None, "--work-dir", help="run directory [default: a new folder under runs/]", rich_help_panel=OUTPUT),
    quiet: bool = quiet_option(),
    as_json: bool = json_option("the COCO AP table"),
    no_tensorboard: bool = typer.Option(False, "--no-tensorboard", help="no TensorBoard scalars [default: mmengine's TensorBoard backend, in the work dir]", rich_help_panel=OUTPUT),
) -> None:
    """Faster / Mask R-CNN (FPN) fine-tuning and COCO evaluation with GAP, GCP_D or GCP_M backbones."""
    apply_quiet(quiet)
    from gcpbench.extras import require_detect

    require_detect()  # one line naming what to install, before mmdetection is imported
    from rich.console import Console
    from rich.table import Table

    from gcpbench.coco import COCO_METRICS
    from gcpbench.detection.runner import DetectOptions, detect as run_detect
    from gcpbench.runtime import is_main_process

    pairs = [*(cfg_options or []), *(more_cfg_options or [])]
    if more_cfg_options and not cfg_options:
        raise GcpbenchError(f"unexpected argument '{more_cfg_options[0]}': KEY=VALUE pairs follow --cfg-options")
    from gcpbench.detection.config import parse_cfg_options

    options = DetectOptions(framework=framework, backbone=backbone, ckpt=ckpt, data=data, epochs=epochs, max_iters=max_iters,
                            eval_only=eval_only, weights=weights, work_dir=work_dir, launcher=launcher, device=device,
                            resume=resume, batch_size=batch_size, workers=workers, seed=seed, quiet=quiet or as_json,
                            config=config, gcp_norm=gcp_norm, cfg_options=parse_cfg_options(pairs) or None,
                            tensorboard=not no_tensorboard)
    run, result = run_detect(options)
    if not is_main_process():  # under torchrun only the first process reports
        return
    if as_json:
        import json

        typer.echo(json.dumps({**result, "path": str(run.eval / ("detection_" + result["framework"] + ".json"))},
                              indent=2, default=str))
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
