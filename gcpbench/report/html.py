"""``report.html``: the report as one self-contained file (tables, figures embedded as base64
PNG, styles inline), to open in any browser or send to a colleague. No script, no external
resource."""
from __future__ import annotations

import base64
import html
import re
from pathlib import Path

import pandas as pd

from gcpbench.io import atomic_write_text
from gcpbench.report.content import ReportContent
from gcpbench.report.provenance_header import SHOWN_RUN_COLUMNS, stack_lines
from gcpbench.report.render import display_frame
from gcpbench.report.wide import WideTable

STYLE = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 2em auto; max-width: 1200px;
       color: #1b1b1b; padding: 0 1em; }
h1 { font-size: 1.6em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: .2em; margin-top: 2em; }
table { border-collapse: collapse; margin: .8em 0; font-size: .85em; }
th, td { padding: .25em .6em; border-bottom: 1px solid #e3e3e3; }
thead th { border-bottom: 2px solid #444; background: #f6f6f6; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.paper td { color: #555; } tr.delta td { font-style: italic; }
.banner { background: #fff3cd; border: 1px solid #e0b400; padding: .8em 1em; font-weight: bold; }
.note { color: #444; font-size: .9em; } .legend { font-size: .85em; color: #444; }
dl.stack { display: grid; grid-template-columns: max-content auto; gap: .2em 1em; }
dl.stack dt { font-weight: bold; } dl.stack dd { margin: 0; font-family: monospace; }
figure { margin: 1em 0; } figure img { max-width: 100%; border: 1px solid #ddd; }
figcaption { font-size: .9em; color: #333; }
.scroll { overflow-x: auto; }
"""


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _note(text: str) -> str:
    """A Markdown-ish note: escaped, with `code` spans as <code>."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", _e(text))


def _head(columns: list[str], numeric: list[bool], groups: list[tuple[str, int]] | None = None, offset: int = 0) -> str:
    rows = []
    if groups:
        cells = [f'<th colspan="{offset}"></th>'] if offset else []
        cells += [f'<th colspan="{span}">{_e(title)}</th>' for title, span in groups]
        rows.append("<tr>" + "".join(cells) + "</tr>")
    rows.append("<tr>" + "".join(f'<th class="{"num" if n else "text"}">{_e(c)}</th>' for c, n in zip(columns, numeric))
                + "</tr>")
    return "<thead>" + "".join(rows) + "</thead>"


def wide_html(table: WideTable) -> str:
    """A paper-layout table: best values bold, marks as superscripts with their legend."""
    labels = list(table.labels.columns)
    names = list(labels)
    index = 0
    for title, span in (table.groups or [("", len(table.values.columns))]):
        names += [c[len(title) + 1:] if title else c for c in table.values.columns[index:index + span]]
        index += span
    numeric = [False] * len(labels) + [True] * len(table.values.columns)
    rows = table.cells(escape=_e, bold=lambda t: f"<b>{t}</b>", mark=lambda m: f"<sup>{_e(m)}</sup>")
    body = "".join(f'<tr class="{kind}">' + "".join(f'<td class="{"num" if n else "text"}">{c}</td>'
                                                       for c, n in zip(cells, numeric)) + "</tr>"
                   for cells, kind in zip(rows, table.kinds))
    legend = "".join(f'<div class="legend"><sup>{_e(m)}</sup> {_e(t)}</div>' for m, t in table.legend().items())
    return (f'<div class="scroll"><table class="wide" id="{_e(table.name)}">'
            f"{_head(names, numeric, table.groups, len(labels))}<tbody>{body}</tbody></table></div>{legend}")


def long_html(frame: pd.DataFrame, name: str, flags: dict[str, str] | None = None) -> str:
    """A long table with numbers right-aligned (two decimals, missing as an em dash, a flagged
    number with its row's status)."""
    numeric = [pd.api.types.is_numeric_dtype(frame[c]) and not pd.api.types.is_bool_dtype(frame[c])
               for c in frame.columns]
    shown = display_frame(frame, flags)
    body = "".join("<tr>" + "".join(f'<td class="{"num" if n else "text"}">{_e(v)}</td>' for v, n in zip(row, numeric))
                   + "</tr>" for row in shown.itertuples(index=False))
    return (f'<div class="scroll"><table class="long" id="{_e(name)}">{_head(list(frame.columns), numeric)}'
            f"<tbody>{body}</tbody></table></div>")


def _image(path: Path) -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return f'<img alt="" src="data:image/png;base64,{data}">'


def report_html(content: ReportContent) -> str:
    """The whole report as one HTML document."""
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             "<title>gcpbench report</title>", f"<style>{STYLE}</style></head><body>", "<h1>gcpbench report</h1>"]
    parts.append('<dl class="stack">' + "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in stack_lines(content.provenance))
                 + "</dl>")
    if content.banner:
        parts.append(f'<p class="banner" id="data-banner">⚠ {_e(content.banner)}</p>')
    if not content.runs.empty:
        runs = content.runs[SHOWN_RUN_COLUMNS]
        parts.append("<details><summary>Runs and the commands that made them</summary>"
                     f"{long_html(runs, 'runs')}</details>")
    if content.warnings:
        parts.append("<h2>Warnings (skipped, unreadable or stale files)</h2><ul>"
                     + "".join(f"<li>{_e(w)}</li>" for w in content.warnings) + "</ul>")
    if content.wide:
        parts.append("<h2>Paper layout</h2>")
        for table in content.wide:
            parts += [f"<h3>{_e(table.title)}</h3>", f'<p class="note">{_note(table.note)}</p>', wide_html(table)]
    for table in content.shown_tables():
        parts += [f"<h2>{_e(table.title)}</h2>"]
        if table.note:
            parts.append(f'<p class="note">{_note(table.note)}</p>')
        parts.append(long_html(table.frame, table.name, table.flags))
    figures = content.shown_figures()
    if figures:
        parts.append("<h2>Figures</h2>")
    for figure in figures:
        caption = _e(figure.title) + (f" — {_e(figure.note)}" if figure.note else "")
        parts.append(f"<figure>{_image(figure.path)}<figcaption>{caption}</figcaption></figure>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def write_html(content: ReportContent, out_dir: Path) -> Path:
    """Write ``report.html`` into ``out_dir`` (atomically); returns its path."""
    return atomic_write_text(Path(out_dir) / "report.html", report_html(content))
