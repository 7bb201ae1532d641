"""The terminal summary of a report: our rows of each table beside the paper's, as rich tables."""
from __future__ import annotations

import pandas as pd
from rich.console import Console
from rich.markup import escape
from rich.table import Table as RichTable

from gcpbench.report.build import ReportResult
from gcpbench.report.render import display_frame
from gcpbench.report.tables import DELTA, PAPER

# Per table: the columns worth a terminal line (the files hold them all).
_COLUMNS: dict[str, list[str]] = {
    "imagenet": ["architecture", "head", "GCP dim", "schedule", "dataset", "epochs", "Top-1", "Top-5",
                 f"{PAPER} Top-1", f"{DELTA} Top-1"],
    "matching_epoch": ["architecture", "GCP dim", "dataset", "GAP+LRnorm final Top-1", "GCP+LRadju epochs",
                       "matching epoch", f"{PAPER} matching epoch"],
    "robustness": ["architecture", "head", "dataset (C)", "mCE", f"{PAPER} mCE", "relative mCE",
                   "dataset (P)", "mFP", f"{PAPER} mFP", "mT5D"],
    "detection": ["framework", "backbone", "method", "task", "source", "dataset", "AP", "AP50", "AP75", f"{DELTA} AP"],
    "fgvc": ["backbone", "head", "GCP dim", "source", "CUB-200-2011", "FGVC-Aircraft", "Stanford Cars",
             f"{DELTA} CUB-200-2011", f"{DELTA} FGVC-Aircraft", f"{DELTA} Stanford Cars", "other data", "data"],
}


def _ours(name: str, frame: pd.DataFrame) -> pd.DataFrame:
    """Rows with our results (for detection also the paper's row of the same method and task)."""
    if name == "fgvc" and frame["run"].notna().any():  # the paper's rows are only those of our backbones
        return frame
    if name == "detection":
        keys = ["framework", "backbone", "method", "task"]
        ours = frame.loc[frame["source"] == "ours", keys].drop_duplicates()
        return frame.merge(ours, on=keys, how="inner")
    return frame[frame["run"].notna()] if "run" in frame.columns else frame


def print_summary(result: ReportResult, console: Console) -> None:
    """Print each table's own rows (short columns) and the skipped figures (the skipped runs and
    files are warnings on stderr)."""
    console.print(f"[bold]gcpbench report[/]: {len(result.runs)} run(s)"
                  + (f", {len(result.warnings)} warning(s) on stderr" if result.warnings else ""))
    for table in result.tables:
        columns = _COLUMNS.get(table.name)
        frame = _ours(table.name, table.frame)
        if columns is None or frame.empty:
            continue
        shown = display_frame(frame, table.flags)[[c for c in columns if c in frame.columns]]
        rich_table = RichTable(title=table.title, title_justify="left")
        for column in shown.columns:
            rich_table.add_column(column, overflow="fold")
        for row in shown.itertuples(index=False):
            rich_table.add_row(*(escape(cell) for cell in row))  # "74.09 [stale]" is text, not markup
        console.print(rich_table)
    for figure in result.figures:
        if figure.path is None:
            console.print(f"[dim]figure skipped: {figure.title}: {figure.note}[/]", highlight=False)
