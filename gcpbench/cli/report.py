"""`gcpbench report`."""
from __future__ import annotations

from pathlib import Path

import typer

from gcpbench.cli import app


@app.command()
def report(
    paths: list[Path] = typer.Argument(None, help="run directories or folders holding them (default: runs/)"),
    out: Path = typer.Option(None, "--out", help="output folder (default: runs/report)"),
    all_paper: bool = typer.Option(False, "--all-paper-rows", help="show every paper row, not only the "
                                   "architectures / detectors that have runs"),
    quiet: bool = typer.Option(False, "--quiet", help="print only the path of report.md"),
) -> None:
    """Collect every run's metrics into paper-style tables and plots (Markdown, CSV, LaTeX)."""
    from rich.console import Console

    from gcpbench.paths import require_writable
    from gcpbench.report import build_report
    from gcpbench.report.summary import print_summary
    from gcpbench.runs import DEFAULT_ROOT

    require_writable(out or DEFAULT_ROOT / "report")
    result = build_report(paths or [DEFAULT_ROOT], out or DEFAULT_ROOT / "report", all_paper=all_paper)
    console = Console()
    if quiet:  # skipped runs are still worth one line each
        for warning in result.warnings:
            Console(stderr=True).print(f"warning: {warning}", highlight=False, soft_wrap=True)
    else:
        print_summary(result, console)
    console.print(f"report: {result.report}", highlight=False, soft_wrap=True)
