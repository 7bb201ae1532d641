"""`gcpbench landscape`."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from gcpbench.cli import app, modelopts
from gcpbench.errors import GcpbenchError


@app.command()
def landscape(
    run_dirs: list[Path] = typer.Argument(None, help="run directories with a landscape.csv (train --landscape-every K)"),
    out: Path = typer.Option(None, "--out", "-o", help="PNG to write [default: FIRST_RUN/plots/landscape.png]"),
    log_y: bool = typer.Option(False, "--log-y", help="logarithmic y axes"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="print nothing"),
    ckpt: Optional[Path] = typer.Option(None, "--ckpt", help="also probe this checkpoint once (its own run directory)"),
    model: Optional[str] = modelopts.model_option(),
    weights: Optional[Path] = modelopts.weights_option(),
    gcp_norm: Optional[str] = modelopts.gcp_norm_option(),
    gcp_power: Optional[float] = modelopts.gcp_power_option(),
    cbp_dim: Optional[int] = modelopts.cbp_dim_option(),
    data: Optional[Path] = typer.Option(None, "--data", help="ImageFolder root with train/ for --ckpt/--model [default: the built-in synthetic set]"),
    schedule_family: str = typer.Option("resnet", "--schedule-family", help="whose step-size grid: resnet, mobilenetv2, shufflenetv2"),
    batch_size: int = typer.Option(32, "--batch-size", min=1, help="images in the probed batch"),
    num_eta: Optional[int] = typer.Option(None, "--num-eta", min=2, help="step sizes [default: the paper's 50]"),
    seed: int = typer.Option(0, "--seed", help="which training images form the batch"),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N"),
) -> None:
    """Loss Lipschitzness, gradient predictiveness and beta-smoothness figure (GAP vs GCP); with
    --ckpt or --model/--weights, probe that model once (cut after its stem) and plot it too."""
    from gcpbench.landscape.plot import plot_landscape
    from gcpbench.paths import require_folder, require_writable_file
    from gcpbench.runs import RunDir

    run_dirs = list(run_dirs or [])
    if ckpt is not None or model is not None:
        from gcpbench.landscape.single import probe_model
        from gcpbench.models.registry import family_of

        resolved = modelopts.resolve(ckpt, model, weights, gcp_norm, modelopts.gcp_options(gcp_power, cbp_dim))
        row, run = probe_model(resolved, data, family_of(schedule_family), batch_size=batch_size, num_eta=num_eta,
                               seed=seed, device=device, quiet=quiet)
        modelopts.describe(resolved, quiet)
        if not quiet:
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
    if not quiet:
        typer.echo(f"wrote {path} ({len(run_dirs)} run{'s' if len(run_dirs) > 1 else ''})")
