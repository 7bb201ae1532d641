"""Everything one report shows, gathered once and handed to each writer (Markdown, HTML, JSON)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from gcpbench.report.plots import Figure
from gcpbench.report.tables import Table
from gcpbench.report.wide import WideTable


@dataclass
class ReportContent:
    """The tables (long and paper-layout), figures, run list, warnings and provenance of a report."""

    tables: list[Table]
    wide: list[WideTable]
    figures: list[Figure]
    sources: list[str]
    warnings: list[str]
    provenance: dict[str, Any]
    runs: pd.DataFrame  # one row per run: the command that made it, its stack (provenance_header.RUN_COLUMNS)
    banner: str | None = None
    run_plots: list[Path] = field(default_factory=list)

    def shown_tables(self) -> list[Table]:
        """The long tables that have entries (sections with no entries are left out)."""
        return [t for t in self.tables if not t.frame.empty]

    def shown_figures(self) -> list[Figure]:
        """The figures that were drawn."""
        return [f for f in self.figures if f.path is not None]
