"""``gcpbench report`` as one library call: collect, tabulate, plot, write."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from gcpbench.provenance import provenance
from gcpbench.report.collect import collect, landscape_runs
from gcpbench.report.content import ReportContent
from gcpbench.report.methods import keep_methods, method_tables, methods_landscape_figure
from gcpbench.report.fgvc import fgvc_report_table
from gcpbench.report.plots import Figure, convergence_figure, corruption_figure, landscape_figure, lr_figure
from gcpbench.report.provenance_header import data_banner, runs_frame
from gcpbench.report.render import write_report
from gcpbench.report.report_json import write_report_json
from gcpbench.report.tables import Table, build_tables
from gcpbench.report.wide import WideTable, wide_tables


@dataclass
class ReportResult:
    """What was written: report.md (and report.html, report.json), the tables and figures, and
    the skipped runs/files."""

    report: Path
    tables: list[Table]
    figures: list[Figure]
    warnings: list[str]
    runs: list[str]
    wide: list[WideTable]
    content: ReportContent
    html: Path | None = None
    json: Path | None = None

    def table(self, name: str) -> Table:
        """The table called ``name`` (imagenet, matching_epoch, robustness, corruption_ce, detection, fgvc)."""
        return next(t for t in self.tables if t.name == name)

    def wide_table(self, name: str) -> WideTable:
        """The paper-layout table called ``name`` (table1_imagenet, table_robustness, table_detection_*)."""
        return next(t for t in self.wide if t.name == name)


def build_report(paths: Iterable[str | os.PathLike], out: str | os.PathLike, all_paper: bool = False,
                 gcp_norms: list[str] | None = None) -> ReportResult:
    """Collect every run under ``paths`` and write the tables, figures, ``report.md``,
    ``report.html`` and ``report.json`` to ``out`` (``gcp_norms``: only GAP runs and GCP runs of
    these normalisations)."""
    from gcpbench.report.html import write_html

    out = Path(out)
    collection = keep_methods(collect(paths), gcp_norms)
    tables, curves = build_tables(collection, all_paper)
    tables += method_tables(collection)
    tables.append(fgvc_report_table(collection, all_paper))
    out.mkdir(parents=True, exist_ok=True)
    ce_table = next(t for t in tables if t.name == "corruption_ce").frame
    banner = data_banner(collection)
    figures = [
        convergence_figure(curves, out / "convergence.png"),
        corruption_figure(ce_table, out / "corruption_ce.png"),
        landscape_figure(landscape_runs(collection), out / "landscape.png"),
        lr_figure(out / "lr_schedules.png"),
        methods_landscape_figure(collection, out / "landscape_methods.png"),
    ]
    names = [r.name for r in collection.runs]
    content = ReportContent(tables, wide_tables(tables), figures, names, collection.warnings,
                            provenance(), runs_frame(collection), banner,
                            [p for r in collection.runs for p in r.plots])
    report = write_report(content, out)
    html = write_html(content, out)
    json_path = write_report_json(content, out)
    return ReportResult(report, tables, figures, collection.warnings, names, content.wide, content, html, json_path)
