"""`gcpbench eval-imagenet`."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from gcpbench.cli import app, modelopts
from gcpbench.cli.ui import quiet_now
from gcpbench.cli.choices import (DATA, OUTPUT, RUNTIME, VARIANTS, apply_quiet, choice, device_option, examples,
                                  json_option, quiet_option, workers_option)

EPILOG = examples(
    "gcpbench eval-imagenet --ckpt runs/r50_gcp/checkpoints/best.pt --data /data/imagenet",
    "gcpbench eval-imagenet --model timm/convnext_atto --weights convnext_atto.safetensors --data /data/imagenet",
    "gcpbench eval-imagenet --ckpt best.pt --variant sketch --data /data/imagenet-sketch/sketch",
)


@app.command("eval-imagenet", epilog=EPILOG)
def eval_imagenet(
    ckpt: Optional[Path] = modelopts.ckpt_option(),
    model: Optional[str] = modelopts.model_option(),
    weights: Optional[Path] = modelopts.weights_option(),
    gcp_norm: Optional[str] = modelopts.gcp_norm_option(),
    gcp_power: Optional[float] = modelopts.gcp_power_option(),
    cbp_dim: Optional[int] = modelopts.cbp_dim_option(),
    data: Optional[Path] = typer.Option(None, "--data", help="ImageFolder root holding val/<class>/ [default: the built-in synthetic set]", rich_help_panel=DATA),
    variant: Optional[str] = choice(None, "--variant", VARIANTS, "variant", "score on ImageNetV2, -Sketch, -R or -A (--data: the folder of class folders; R and A on their 200 classes' logits)", DATA),
    image_size: Optional[int] = typer.Option(None, "--image-size", help="centre-crop size [default: 224; the synthetic set's own size]", rich_help_panel=DATA),
    strict: bool = typer.Option(False, "--strict", help="stop at the first unreadable image [default: skip and list it]", rich_help_panel=DATA),
    batch_size: int = typer.Option(64, "--batch-size", rich_help_panel=RUNTIME),
    workers: Optional[int] = workers_option(),
    device: str = device_option(),
    amp: bool = typer.Option(False, "--amp", help="bf16 autocast (the GCP layer stays float32)", rich_help_panel=RUNTIME),
    out: Optional[Path] = typer.Option(None, "--out", help="result .json file or run directory [default: the checkpoint's run directory]", rich_help_panel=OUTPUT),
    quiet: bool = quiet_option(),
    as_json: bool = json_option(),
) -> None:
    """Top-1 / top-5 of a checkpoint on an ImageFolder validation tree (the model's own preprocessing), or an ImageNet variant."""
    apply_quiet(quiet)
    from gcpbench.paths import require_eval_output

    require_eval_output(ckpt or weights, out)  # before the heavy imports: a read-only folder fails at once
    from gcpbench.data.folders import skipped_note
    from gcpbench.errors import warn
    from gcpbench.evaluate import eval_imagenet as run

    if variant is not None:
        from gcpbench.robustness.variants import eval_variant

        result, path = eval_variant(variant, ckpt, data, out, batch_size=batch_size, workers=workers, device=device,
                                    amp=amp, image_size=image_size, quiet=quiet or as_json, model_name=model, weights=weights,
                                    strict=strict, gcp_norm=gcp_norm, gcp_options=modelopts.gcp_options(gcp_power, cbp_dim))
    else:
        result, path = run(ckpt, data, out, batch_size=batch_size, workers=workers, device=device, amp=amp,
                           image_size=image_size, quiet=quiet or as_json, model_name=model, weights=weights, strict=strict,
                           gcp_norm=gcp_norm, gcp_options=modelopts.gcp_options(gcp_power, cbp_dim))
    if as_json:
        import json

        typer.echo(json.dumps({**result, "path": str(path)}, indent=2, default=str))
    else:
        _print_table(result, path)
    if result["unreadable"]:
        warn(skipped_note(result["unreadable"], path))


def _print_table(result: dict, path) -> None:
    from rich.table import Table

    from gcpbench.cli.ui import stdout_console

    prep = result["preprocessing"]
    if not quiet_now():
        typer.echo(f"model {result['model']} from {result['weights']}; preprocessing ({prep['source']}): resize "
                   f"{prep['resize']} ({prep['interpolation']}), crop {prep['input_size']}, mean {prep['mean']}, "
                   f"std {prep['std']}", err=True)
    table = Table(title=f"eval-imagenet: {result['model']} on {result['dataset']}", title_justify="left")
    for column in ("model", "dataset", "images", "top-1 %", "top-5 %", "loss"):
        table.add_column(column, justify="left" if column in ("model", "dataset") else "right")
    table.add_row(result["model"], result["dataset"], f"{result['images']:,}", f"{result['top1']:.2f}",
                  f"{result['top5']:.2f}", f"{result['loss']:.4f}")
    stdout_console().print(table)
    typer.echo(f"wrote {path}")
