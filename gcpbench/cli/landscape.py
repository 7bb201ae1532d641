"""`gcpbench landscape`."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from gcpbench.cli import app, modelopts
from gcpbench.cli.choices import DATA, FAMILIES, OUTPUT, RUNTIME, apply_quiet, choice, device_option, examples, json_option, quiet_option
from gcpbench.errors import GcpbenchError

EPILOG = examples(
    "gcpbench landscape runs/r50_gap runs/r50_gcp   (runs trained with --landscape-every K)",
    "gcpbench landscape --ckpt runs/r50_gcp/checkpoints/best.pt --data /data/imagenet",
    "gcpbench landscape runs/r50_gap runs/r50_gcp --log-y --out figures/landscape.png",
)


@app.command(epilog=EPILOG)
def landscape(
    run_dirs: list[Path] = typer.Argument(None, help="run directories with a landscape.csv (train --landscape-every K)", show_default=False),
    ckpt: Optional[Path] = modelopts.ckpt_option("also probe this checkpoint once (its own run directory)"),
    model: Optional[str] = modelopts.model_option(),
    weights: Optional[Path] = modelopts.weights_option(),
    gcp_norm: Optional[str] = modelopts.gcp_norm_option(),
    gcp_power: Optional[float] = modelopts.gcp_power_option(),
    cbp_dim: Optional[int] = modelopts.cbp_dim_option(),
    data: Optional[Path] = typer.Option(None, "--data", help="ImageFolder root with train/ for --ckpt/--model [default: the built-in synthetic set]", rich_help_panel=DATA),
    schedule_family: Optional[str] = choice(None, "--schedule-family", FAMILIES, "model family", "whose step-size grid for a timm/torchvision model [default: a zoo model's own family, else resnet]", DATA),
    batch_size: int = typer.Option(32, "--batch-size", min=1, help="images in the probed batch", rich_help_panel=DATA),
    num_eta: Optional[int] = typer.Option(None, "--num-eta", min=2, help="step sizes [default: the paper's 50]", rich_help_panel=DATA),
    seed: int = typer.Option(0, "--seed", help="which training images form the batch", rich_help_panel=DATA),
    device: str = device_option(),
    out: Path = typer.Option(None, "--out", "-o", help="PNG to write [default: plots/landscape.png of the first run]", rich_help_panel=OUTPUT),
    log_y: bool = typer.Option(False, "--log-y", help="logarithmic y axes", rich_help_panel=OUTPUT),
    quiet: bool = quiet_option(),
    as_json: bool = json_option("the figure's path and the probe's row"),
) -> None:
    """Loss Lipschitzness, gradient predictiveness and beta-smoothness figure (GAP vs GCP); with
    --ckpt or --model/--weights, probe that model once (cut after its stem) and plot it too."""
    apply_quiet(quiet)
    from gcpbench.landscape.plot import plot_landscape
    from gcpbench.paths import require_folder, require_writable_file
    from gcpbench.runs import RunDir

    run_dirs = list(run_dirs or [])
    probe = None
    if ckpt is not None or model is not None:
        from gcpbench.landscape.single import probe_model
        from gcpbench.models.training import family_for

        resolved = modelopts.resolve(ckpt, model, weights, gcp_norm, modelopts.gcp_options(gcp_power, cbp_dim))
        row, run = probe_model(resolved, data, family_for(resolved.name, schedule_family), batch_size=batch_size, num_eta=num_eta,
                               seed=seed, device=device, quiet=quiet)
        modelopts.describe(resolved, quiet or as_json)
        probe = {"model": resolved.name, "landscape_csv": str(run.landscape), **row.to_json()}
        if not as_json:
            typer.echo(f"probed {resolved.name}: loss {row.train_loss:.4f}, loss band {row.loss_min:.4f}..."
                       f"{row.loss_max:.4f}, beta-smoothness {row.beta_smoothness:.4g}; wrote {run.landscape}")
        run_dirs.insert(0, run.path)
    if not run_dirs:
        raise GcpbenchError("give run directories to plot, or --ckpt FILE / --model NAME --weights FILE to probe")
    for path in run_dirs:
        require_folder(path, "run directory")
    target = out if out is not None else RunDir(run_dirs[0]).plots / "landscape.png"
    if target.suffix.lower() != ".png":
        raise GcpbenchError(f"--out must name a .png file, got '{target}'")
    require_writable_file(target, "choose another --out", "figure")
    path = plot_landscape(run_dirs, target, logy=log_y)
    if as_json:
        import json

        typer.echo(json.dumps({"figure": str(path), "runs": [str(r) for r in run_dirs], "probe": probe}, indent=2))
    else:
        typer.echo(f"wrote {path} ({len(run_dirs)} run{'s' if len(run_dirs) > 1 else ''})")
