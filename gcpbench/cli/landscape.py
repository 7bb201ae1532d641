"""`gcpbench landscape`."""
from __future__ import annotations

from pathlib import Path

import typer

from gcpbench.cli import app
from gcpbench.errors import GcpbenchError


@app.command()
def landscape(
    run_dirs: list[Path] = typer.Argument(..., help="run directories with a landscape.csv (train --landscape-every K)"),
    out: Path = typer.Option(None, "--out", "-o", help="PNG to write [default: FIRST_RUN/plots/landscape.png]"),
    log_y: bool = typer.Option(False, "--log-y", help="logarithmic y axes"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="print nothing"),
) -> None:
    """Loss Lipschitzness, gradient predictiveness and beta-smoothness figure (GAP vs GCP)."""
    from gcpbench.landscape.plot import plot_landscape
    from gcpbench.paths import require_folder, require_writable_file
    from gcpbench.runs import RunDir

    for path in run_dirs:
        require_folder(path, "run directory")
    target = out if out is not None else RunDir(run_dirs[0]).plots / "landscape.png"
    if target.suffix.lower() != ".png":
        raise GcpbenchError(f"--out must name a .png file, got '{target}'")
    require_writable_file(target, "choose another --out", "figure")
    path = plot_landscape(run_dirs, target, logy=log_y)
    if not quiet:
        typer.echo(f"wrote {path} ({len(run_dirs)} run{'s' if len(run_dirs) > 1 else ''})")
