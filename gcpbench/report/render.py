"""Writing the report: each table as Markdown, CSV and LaTeX, and ``report.md`` holding all.

Markdown and LaTeX show missing entries as an em dash (LaTeX: ``---``) and numbers with two
decimals; the CSV keeps full precision, leaves missing entries empty and names its columns for
scripts (:mod:`gcpbench.report.columns`: ``top1_pct``, ``delta_top1_pct``). The paper-layout
tables (:mod:`gcpbench.report.wide`) are written as Markdown and LaTeX; ``report.md`` starts
with the provenance header and, when any number is not on the paper's data, the data banner.
Sections with no entries are left out.
"""
from __future__ import annotations

import math
import os
from pathlib import Path

import pandas as pd

from gcpbench.io import atomic_write_text
from gcpbench.report.columns import csv_header
from gcpbench.report.content import ReportContent
from gcpbench.report.latex import long_to_latex, wide_to_latex
from gcpbench.report.provenance_header import SHOWN_RUN_COLUMNS, stack_lines
from gcpbench.report.status import marked
from gcpbench.report.tables import Table
from gcpbench.report.wide import WideTable

EM_DASH = "—"


def format_cell(value: object, decimals: int = 2) -> str:
    """One table cell as text: em dash for missing, fixed decimals for floats."""
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return EM_DASH
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.{decimals}f}"
    return str(value)


def display_frame(frame: pd.DataFrame, flags: dict[str, str] | None = None) -> pd.DataFrame:
    """``frame`` with every cell formatted by :func:`format_cell`; a value column named in
    ``flags`` (value column -> status column) shows its row's status after the number
    (``74.09 [stale]``, :func:`gcpbench.report.status.marked`), so no flagged number reads as a plain one."""
    shown = pd.DataFrame({c: [format_cell(v) for v in frame[c].astype(object)] for c in frame.columns},
                         columns=list(frame.columns), dtype=object)
    for value, state in (flags or {}).items():
        if value in frame.columns and state in frame.columns:
            shown[value] = [marked(text, s if isinstance(s, str) else "") if text != EM_DASH else text
                            for text, s in zip(shown[value], frame[state])]
    return shown


def to_markdown(frame: pd.DataFrame, flags: dict[str, str] | None = None) -> str:
    """A GitHub-flavoured Markdown table (a line saying so when there are no rows)."""
    if frame.empty:
        return "_no entries_\n"
    return display_frame(frame, flags).to_markdown(index=False, disable_numparse=True) + "\n"


def csv_text(table: Table) -> str:
    """The long table as CSV with machine-readable headers (full precision, missing = empty)."""
    frame = table.frame.copy()
    frame.columns = csv_header(table.frame.columns, table.percent)
    return frame.to_csv(index=False)


def write_table(table: Table, out_dir: Path) -> dict[str, Path]:
    """Write ``<name>.md``, ``<name>.csv`` and ``<name>.tex`` into ``out_dir``."""
    out_dir = Path(out_dir)
    return {
        "md": atomic_write_text(out_dir / f"{table.name}.md", f"### {table.title}\n\n{to_markdown(table.frame, table.flags)}"),
        "csv": atomic_write_text(out_dir / f"{table.name}.csv", csv_text(table)),
        "tex": atomic_write_text(out_dir / f"{table.name}.tex", long_to_latex(table)),
    }


def wide_markdown(table: WideTable) -> str:
    """A paper-layout table in Markdown: best values bold, footnote marks and their legend."""
    header = list(table.labels.columns) + list(table.values.columns)
    rows = table.cells(escape=lambda t: t.replace("|", "\\|"), bold=lambda t: f"**{t}**", missing=EM_DASH)
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join(":---" if i < len(table.labels.columns) else "---:" for i in range(len(header))) + "|"]
    lines += ["| " + " | ".join(cells) + " |" for cells in rows]
    lines += [""] + [f"{mark} {text}" for mark, text in table.legend().items()]
    return "\n".join(lines).rstrip() + "\n"


def write_wide(table: WideTable, out_dir: Path) -> dict[str, Path]:
    """Write ``<name>.md`` and ``<name>.tex`` of a paper-layout table into ``out_dir``."""
    out_dir = Path(out_dir)
    return {
        "md": atomic_write_text(out_dir / f"{table.name}.md", f"### {table.title}\n\n{wide_markdown(table)}"),
        "tex": atomic_write_text(out_dir / f"{table.name}.tex", wide_to_latex(table)),
    }


def _link(path: Path, out_dir: Path) -> str:
    return Path(os.path.relpath(Path(path).resolve(), Path(out_dir).resolve())).as_posix()


def header_markdown(content: ReportContent) -> list[str]:
    """The provenance header, the per-run commands and the data banner."""
    lines = ["# gcpbench report", ""]
    lines += [f"- **{label}**: {value}" for label, value in stack_lines(content.provenance)] + [""]
    if content.banner:
        lines += [f"> **⚠ {content.banner}**", ""]
    if not content.runs.empty:
        lines += ["<details><summary>Runs and the commands that made them</summary>", "",
                  to_markdown(content.runs[SHOWN_RUN_COLUMNS]), "</details>", ""]
    return lines


def report_markdown(content: ReportContent, out_dir: Path) -> str:
    """The text of ``report.md``: header, paper-layout tables, long tables, figures."""
    lines = header_markdown(content)
    lines += ["Runs: " + (", ".join(f"`{s}`" for s in content.sources) if content.sources else EM_DASH), ""]
    if content.warnings:
        lines += ["**Warnings (skipped, unreadable or stale files):**", ""] + [f"- {w}" for w in content.warnings] + [""]
    if content.wide:
        lines += ["## Paper layout", ""]
        for table in content.wide:
            files = " · ".join(f"[{ext}]({table.name}.{ext})" for ext in ("md", "tex"))
            lines += [f"### {table.title}", "", table.note, "", wide_markdown(table), f"Files: {files}", ""]
    for table in content.shown_tables():
        lines += [f"## {table.title}", ""]
        if table.note:
            lines += [table.note, ""]
        files = " · ".join(f"[{ext}]({table.name}.{ext})" for ext in ("md", "csv", "tex"))
        lines += [to_markdown(table.frame, table.flags), f"Files: {files}", ""]
    figures = content.shown_figures()
    if figures:
        lines += ["## Figures", ""]
    for figure in figures:
        lines += [f"### {figure.title}", "", f"![{figure.title}]({_link(figure.path, out_dir)})", ""]
        if figure.note:
            lines += [f"_{figure.note}_", ""]
    skipped = [f for f in content.figures if f.path is None]
    if skipped:
        lines += ["Figures left out: " + "; ".join(f"{f.title} ({f.note})" for f in skipped), ""]
    if content.run_plots:
        lines += ["### Plots written by the runs", ""]
        lines += [f"- [{_link(p, out_dir)}]({_link(p, out_dir)})" for p in content.run_plots] + [""]
    return "\n".join(lines)


def write_report(content: ReportContent, out_dir: Path) -> Path:
    """Write every table's files and ``report.md``; returns the path of ``report.md``."""
    for table in content.tables:
        write_table(table, out_dir)
    for table in content.wide:
        write_wide(table, out_dir)
    return atomic_write_text(Path(out_dir) / "report.md", report_markdown(content, out_dir))
