"""``gcpbench report``: every run's metrics in paper-style tables beside the paper's numbers.

- :mod:`~gcpbench.report.collect`: run directories -> tidy DataFrames (bad runs skipped, named)
- :mod:`~gcpbench.report.paper`: the paper's numbers (package data) and matching epochs
- :mod:`~gcpbench.report.tables`: the ImageNet, matching-epoch, robustness, CE and detection tables
- :mod:`~gcpbench.report.wide`: the paper's layouts (Table 1, robustness, detection), marks, bold
- :mod:`~gcpbench.report.plots`: convergence, CE bars, landscape and learning-rate figures
- :mod:`~gcpbench.report.provenance_header`: the provenance header, each run's command, the data banner
- :mod:`~gcpbench.report.render`: Markdown / CSV files and ``report.md``; :mod:`~gcpbench.report.latex`
  (LaTeX), :mod:`~gcpbench.report.html` (``report.html``), :mod:`~gcpbench.report.report_json`
  (``report.json``), column names for scripts in :mod:`~gcpbench.report.columns`
- the terminal summary is the command line's (:mod:`gcpbench.cli.report_summary`)
"""
from gcpbench.report.build import ReportResult, build_report

__all__ = ["ReportResult", "build_report"]
