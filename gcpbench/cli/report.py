"""`gcpbench report`."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from gcpbench.cli import app, modelopts
from gcpbench.cli.choices import DATA, OUTPUT, apply_quiet, examples, json_option, quiet_option
from gcpbench.errors import GcpbenchError

EPILOG = examples(
    "gcpbench report   (every run under runs/, into runs/report)",
    "gcpbench report runs/paper --out paper_report --all-paper-rows",
    "gcpbench report --ckpt runs/r50_gcp/checkpoints/best.pt",
)


@app.command(epilog=EPILOG)
def report(
    paths: list[Path] = typer.Argument(None, help="run directories or folders holding them (default: runs/)", show_default=False),
    ckpt: Optional[Path] = modelopts.ckpt_option("report the runs holding this checkpoint's results (searched under PATHS or runs/)"),
    model: Optional[str] = modelopts.model_option(),
    weights: Optional[Path] = modelopts.weights_option(),
    gcp_norm: Optional[list[str]] = typer.Option(None, "--gcp-norm", help="only GAP runs and GCP runs with this normalisation (repeatable): isqrt, mpn, log, mpa, bcnn, cbp, none, dropcov", rich_help_panel=DATA),
    all_paper: bool = typer.Option(False, "--all-paper-rows", help="show every paper row, not only the "
                                   "architectures / detectors that have runs", rich_help_panel=DATA),
    out: Path = typer.Option(None, "--out", help="output folder (default: runs/report)", rich_help_panel=OUTPUT),
    quiet: bool = quiet_option(),
    as_json: bool = json_option("what was written (report, tables, figures, runs, warnings)"),
) -> None:
    """Collect every run's metrics into paper-style tables and plots: report.md, report.html (one
    self-contained file), report.json, each table as Markdown, CSV and LaTeX."""
    apply_quiet(quiet)
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
    if as_json:
        import json

        for warning in result.warnings:
            print_warning(warning)
        typer.echo(json.dumps({"report": str(result.report), "html": str(result.html), "json": str(result.json),
                               "runs": result.runs, "warnings": result.warnings,
                               "tables": [t.name for t in result.tables],
                               "figures": [str(getattr(f, "path", f)) for f in result.figures]}, indent=2))
        return
    console = stdout_console()
    for warning in result.warnings:  # a skipped run or file: one line on stderr, with --quiet too
        print_warning(warning)
    if not quiet:
        print_summary(result, console)
        console.print(f"html: {result.html} (one self-contained file); json: {result.json}", highlight=False,
                      soft_wrap=True)
    console.print(f"report: {result.report}", highlight=False, soft_wrap=True)
