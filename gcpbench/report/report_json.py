"""``report.json``: the whole report in one machine-readable file.

Keys: ``schema`` (``gcpbench-report/1``), ``provenance`` (the report process's, see
:mod:`gcpbench.provenance`), ``data_banner`` (text or null), ``runs`` (one object per run: the
command that made it and its stack), ``warnings``, ``tables`` (name -> {title, note, columns,
rows}: the long tables with the CSV's column names, missing values null), ``paper_layout``
(name -> {title, note, columns, rows, marks, kinds, best}: the wide tables, columns by their
display names), ``figures`` (title, file relative to the report folder or null, note).
"""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import pandas as pd

from gcpbench.io import atomic_write_json
from gcpbench.report.columns import csv_header
from gcpbench.report.content import ReportContent

SCHEMA = "gcpbench-report/1"


def _plain(value: Any) -> Any:
    """A JSON value: NaN / <NA> -> null, numpy scalars -> Python numbers."""
    if value is None or value is pd.NA:
        return None
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _records(frame: pd.DataFrame, columns: list[str]) -> list[dict[str, Any]]:
    return [{c: _plain(v) for c, v in zip(columns, row)} for row in frame.itertuples(index=False)]


def report_json(content: ReportContent, out_dir: Path) -> dict[str, Any]:
    """The JSON object of ``report.json``."""
    tables = {}
    for table in content.tables:
        columns = csv_header(table.frame.columns, table.percent)
        tables[table.name] = {"title": table.title, "note": table.note, "columns": columns,
                              "rows": _records(table.frame, columns)}
    wide = {}
    for table in content.wide:
        frame = table.frame()
        wide[table.name] = {"title": table.title, "note": table.note, "columns": list(frame.columns),
                            "rows": _records(frame, list(frame.columns)), "kinds": table.kinds,
                            "marks": table.marks.to_dict(orient="records"), "legend": table.legend(),
                            "best": table.best().to_dict(orient="records")}
    figures = [{"title": f.title, "note": f.note or None,
                "file": Path(os.path.relpath(f.path, out_dir)).as_posix() if f.path is not None else None}
               for f in content.figures]
    return {"schema": SCHEMA, "provenance": _plain(content.provenance), "data_banner": content.banner,
            "runs": _records(content.runs, list(content.runs.columns)), "warnings": list(content.warnings),
            "tables": tables, "paper_layout": wide, "figures": figures}


def write_report_json(content: ReportContent, out_dir: Path) -> Path:
    """Write ``report.json`` into ``out_dir`` (atomically); returns its path."""
    return atomic_write_json(Path(out_dir) / "report.json", report_json(content, Path(out_dir)))
