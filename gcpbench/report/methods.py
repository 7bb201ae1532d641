"""The GCP family compared: one row per method (GAP and each normalisation) with accuracy and
convergence, ImageNet-C / -P, detection and the landscape probe, the published DropCov /
extension-paper numbers beside ours, and one figure with one landscape band per method.

Runs are grouped by architecture, GCP dimension, schedule and dataset; a method's number comes
from its runs in that group (several runs of one method: the last in run-name order, named in
the ``run`` column). The matching epoch is the first epoch at which a method's validation top-1
reaches the final top-1 of the group's GAP run (the paper's convergence measure, here across
normalisations and under each schedule). Landscape columns are the means over the recorded
steps of the loss band (max - min over the step sizes), of the gradient-predictiveness band and
of the effective beta-smoothness.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from gcpbench.errors import GcpbenchError
from gcpbench.report import paper
from gcpbench.report.collect import Collection, RunRecord, dataset_label, is_imagenet, model_id
from gcpbench.report.plots import Figure
from gcpbench.report.tables import Table, matching_epoch

GAP = "GAP"


def method_of(record: RunRecord) -> str | None:
    """``GAP`` or the GCP normalisation of a run (its config's, else its model name's)."""
    config = record.config
    norm = getattr(config, "gcp_norm", None)
    if norm:
        return str(norm)
    ident = model_id(config)
    if ident.head == "gap":
        return GAP
    if ident.head != "gcp":
        return None
    from gcpbench.models.registry import model_identity

    try:
        return model_identity(str(config.model)).head.norm
    except GcpbenchError:
        return "isqrt" if getattr(config, "command", None) == "detect" else None


def keep_methods(collection: Collection, norms: list[str] | None) -> Collection:
    """Only GAP runs and runs of the GCP normalisations ``norms`` (all runs when None)."""
    if not norms:
        return collection
    from gcpbench.pooling.registry import method

    wanted = {method(n).name for n in norms} | {GAP}
    return Collection([r for r in collection.runs if method_of(r) in wanted], collection.warnings)


def method_order() -> list[str]:
    from gcpbench.pooling.registry import NORMS

    return [GAP, *NORMS]


def _landscape_means(record: RunRecord) -> dict[str, float]:
    if not record.has_landscape:
        return {}
    from gcpbench.landscape.recorder import read_landscape

    frame = read_landscape(record.path / "landscape.csv")
    return {"loss band": float((frame["loss_max"] - frame["loss_min"]).mean()),
            "gradient band": float((frame["grad_diff_max"] - frame["grad_diff_min"]).mean()),
            "beta-smoothness": float(frame["beta_smoothness"].mean())}


def methods_frame(collection: Collection) -> pd.DataFrame:
    """One row per run with a known method: its group keys and every number the comparison shows."""
    rows: list[dict[str, Any]] = []
    for record in collection.runs:
        method = method_of(record)
        if method is None or getattr(record.config, "command", None) == "detect":
            continue
        ident = model_id(record.config)
        config = record.config
        row: dict[str, Any] = {
            "run": record.name, "arch": ident.arch, "GCP dim": ident.gcp_dim, "method": method,
            "schedule": getattr(config, "schedule", None), "dataset": dataset_label(config.dataset,
                                                                                     bool(getattr(config, "subset", False))),
            "comparable": is_imagenet(config.dataset, bool(getattr(config, "subset", False))),
            "options": ", ".join(f"{k}={v}" for k, v in sorted((getattr(config, "gcp_options", None) or {}).items())),
        }
        if record.metrics is not None and len(record.metrics):
            curve = record.metrics.sort_values("epoch")
            row.update({"epochs": int(curve["epoch"].iloc[-1]), "Top-1": float(curve["val_top1"].iloc[-1]),
                        "best Top-1": float(curve["val_top1"].max()), "_curve": curve})
        if record.c_summary is not None:
            row.update({"mCE": record.c_summary.mCE_pct, "relative mCE": record.c_summary.relative_mCE_pct})
        if record.p_summary is not None:
            row.update({"mFP": record.p_summary.mFP_pct, "mT5D": record.p_summary.mT5D_pct})
        row.update(_landscape_means(record))
        rows.append(row)
    return pd.DataFrame(rows)


NUMBERS = ("epochs", "Top-1", "best Top-1", "matching epoch", "mCE", "relative mCE", "mFP", "mT5D", "loss band",
           "gradient band", "beta-smoothness")


def methods_table(collection: Collection) -> pd.DataFrame:
    """Per architecture x GCP dim x schedule x dataset: one row per method (GAP first)."""
    frame = methods_frame(collection)
    columns = ["architecture", "schedule", "dataset", "method", "GCP dim", "options", "run", *NUMBERS]
    if frame.empty:
        return pd.DataFrame(columns=columns)
    for column in NUMBERS:
        if column not in frame:
            frame[column] = pd.NA
    if "_curve" not in frame:
        frame["_curve"] = None
    frame = frame.sort_values("run")
    order = {m: i for i, m in enumerate(method_order())}
    out = []
    for (arch, schedule, dataset), group in frame.groupby(["arch", "schedule", "dataset"], sort=True, dropna=False):
        gap = group[group["method"] == GAP]
        target = gap["Top-1"].dropna().iloc[-1] if gap["Top-1"].notna().any() else None
        dims = group["GCP dim"].dropna()
        for method, rows in sorted(group.groupby("method"), key=lambda item: order.get(item[0], len(order))):
            row = rows.iloc[-1]
            curve = row["_curve"]
            found = matching_epoch(target, curve["epoch"], curve["val_top1"]) \
                if target is not None and isinstance(curve, pd.DataFrame) else None
            out.append({"architecture": paper.display_name(str(arch)), "schedule": schedule, "dataset": dataset,
                        "method": method, "GCP dim": row["GCP dim"] if method != GAP else (dims.iloc[0] if len(dims) else pd.NA),
                        "options": row["options"], "run": row["run"],
                        **{c: row[c] for c in NUMBERS if c != "matching epoch"},
                        "matching epoch": found if found is not None else pd.NA})
    table = pd.DataFrame(out, columns=columns)
    for column in ("GCP dim", "epochs", "matching epoch"):
        table[column] = pd.to_numeric(table[column], errors="coerce").astype("Int64")
    return table


def detection_by_method(collection: Collection) -> pd.DataFrame:
    """Detection AP (box; mask for Mask R-CNN) per framework, backbone mode and method."""
    rows = []
    for record in collection.runs:
        for result in record.detection:
            config = record.config
            rows.append({"framework": result.framework, "backbone": result.backbone, "mode": result.method,
                         "method": method_of(record) if result.method != "gap" else GAP,
                         "dataset": dataset_label(config.dataset), "run": record.name,
                         "box AP": result.bbox.get("AP"), "mask AP": (result.segm or {}).get("AP")})
    return pd.DataFrame(rows, columns=["framework", "backbone", "mode", "method", "dataset", "run", "box AP", "mask AP"])


def published_table(methods: pd.DataFrame) -> pd.DataFrame:
    """The published DropCov / extension-paper ImageNet top-1 (``paper_dropcov.csv``) beside our
    runs of the same architecture and method (ours: full ImageNet only is comparable)."""
    published = paper.paper_dropcov()
    names = {"GAP": GAP, "DropCov": "dropcov", "iSQRT-COV (Fast-MPN)": "isqrt"}
    rows = []
    for item in published.itertuples():
        method = names.get(str(item.method))
        arch = str(item.model).replace("-", "").lower()
        ours = methods[(methods["architecture"] == paper.display_name(arch)) & (methods["method"] == method)] \
            if method is not None and not methods.empty else methods.iloc[0:0]
        best = ours.iloc[-1] if len(ours) else None
        rows.append({"model": item.model, "method": item.method, "framework": item.framework,
                     "published Top-1": float(item.top1), "source": item.source,
                     "our run": best["run"] if best is not None else pd.NA,
                     "our dataset": best["dataset"] if best is not None else pd.NA,
                     "our Top-1": best["Top-1"] if best is not None else pd.NA})
    return pd.DataFrame(rows)


def method_tables(collection: Collection) -> list[Table]:
    """The comparison tables of the report (methods, detection by method, published numbers)."""
    methods = methods_table(collection)
    return [
        Table("methods", "The GCP family compared: accuracy, convergence, robustness, landscape", methods,
              "One row per method within each architecture / schedule / dataset group. *matching epoch*: the "
              "first epoch whose top-1 reaches the group's GAP final top-1. Landscape: means over the recorded "
              "steps (loss band and gradient band: max - min over the step sizes). Methods: isqrt = iSQRT-COV, "
              "mpn = MPN-COV, log = O2P, mpa = MPA-Lya, bcnn = B-CNN, cbp = compact bilinear (Tensor Sketch), "
              "none = plain covariance, dropcov = DropCov."),
        Table("methods_detection", "Detection by GCP normalisation of the backbone's pre-training",
              detection_by_method(collection), "COCO AP (%) of each detection run; mode gap / gcp_d / gcp_m."),
        Table("methods_published", "Published ImageNet top-1 (DropCov, NeurIPS 2022; TPAMI 2023 extension) beside ours",
              published_table(methods), "Ours are comparable only when trained on full ImageNet (dataset column)."),
    ]


def methods_landscape_figure(collection: Collection, out: Path) -> Figure:
    """One landscape band per method (each method one colour), all runs that recorded the probe."""
    title = "Optimisation landscape by GCP normalisation: one band per method"
    runs = [(method_of(r), r) for r in collection.runs if r.has_landscape and method_of(r) is not None]
    if not runs:
        return Figure(title, None, "no run has a landscape.csv (train with --landscape-every K)")
    from gcpbench.landscape.plot import plot_landscape

    order = {m: i for i, m in enumerate(method_order())}
    runs.sort(key=lambda item: (order.get(item[0], len(order)), item[1].name))
    palette = ["tab:blue", "tab:red", "tab:orange", "tab:green", "tab:purple", "tab:brown", "tab:pink", "tab:olive",
               "tab:cyan", "tab:gray"]
    colours = {m: palette[i % len(palette)] for i, m in enumerate(dict.fromkeys(m for m, _ in runs))}
    schedules = {getattr(r.config, "schedule", None) for _, r in runs}
    labels = [m + (f" {r.config.schedule}" if len(schedules) > 1 else "") for m, r in runs]
    path = plot_landscape([r.path for _, r in runs], out, labels=labels, colours=[colours[m] for m, _ in runs])
    return Figure(title, path)
