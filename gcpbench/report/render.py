"""Writing the report: each table as Markdown, CSV and LaTeX, and ``report.md`` holding all.

Markdown and LaTeX show missing entries as an em dash (LaTeX: ``---``) and numbers with two
decimals; the CSV keeps full precision and leaves missing entries empty (machine-readable).
"""
from __future__ import annotations

import math
import os
from pathlib import Path

import pandas as pd

from gcpbench.io import atomic_write_text
from gcpbench.report.plots import Figure
from gcpbench.report.status import marked
from gcpbench.report.tables import Table

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


_LATEX_SPECIALS = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                   "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


def latex_escape(text: str) -> str:
    """``text`` with LaTeX's special characters escaped (for captions)."""
    return "".join(_LATEX_SPECIALS.get(ch, ch) for ch in text)


def _alignment(frame: pd.DataFrame) -> str:
    """LaTeX column alignment: numbers right, text left."""
    return "".join("r" if pd.api.types.is_numeric_dtype(frame[c]) and not pd.api.types.is_bool_dtype(frame[c])
                   else "l" for c in frame.columns)


def to_latex(table: Table) -> str:
    """A LaTeX ``table`` (booktabs) with the title as caption; em dashes as ``---``."""
    shown = display_frame(table.frame, table.flags)
    if shown.empty:
        shown = pd.DataFrame({c: [EM_DASH] for c in table.frame.columns} or {"": [EM_DASH]})
    text = shown.to_latex(index=False, escape=True, caption=latex_escape(table.title), label=f"tab:{table.name}",
                          column_format=_alignment(table.frame) or "l")
    return text.replace(EM_DASH, "---").replace("Δ", r"$\Delta$")


def write_table(table: Table, out_dir: Path) -> dict[str, Path]:
    """Write ``<name>.md``, ``<name>.csv`` and ``<name>.tex`` into ``out_dir``."""
    out_dir = Path(out_dir)
    paths = {
        "md": atomic_write_text(out_dir / f"{table.name}.md",
                                f"### {table.title}\n\n{to_markdown(table.frame, table.flags)}"),
        "csv": atomic_write_text(out_dir / f"{table.name}.csv", table.frame.to_csv(index=False)),
        "tex": atomic_write_text(out_dir / f"{table.name}.tex", to_latex(table)),
    }
    return paths


def _link(path: Path, out_dir: Path) -> str:
    return Path(os.path.relpath(Path(path).resolve(), Path(out_dir).resolve())).as_posix()


def report_markdown(tables: list[Table], figures: list[Figure], out_dir: Path, sources: list[str],
                    warnings: list[str], run_plots: list[Path] = ()) -> str:
    """The text of ``report.md``: sources, warnings, every table, every figure."""
    lines = ["# gcpbench report", "",
             "Runs: " + (", ".join(f"`{s}`" for s in sources) if sources else EM_DASH), ""]
    if warnings:
        lines += ["**Warnings (skipped, unreadable or stale files):**", ""] + [f"- {w}" for w in warnings] + [""]
    for table in tables:
        lines += [f"## {table.title}", ""]
        if table.note:
            lines += [table.note, ""]
        files = " · ".join(f"[{ext}]({table.name}.{ext})" for ext in ("md", "csv", "tex"))
        lines += [to_markdown(table.frame, table.flags), f"Files: {files}", ""]
    lines += ["## Figures", ""]
    for figure in figures:
        lines += [f"### {figure.title}", ""]
        if figure.path is not None:
            lines += [f"![{figure.title}]({_link(figure.path, out_dir)})", ""]
        if figure.note:
            lines += [f"_{figure.note}_", ""]
    if run_plots:
        lines += ["### Plots written by the runs", ""]
        lines += [f"- [{_link(p, out_dir)}]({_link(p, out_dir)})" for p in run_plots] + [""]
    return "\n".join(lines)


def write_report(tables: list[Table], figures: list[Figure], out_dir: Path, sources: list[str],
                 warnings: list[str], run_plots: list[Path] = ()) -> Path:
    """Write every table's files and ``report.md``; returns the path of ``report.md``."""
    for table in tables:
        write_table(table, out_dir)
    text = report_markdown(tables, figures, out_dir, sources, warnings, run_plots)
    return atomic_write_text(Path(out_dir) / "report.md", text)
