"""The fine-grained transfer table, laid out like the published one: a row per backbone and
representation, a Top-1 column per dataset (CUB-200-2011, FGVC-Aircraft, Stanford Cars), the
authors' rows (iSQRT-COV paper and their reproduction, fast-MPN-COV README) beside ours.

Our rows come from ``eval/fgvc.json`` of ``gcpbench finetune`` runs; the runs of one model
from one source checkpoint share a row (one cell per dataset). A difference to the paper (Δ)
is filled only for a GCP-256 (32k) row on the official splits of a dataset; runs on a
generated or partial tree keep their number, are marked under ``data``, and get no Δ.
ImageFolder runs are listed with their tree's name under ``other data``.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from gcpbench.data.fgvc import FGVC_DATASETS, TITLES
from gcpbench.records import FgvcResult, FinetuneConfig, UnreadableRecord
from gcpbench.report import paper
from gcpbench.report.collect import Collection
from gcpbench.report.tables import DELTA, Table
from gcpbench.runs import RunDir

PAPER_FGVC = "paper (iSQRT-COV)"
REPRODUCTION = "authors' reproduction"
# The published backbones and the architecture names of our runs that stand for them.
BACKBONES: dict[str, tuple[str, ...]] = {"VGG-D": ("vgg16", "vgg16_bn"), "ResNet-50": ("resnet50",),
                                         "ResNet-101": ("resnet101",)}
PAPER_DATASETS: dict[str, str] = {"CUB-200-2011": "cub", "FGVC-Aircraft": "aircraft", "Stanford Cars": "cars"}
PAPER_DIM = 256  # the published "32k" representation: 256 * 257 / 2 = 32,896 values


def backbone_of(arch: str | None) -> str | None:
    """The published backbone name of an architecture (``torchvision/resnet50`` -> ``ResNet-50``)."""
    base = str(arch or "").split("/")[-1]
    return next((name for name, archs in BACKBONES.items() if base in archs), None)


def fgvc_frame(collection: Collection) -> pd.DataFrame:
    """One row per ``eval/fgvc.json``: run, model, arch, head, gcp_dim, dataset, official, top1,
    views, epoch, source_sha256; a result that does not belong to its run is skipped with a warning."""
    rows = []
    for record in collection.runs:
        run = RunDir(record.path)
        try:
            result = run.read_result(FgvcResult)
        except UnreadableRecord as exc:
            collection.warnings.append(f"skipped file {run.eval / FgvcResult.FILE}: {exc}")
            continue
        if result is None:
            continue
        foreign = result.foreign_to(record.config)
        if foreign:
            collection.warnings.append(f"skipped file {run.eval / FgvcResult.FILE}: {foreign}")
            continue
        config = record.config
        folder = isinstance(config, FinetuneConfig) and config.data_root
        rows.append({"run": record.name, "model": result.model, "arch": config.arch, "head": config.head,
                     "gcp_dim": config.gcp_dim, "dataset": result.dataset,
                     "data_name": str(folder).rstrip("/").split("/")[-1] if folder else result.dataset,
                     "official": result.dataset in FGVC_DATASETS and not result.subset, "top1": float(result.top1),
                     "views": result.views, "epoch": result.epoch, "source_sha256": result.source_sha256})
    return pd.DataFrame(rows, columns=["run", "model", "arch", "head", "gcp_dim", "dataset", "data_name", "official",
                                       "top1", "views", "epoch", "source_sha256"])


def _paper_rows(backbones: list[str]) -> list[dict[str, object]]:
    table = paper.paper_fgvc()
    rows = []
    for backbone in backbones:
        part = table[table["backbone"] == backbone]
        for column, source in (("top1_paper", PAPER_FGVC), ("top1_authors_reproduction", REPRODUCTION)):
            values = {title: float(part.loc[part["dataset"] == title, column].iloc[0])
                      for title in PAPER_DATASETS if (part["dataset"] == title).any()}
            if any(not np.isnan(v) for v in values.values()):
                rows.append({"backbone": backbone, "head": "GCP", "GCP dim": PAPER_DIM, "source": source, "run": pd.NA,
                             **values})
    return rows


def _our_rows(frame: pd.DataFrame) -> list[dict[str, object]]:
    published = paper.paper_fgvc().set_index(["backbone", "dataset"])["top1_paper"]
    rows = []
    for (model, sha), group in frame.groupby(["model", "source_sha256"], sort=False, dropna=False):
        first = group.iloc[0]
        backbone = backbone_of(first["arch"])
        row: dict[str, object] = {"backbone": backbone or paper.display_name(str(first["arch"])), "head": str(first["head"]).upper(),
                                  "GCP dim": first["gcp_dim"], "source": "ours",
                                  "run": ", ".join(dict.fromkeys(group["run"]))}
        notes, other = [], []
        for title, key in PAPER_DATASETS.items():
            runs = group[group["dataset"] == key]
            if runs.empty:
                continue
            best = runs.iloc[-1]
            row[title] = best["top1"]
            if not best["official"]:
                notes.append(f"{key}: not the official splits")
            comparable = (best["official"] and first["head"] == "gcp" and first["gcp_dim"] == PAPER_DIM
                          and (backbone, title) in published.index)
            if comparable:
                row[f"{DELTA} {title}"] = best["top1"] - float(published[(backbone, title)])
        for item in group[group["dataset"] == "folder"].itertuples():
            other.append(f"{item.data_name}: {item.top1:.2f}")
        row["other data"] = "; ".join(other) or pd.NA
        row["data"] = "; ".join(notes) or ("official splits" if any(t in row for t in PAPER_DATASETS) else pd.NA)
        rows.append(row)
    return rows


def fgvc_table(frame: pd.DataFrame, all_paper: bool = False) -> pd.DataFrame:
    """The published layout: paper, authors' reproduction and our rows per backbone (see the module docstring)."""
    ours = _our_rows(frame)
    present = [b for b in BACKBONES if any(r["backbone"] == b for r in ours)]
    rows = _paper_rows(list(BACKBONES) if all_paper else present) + ours
    order = list(BACKBONES)
    rank = {PAPER_FGVC: 0, REPRODUCTION: 1, "ours": 2}
    rows.sort(key=lambda r: (order.index(r["backbone"]) if r["backbone"] in order else len(order), str(r["backbone"]),
                             0 if r["head"] == "GAP" else 1, rank[str(r["source"])]))
    columns = ["backbone", "head", "GCP dim", "source", "run", *PAPER_DATASETS,
               *(f"{DELTA} {t}" for t in PAPER_DATASETS), "other data", "data"]
    table = pd.DataFrame(rows, columns=columns)
    for column in [*PAPER_DATASETS, *(f"{DELTA} {t}" for t in PAPER_DATASETS)]:
        table[column] = table[column].astype(float)
    table["GCP dim"] = table["GCP dim"].astype("Int64")
    return table


NOTE = (f"Top-1 (%) on the test splits, each image scored on its centre crop and mirror (logits averaged), from "
        f"`eval/fgvc.json` of `gcpbench finetune` runs. '{PAPER_FGVC}' and '{REPRODUCTION}' are the fast-MPN-COV "
        f"README's numbers for 32k-dimensional iSQRT-COV (GCP dim 256); {DELTA} (ours - paper) is filled only for "
        "our GCP-256 rows on a dataset's official splits. Rows of one model fine-tuned from one checkpoint share a "
        f"row; {', '.join(TITLES[d] for d in FGVC_DATASETS)} as in the published table.")


def fgvc_report_table(collection: Collection, all_paper: bool = False) -> Table:
    """The report's ``fgvc`` table."""
    return Table("fgvc", "Fine-grained transfer: CUB-200-2011, FGVC-Aircraft, Stanford Cars (Top-1, %)",
                 fgvc_table(fgvc_frame(collection), all_paper), NOTE)
