"""LaTeX that drops into a paper: booktabs rules, right-aligned numbers with fixed decimals
(so their decimal points line up), no internal columns, scaled to the column width when wide,
the best value per column in bold, footnote marks explained under the table.

The preamble needs ``\\usepackage{booktabs}`` and ``\\usepackage{graphicx}`` (for
``\\resizebox``); each file says so in its first comment line.
"""
from __future__ import annotations

import pandas as pd

from gcpbench.report.status import marked
from gcpbench.report.tables import Table
from gcpbench.report.wide import WideTable

PREAMBLE = "% requires \\usepackage{booktabs} and \\usepackage{graphicx} (\\resizebox) in the preamble"
# Columns that say where a number came from inside gcpbench: kept in CSV / Markdown, not in a paper.
INTERNAL_COLUMNS = ("run", "source", "GAP+LRnorm run", "GCP+LRadju run")
# Scaled to the column width (two-column page) past this many columns, or when the widest text
# of each column (plus a gap) adds up to more characters than one column of a two-column paper holds.
MAX_PLAIN_COLUMNS = 6
COLUMN_CHARACTERS = 56
MISSING = "---"
_SPECIALS = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
             "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}
_MARKS = {"†": r"$^{\dagger}$", "‡": r"$^{\ddagger}$"}


def latex_escape(text: str) -> str:
    """``text`` with LaTeX's special characters escaped, Δ as ``$\\Delta$``, marks as superscripts."""
    out = "".join(_SPECIALS.get(ch, ch) for ch in str(text))
    for symbol, command in {"Δ": r"$\Delta$", "—": "---", **_MARKS}.items():
        out = out.replace(symbol, command)
    return out


def _mark(marks: str) -> str:
    return "".join(_MARKS.get(m, "") for m in marks)


def too_wide(header: list[str], rows: list[list[str]]) -> bool:
    """Whether a tabular of these (plain-text) cells needs scaling to fit one paper column."""
    widths = [max([len(str(name))] + [len(str(row[i])) for row in rows]) for i, name in enumerate(header)]
    return len(header) > MAX_PLAIN_COLUMNS or sum(w + 2 for w in widths) > COLUMN_CHARACTERS


def _wrap(body: list[str], caption: str, label: str, scale: bool, notes: list[str]) -> str:
    lines = [PREAMBLE, r"\begin{table}[t]", r"\centering", rf"\caption{{{latex_escape(caption)}}}", rf"\label{{tab:{label}}}"]
    if scale:
        lines += [r"\resizebox{\linewidth}{!}{%"] + body + ["}"]
    else:
        lines += body
    for note in notes:
        lines.append(rf"\par\smallskip{{\footnotesize {note}}}")
    lines.append(r"\end{table}")
    return "\n".join(lines) + "\n"


def _header(names: list[str], align: list[str], groups: list[tuple[str, int]], offset: int) -> list[str]:
    """One or two header lines: group titles spanning their columns (with cmidrules), then names."""
    lines = []
    if groups:
        cells, rules, start = [""] * offset, [], offset + 1
        for title, span in groups:
            cells.append(rf"\multicolumn{{{span}}}{{c}}{{{latex_escape(title)}}}")
            rules.append(rf"\cmidrule(lr){{{start}-{start + span - 1}}}")
            start += span
        lines += [" & ".join(cells) + r" \\", " ".join(rules)]
    lines.append(" & ".join(rf"\multicolumn{{1}}{{{a}}}{{{latex_escape(n)}}}" if a == "r" else latex_escape(n)
                            for n, a in zip(names, align)) + r" \\")
    return lines


def wide_to_latex(table: WideTable) -> str:
    """A paper-layout table: label columns left, numbers right-aligned, best bold, marks explained."""
    labels = list(table.labels.columns)
    names = list(labels)
    index = 0
    for title, span in (table.groups or [("", len(table.values.columns))]):
        for column in table.values.columns[index:index + span]:
            names.append(column[len(title) + 1:] if title else column)
        index += span
    align = ["l"] * len(labels) + ["r"] * len(table.values.columns)
    body = [rf"\begin{{tabular}}{{{''.join(align)}}}", r"\toprule"]
    body += _header(names, align, table.groups, len(labels)) + [r"\midrule"]
    rows = table.cells(escape=latex_escape, bold=lambda t: rf"\textbf{{{t}}}", mark=_mark, missing=MISSING)
    previous: list[str] = []
    for cells, kind in zip(rows, table.kinds):
        shown = list(cells)
        if previous and shown[0] != previous[0]:
            body.append(r"\midrule")
        for i in range(len(labels) - 1):  # a repeated leading label is left blank, as papers do
            if previous and cells[:i + 1] == previous[:i + 1]:
                shown[i] = ""
        previous = cells
        body.append(" & ".join(shown) + r" \\")
    body += [r"\bottomrule", r"\end{tabular}"]
    notes = [f"{_mark(m)} {latex_escape(text)}" for m, text in table.legend().items()]
    return _wrap(body, table.title, table.name, too_wide(names, table.cells()), notes)


def _numeric(frame: pd.DataFrame, column: str) -> bool:
    return pd.api.types.is_numeric_dtype(frame[column]) and not pd.api.types.is_bool_dtype(frame[column])


def long_to_latex(table: Table) -> str:
    """A long table without its internal columns (``run``, ``source``): numbers right-aligned
    with two decimals (integers as integers), missing entries as ``---``."""
    frame = table.frame[[c for c in table.frame.columns if c not in INTERNAL_COLUMNS]]
    if frame.empty:
        frame = pd.DataFrame({c: [pd.NA] for c in frame.columns} or {"": [pd.NA]})
    align = ["r" if _numeric(frame, c) else "l" for c in frame.columns]
    body = [rf"\begin{{tabular}}{{{''.join(align)}}}", r"\toprule"]
    body += _header(list(frame.columns), align, [], 0) + [r"\midrule"]
    rows = [[_long_cell(value) for value in values] for values in frame.itertuples(index=False)]
    for value, state in table.flags.items():  # a flagged number shows its row's status: 74.09 [stale]
        if value in frame.columns and state in table.frame.columns:
            column = list(frame.columns).index(value)
            for cells, flag in zip(rows, table.frame[state]):
                if cells[column] != "—":
                    cells[column] = marked(cells[column], flag if isinstance(flag, str) else "")
    body += [" & ".join(latex_escape(cell) for cell in cells) + r" \\" for cells in rows]
    body += [r"\bottomrule", r"\end{tabular}"]
    return _wrap(body, table.title, table.name, too_wide(list(frame.columns), rows), [])


def _long_cell(value: object) -> str:
    """A long table's cell as plain text: ``—`` when missing, two decimals for floats."""
    if value is None or value is pd.NA or (isinstance(value, float) and pd.isna(value)):
        return "—"
    return f"{value:.2f}" if isinstance(value, float) else str(value)
