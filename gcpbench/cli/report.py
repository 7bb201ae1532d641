"""`gcpbench report`."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from gcpbench.cli import app, modelopts
from gcpbench.errors import GcpbenchError


@app.command()
def report(
    paths: list[Path] = typer.Argument(None, help="run directories or folders holding them (default: runs/)"),
    out: Path = typer.Option(None, "--out", help="output folder (default: runs/report)"),
    all_paper: bool = typer.Option(False, "--all-paper-rows", help="show every paper row, not only the "
                                   "architectures / detectors that have runs"),
    quiet: bool = typer.Option(False, "--quiet", help="print only the path of report.md"),
    ckpt: Optional[Path] = typer.Option(None, "--ckpt", help="report the runs holding this checkpoint's results (searched under PATHS or runs/)"),
    model: Optional[str] = modelopts.model_option(),
    weights: Optional[Path] = modelopts.weights_option(),
    gcp_norm: Optional[list[str]] = typer.Option(None, "--gcp-norm", help="only GAP runs and GCP runs with this normalisation (repeatable): isqrt, mpn, log, mpa, bcnn, cbp, none, dropcov"),
) -> None:
    """Collect every run's metrics into paper-style tables and plots (Markdown, CSV, LaTeX)."""
    from gcpbench.cli import print_warning
    from gcpbench.cli.ui import stdout_console

    from gcpbench.paths import require_writable
    from gcpbench.report import build_report
    from gcpbench.cli.report_summary import print_summary
    from gcpbench.runs import DEFAULT_ROOT

    require_writable(out or DEFAULT_ROOT / "report")
    paths = paths or [DEFAULT_ROOT]
    if ckpt is not None or model is not None or weights is not None:
        from gcpbench.report.select import runs_for_weights

        if (ckpt is None) == (weights is None) or (weights is not None and model is None):
            raise GcpbenchError("give either --ckpt FILE or --model NAME --weights FILE")
        paths = runs_for_weights(ckpt or weights, model, paths)
    result = build_report(paths, out or DEFAULT_ROOT / "report", all_paper=all_paper, gcp_norms=gcp_norm)
    console = stdout_console()
    if quiet:  # skipped runs are still worth one line each
        for warning in result.warnings:
            print_warning(warning)
    else:
        print_summary(result, console)
    console.print(f"report: {result.report}", highlight=False, soft_wrap=True)
