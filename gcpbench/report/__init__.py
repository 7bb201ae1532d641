"""``gcpbench report``: every run's metrics in paper-style tables beside the paper's numbers.

- :mod:`~gcpbench.report.collect`: run directories -> tidy DataFrames (bad runs skipped, named)
- :mod:`~gcpbench.report.paper`: the paper's numbers (package data) and matching epochs
- :mod:`~gcpbench.report.tables`: the ImageNet, matching-epoch, robustness, CE and detection tables
- :mod:`~gcpbench.report.plots`: convergence, CE bars, landscape and learning-rate figures
- :mod:`~gcpbench.report.render`: Markdown / CSV / LaTeX files and ``report.md``
- the terminal summary is the command line's (:mod:`gcpbench.cli.report_summary`)
"""
from gcpbench.report.build import ReportResult, build_report

__all__ = ["ReportResult", "build_report"]
