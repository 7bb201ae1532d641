"""The report's header: who made it with what, which command made each run, and a data banner
when any of our numbers comes from the synthetic set or a subset."""
from __future__ import annotations

from typing import Any

import pandas as pd

from gcpbench.report.collect import Collection, detection_frame, robustness_frame, training_frame

NOT_RECORDED = "not recorded (written by an older gcpbench)"
RUN_COLUMNS = ("run", "command_line", "gcpbench_version", "git_commit", "git_dirty", "torch", "cuda", "cudnn",
               "device", "hardware", "created", "resumed_by")
SHOWN_RUN_COLUMNS = ["run", "command_line", "gcpbench_version", "git_commit", "device", "hardware", "created",
                     "resumed_by"]


def _run_provenance(record: Any) -> dict[str, Any] | None:
    """A run's provenance: its config's, else that of its first result that has one."""
    sources = [record.config, record.imagenet, record.c_summary, record.p_summary, *record.variants.values(),
               *record.npy.values(), *record.detection]
    for source in sources:
        facts = getattr(source, "provenance", None)
        if isinstance(facts, dict):
            return facts
    return None


def runs_frame(collection: Collection) -> pd.DataFrame:
    """One row per run: the command that made it and the stack it ran on (``RUN_COLUMNS``)."""
    rows = []
    for record in collection.runs:
        facts = _run_provenance(record) or {}
        row = {column: facts.get(column) for column in RUN_COLUMNS}
        row["run"] = record.name
        resumed = record.config.extra.get("resumed")
        row["resumed_by"] = "; ".join(str(r.get("command_line")) for r in resumed if isinstance(r, dict)) \
            if isinstance(resumed, list) else ""
        if isinstance(row["git_commit"], str):
            row["git_commit"] = row["git_commit"][:12] + ("+" if row["git_dirty"] else "")
        if not facts:
            command = getattr(record.config, "command", None)
            row["command_line"] = f"gcpbench {command} ... ({NOT_RECORDED})" if command else NOT_RECORDED
        rows.append(row)
    return pd.DataFrame(rows, columns=list(RUN_COLUMNS))


def _incomparable(frame: pd.DataFrame, dataset: str, comparable: str) -> list[tuple[str, str]]:
    chosen = frame[frame[dataset].notna() & ~frame[comparable].eq(True)]
    return list(zip(chosen["run"].astype(str), chosen[dataset].astype(str)))


def data_banner(collection: Collection) -> str | None:
    """The warning shown above every table when any of our numbers is measured on data other
    than the paper's (the synthetic set, a subset, another data set); None when all are."""
    found = _incomparable(training_frame(collection), "dataset", "comparable")
    robustness = robustness_frame(collection)
    found += _incomparable(robustness, "dataset_c", "comparable_c") + _incomparable(robustness, "dataset_p", "comparable_p")
    found += _incomparable(detection_frame(collection), "dataset", "comparable")
    if not found:
        return None
    datasets = ", ".join(dict.fromkeys(d for _, d in found))
    runs = ", ".join(dict.fromkeys(r for r, _ in found))
    return (f"Not comparable with the paper's numbers: some numbers come from {datasets} data, not the full "
            f"ImageNet / ImageNet-C / -P / COCO the paper used (runs: {runs}). Their difference (Δ) cells are "
            "left empty.")


def stack_lines(facts: dict[str, Any]) -> list[tuple[str, str]]:
    """(label, value) pairs of the report process's provenance for the header."""
    commit = facts.get("git_commit")
    git = (commit[:12] + (" (dirty: uncommitted changes)" if facts.get("git_dirty") else "")) if commit \
        else "not a git checkout"
    cuda = facts.get("cuda") or "none (CPU build)"
    return [("date", str(facts.get("created"))),
            ("gcpbench", f"{facts.get('gcpbench_version')}, commit {git}"),
            ("torch", f"{facts.get('torch')} (CUDA {cuda}, cuDNN {facts.get('cudnn') or 'none'}), "
                      f"torchvision {facts.get('torchvision')}"),
            ("hardware", f"{facts.get('hardware')} on {facts.get('host')} ({facts.get('platform')})"),
            ("command", str(facts.get("command_line")))]
