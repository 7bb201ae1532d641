"""The paper-style tables: ours beside the paper's numbers, with differences where comparable.

Every function takes the tidy frames of :mod:`gcpbench.report.collect` and returns a DataFrame
with display column names and numeric values (NaN / <NA> where an entry is missing; the
renderer shows those as an em dash). A difference column is filled only for rows measured on
the paper's own data (full ImageNet, COCO); other rows keep their dataset label and an empty
difference. By default the paper's rows are shown for the architectures (or detection
framework x backbone) that have at least one run; ``all_paper=True`` shows every paper row.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from gcpbench.coco import COCO_METRICS
from gcpbench.report import paper
from gcpbench.report.collect import (
    Collection, curves_frame, detection_frame, robustness_frame, training_frame, variants_frame,
    cifar_frame,
)
from gcpbench.train.schedules import SCHEDULES

PAPER = "paper (ImageNet)"
PAPER_COCO = "paper (COCO)"
DELTA = "Δ"
ROBUSTNESS_METRICS = {"mCE": "mCE", "relative_mCE": "relative mCE", "mFP": "mFP", "mT5D": "mT5D"}
FRAMEWORKS = {"faster_rcnn": "Faster R-CNN", "mask_rcnn": "Mask R-CNN"}
METHODS = ("gap", "gcp_d", "gcp_m")


@dataclass
class Table:
    """One rendered table: file stem, title, values and a Markdown note shown under the title."""

    name: str
    title: str
    frame: pd.DataFrame
    note: str = ""
    flags: dict[str, str] = field(default_factory=dict)  # value column -> the status column that marks it

    def __post_init__(self) -> None:
        self.flags = {value: state for value, state in self.flags.items()
                      if value in self.frame.columns and state in self.frame.columns}


def _rank(values: pd.Series, order: tuple[str, ...] | list[str]) -> pd.Series:
    lookup = {v: i for i, v in enumerate(order)}
    return values.map(lambda v: lookup.get(v, len(order)))


def _arch_order() -> list[str]:
    return list(dict.fromkeys(paper.paper_imagenet()["arch"]))


def _difference(ours: pd.Series, reference: pd.Series, comparable: pd.Series,
                state: pd.Series | None = None) -> pd.Series:
    """ours - paper where comparable and (given ``state``, a status column) not flagged."""
    diff = ours.astype(float) - reference.astype(float)
    keep = comparable.eq(True)
    if state is not None:
        keep &= state.fillna("").eq("")
    return diff.where(keep)


STATUS = "status"
STATUS_NOTE = ("A number followed by [flags] is not a plain one: stale (its checkpoint file now holds another "
               "checkpoint; refresh it as the warning says), partial (a mean over some of the benchmark's "
               "corruptions / perturbations / severities), incomplete (files missing or unreadable), not ImageNet "
               "(ImageNet-C / -P numbers of data not made from ImageNet val, divided by AlexNet's ImageNet errors "
               "all the same: not comparable), implausible (clean error at chance or a negative relative CE). "
               f"Flagged rows get no {DELTA}.")


def _paper_rows(frame: pd.DataFrame, ours: pd.DataFrame, keys: list[str], all_paper: bool) -> pd.DataFrame:
    """The paper rows for the groups (``keys``) present in ``ours`` (all rows if ``all_paper``)."""
    if all_paper:
        return frame
    present = ours[keys].drop_duplicates()
    return frame.merge(present, on=keys, how="inner")


def _head_label(head: object) -> object:
    return head.upper() if isinstance(head, str) else head


def _in_paper_order(merged: pd.DataFrame) -> pd.DataFrame:
    """Rows ordered as the paper's tables: architecture, GAP before GCP, larger GCP dim first,
    LRnorm / LRfast / LRadju, then run name (rows without a value last)."""
    order = merged.assign(
        _a=_rank(merged["arch"], _arch_order()), _h=_rank(merged["head"], ["gap", "gcp"]),
        _d=-merged["gcp_dim"].fillna(0).astype(int), _s=_rank(merged["schedule"], SCHEDULES),
    ).sort_values(["_a", "arch", "_h", "_d", "_s", "run"], na_position="last", kind="stable")
    return order.drop(columns=["_a", "_h", "_d", "_s"])


def _model_columns(merged: pd.DataFrame) -> dict[str, pd.Series]:
    """The leading columns naming a model: architecture, head, GCP dim, schedule."""
    return {
        "architecture": merged["arch"].map(paper.display_name),
        "head": merged["head"].map(_head_label),
        "GCP dim": merged["gcp_dim"],
        "schedule": merged["schedule"],
    }


# ---------------------------------------------------------------- ImageNet

def imagenet_table(training: pd.DataFrame, all_paper: bool = False) -> pd.DataFrame:
    """Rows arch x head x GCP dim x schedule (one per run; paper-only rows keep our cells empty)."""
    keys = ["arch", "head", "gcp_dim", "schedule"]
    reference = paper.paper_imagenet().rename(columns={"top1": "paper_top1", "top5": "paper_top5"})
    reference = _paper_rows(reference, training, ["arch"], all_paper)
    merged = training.merge(reference[keys + ["paper_top1", "paper_top5"]], on=keys, how="outer")
    merged["comparable"] = merged["comparable"].eq(True)
    merged = _in_paper_order(merged)
    return pd.DataFrame({
        **_model_columns(merged),
        "dataset": merged["dataset"],
        "run": merged["run"],
        "epochs": merged["epochs"],
        "source": merged["source"],
        STATUS: merged["status"].fillna(""),
        "Top-1": merged["top1"],
        "Top-5": merged["top5"],
        f"{PAPER} Top-1": merged["paper_top1"],
        f"{PAPER} Top-5": merged["paper_top5"],
        f"{DELTA} Top-1": _difference(merged["top1"], merged["paper_top1"], merged["comparable"], merged["status"]),
        f"{DELTA} Top-5": _difference(merged["top5"], merged["paper_top5"], merged["comparable"], merged["status"]),
    }).reset_index(drop=True)


def matching_epoch(target: float, epochs: pd.Series | np.ndarray, top1: pd.Series | np.ndarray) -> int | None:
    """The first epoch whose top-1 reaches ``target`` (None when none does)."""
    epochs, top1 = np.asarray(epochs), np.asarray(top1, dtype=float)
    order = np.argsort(epochs, kind="stable")
    reached = np.flatnonzero(top1[order] >= target)
    return int(epochs[order][reached[0]]) if reached.size else None


def matching_epoch_table(curves: pd.DataFrame) -> pd.DataFrame:
    """Per arch and dataset: the first epoch at which GCP+LRadju reaches GAP+LRnorm's final top-1."""
    rows = []
    for (arch, dataset), group in curves.groupby(["arch", "dataset"], sort=False, dropna=False):
        gap = group[(group["head"] == "gap") & (group["schedule"] == "LRnorm")]
        gcp = group[(group["head"] == "gcp") & (group["schedule"] == "LRadju")]
        for gap_run, gap_curve in gap.groupby("run", sort=True):
            final = gap_curve.sort_values("epoch").iloc[-1]
            for gcp_run, gcp_curve in gcp.groupby("run", sort=True):
                found = matching_epoch(final["val_top1"], gcp_curve["epoch"], gcp_curve["val_top1"])
                rows.append({
                    "architecture": paper.display_name(arch),
                    "GCP dim": gcp_curve["gcp_dim"].iloc[0],
                    "dataset": dataset,
                    "GAP+LRnorm run": gap_run,
                    "GAP+LRnorm epochs": int(final["epoch"]),
                    "GAP+LRnorm final Top-1": float(final["val_top1"]),
                    "GCP+LRadju run": gcp_run,
                    "GCP+LRadju epochs": int(gcp_curve["epoch"].max()),
                    "matching epoch": found if found is not None else pd.NA,
                    f"{PAPER} matching epoch": paper.paper_matching_epoch(arch) or pd.NA,
                })
    columns = ["architecture", "GCP dim", "dataset", "GAP+LRnorm run", "GAP+LRnorm epochs",
               "GAP+LRnorm final Top-1", "GCP+LRadju run", "GCP+LRadju epochs", "matching epoch",
               f"{PAPER} matching epoch"]
    frame = pd.DataFrame(rows, columns=columns)
    for column in ("GCP dim", "matching epoch", f"{PAPER} matching epoch"):
        frame[column] = frame[column].astype("Int64")
    return frame


# ---------------------------------------------------------------- robustness

def robustness_table(robustness: pd.DataFrame, all_paper: bool = False) -> pd.DataFrame:
    """mCE, relative mCE, mFP, mT5D per model: ours, the paper's, and the difference."""
    reference = paper.paper_robustness()
    reference["gcp_dim"] = pd.array([256 if h == "gcp" else pd.NA for h in reference["head"]], dtype="Int64")
    reference = reference.rename(columns={m: f"paper_{m}" for m in ROBUSTNESS_METRICS})
    reference = _paper_rows(reference, robustness, ["arch"], all_paper)
    keys = ["arch", "head", "gcp_dim"]
    merged = robustness.drop(columns=["CE", "extra_CE"]).merge(
        reference[keys + [f"paper_{m}" for m in ROBUSTNESS_METRICS]], on=keys, how="outer")
    merged = _in_paper_order(merged)
    table = pd.DataFrame({
        **_model_columns(merged),
        "run": merged["run"],
        "dataset (C)": merged["dataset_c"],
        "dataset (P)": merged["dataset_p"],
        "status (C)": merged["status_c"].fillna(""),
        "status (P)": merged["status_p"].fillna(""),
    })
    for metric, label in ROBUSTNESS_METRICS.items():
        table[label] = merged[metric].astype(float)
    for metric, label in ROBUSTNESS_METRICS.items():
        table[f"{PAPER} {label}"] = merged[f"paper_{metric}"]
    for metric, label in ROBUSTNESS_METRICS.items():
        kind = "c" if metric in ("mCE", "relative_mCE") else "p"
        table[f"{DELTA} {label}"] = _difference(merged[metric], merged[f"paper_{metric}"], merged[f"comparable_{kind}"],
                                                merged[f"status_{kind}"])
    return table.reset_index(drop=True)


ROBUSTNESS_FLAGS = {label: "status (C)" if metric in ("mCE", "relative_mCE") else "status (P)"
                    for metric, label in ROBUSTNESS_METRICS.items()}


def model_labels(robustness: pd.DataFrame) -> list[str]:
    """Short unique column labels: 'ResNet-18 GCP (synthetic)', with the run when needed."""
    labels = []
    for _, row in robustness.iterrows():
        head = _head_label(row["head"]) or "?"
        if row["head"] == "gcp" and not pd.isna(row["gcp_dim"]) and row["gcp_dim"] != 256:
            head = f"{head}-{row['gcp_dim']}"
        state = row.get("status_c") or ""
        labels.append(f"{paper.display_name(row['arch'] or '?')} {head} ({row['dataset_c'] or '?'})"
                      + (f" [{state}]" if state else ""))
    return [f"{label} [{run}]" if labels.count(label) > 1 else label
            for label, run in zip(labels, robustness["run"])]


def corruption_table(robustness: pd.DataFrame) -> pd.DataFrame:
    """Corruption errors (CE, percent of AlexNet): corruptions as rows, models as columns.

    The 15 benchmark corruptions come first, then the held-out extra ones (marked), then mCE.
    """
    evaluated = robustness[robustness["CE"].map(bool).astype(bool)].reset_index(drop=True)
    if evaluated.empty:
        return pd.DataFrame(columns=["corruption"])
    labels = model_labels(evaluated)
    benchmark = list(dict.fromkeys(c for ce in evaluated["CE"] for c in ce))
    extra = list(dict.fromkeys(c for ce in evaluated["extra_CE"] for c in ce))
    data: dict[str, list[object]] = {"corruption": benchmark + [f"{c} (extra)" for c in extra] + ["mCE"]}
    for label, (_, row) in zip(labels, evaluated.iterrows()):
        data[label] = ([row["CE"].get(c, np.nan) for c in benchmark]
                       + [row["extra_CE"].get(c, np.nan) for c in extra] + [row["mCE"]])
    return pd.DataFrame(data)


def variants_table(variants: pd.DataFrame) -> pd.DataFrame:
    """Top-1 / top-5 (%) on ImageNetV2, -Sketch, -R, -A: one row per run and variant."""
    frame = variants.assign(head=variants["head"].map(_head_label),
                            data=np.where(variants["complete"], "complete", "subset of classes"))
    frame = frame.sort_values(["variant", "run"], kind="stable").reset_index(drop=True)
    return frame[["variant", "run", "arch", "head", "gcp_dim", "classes", "data", "status", "top1", "top5"]].rename(
        columns={"gcp_dim": "GCP dim", "classes": "class folders", "top1": "Top-1", "top5": "Top-5"})


def cifar_table(cifar: pd.DataFrame) -> pd.DataFrame:
    """CIFAR-10-C / -100-C mean error (%) and CIFAR-10-P mFP (%) / mT5D: one row per run and set."""
    frame = cifar.assign(head=cifar["head"].map(_head_label),
                         data=np.where(cifar["partial"], "partial", "complete"))
    frame = frame.sort_values(["benchmark", "run"], kind="stable").reset_index(drop=True)
    return frame[["benchmark", "run", "arch", "head", "gcp_dim", "data", "status", "mean_error", "mFP", "mT5D"]].rename(
        columns={"gcp_dim": "GCP dim", "mean_error": "mean error"})


# ---------------------------------------------------------------- detection

def detection_table(detection: pd.DataFrame, all_paper: bool = False) -> pd.DataFrame:
    """AP, AP50, AP75, APs, APm, APl per framework x backbone x method x task: ours and the paper's."""
    reference = paper.paper_detection()
    reference = _paper_rows(reference, detection, ["framework", "backbone"], all_paper)
    reference = reference.assign(run=pd.NA, source=PAPER_COCO, dataset="coco", comparable=False, status="")
    ours = detection.assign(source="ours")
    keys = ["framework", "backbone", "method", "task"]
    paper_ap = reference[keys + ["AP"]].rename(columns={"AP": "_paper_ap"})
    ours = ours.merge(paper_ap, on=keys, how="left")
    ours[f"{DELTA} AP"] = _difference(ours["AP"], ours["_paper_ap"], ours["comparable"], ours["status"])
    rows = pd.concat([ours.drop(columns=["_paper_ap"]), reference], ignore_index=True)
    rows = rows.assign(
        _f=_rank(rows["framework"], list(FRAMEWORKS)), _m=_rank(rows["method"], METHODS),
        _t=_rank(rows["task"], ["bbox", "segm"]), _s=_rank(rows["source"], ["ours", PAPER_COCO]),
    ).sort_values(["_f", "framework", "backbone", "_t", "_m", "_s", "run"], kind="stable", na_position="last")
    table = pd.DataFrame({
        "framework": rows["framework"].map(lambda f: FRAMEWORKS.get(f, f)),
        "backbone": rows["backbone"].map(paper.display_name),
        "method": rows["method"].map(lambda m: m.upper() if isinstance(m, str) else m),
        "task": rows["task"],
        "source": rows["source"],
        "dataset": rows["dataset"],
        "run": rows["run"],
        STATUS: rows["status"].fillna(""),
        **{m: rows[m].astype(float) for m in COCO_METRICS},
        f"{DELTA} AP": rows.get(f"{DELTA} AP", pd.Series(np.nan, index=rows.index)),
    })
    return table.reset_index(drop=True)


# ---------------------------------------------------------------- all tables

_NOT_IMAGENET = (f"The '{PAPER}' columns are the paper's numbers on full ImageNet; the difference "
                 f"columns ({DELTA}) are filled only for our rows measured on full ImageNet, and "
                 "rows on other data carry their dataset label.")


def build_tables(collection: Collection, all_paper: bool = False) -> tuple[list[Table], pd.DataFrame]:
    """Every table of the report, and the validation curves used by the plots."""
    curves = curves_frame(collection)
    training = training_frame(collection)
    robustness = robustness_frame(collection)
    tables = [
        Table("imagenet", "ImageNet classification (Top-1 / Top-5, %)", imagenet_table(training, all_paper),
              "Our numbers are the final epoch's validation metrics (source `metrics.jsonl epoch N`) or, "
              "when the run has one, `eval/imagenet.json`. " + _NOT_IMAGENET + " " + STATUS_NOTE,
              {"Top-1": STATUS, "Top-5": STATUS}),
        Table("matching_epoch", "Matching epoch: GCP+LRadju reaching GAP+LRnorm's final Top-1",
              matching_epoch_table(curves),
              "The first epoch at which the GCP model trained with LRadju reaches the final validation "
              "Top-1 of the GAP model trained with LRnorm (same architecture and data). An em dash in "
              "'matching epoch' means it never did within its epochs. The paper's epochs are on ImageNet "
              "with the full schedules."),
        Table("robustness", "Robustness: ImageNet-C (mCE, relative mCE) and ImageNet-P (mFP, mT5D), %",
              robustness_table(robustness, all_paper),
              "Lower is better; all values are percent of AlexNet. The paper's GAP ResNets are torchvision's "
              "pretrained models, its other models its own LRnorm models (GCP dim 256). "
              + _NOT_IMAGENET.replace("full ImageNet", "full ImageNet-C/-P") + " " + STATUS_NOTE, ROBUSTNESS_FLAGS),
        Table("corruption_ce", "ImageNet-C corruption error (CE, % of AlexNet) per corruption",
              corruption_table(robustness),
              "Columns are our evaluated models, labelled with their ImageNet-C data and [flags]. Extra "
              "corruptions are never part of mCE. " + STATUS_NOTE),
        Table("imagenet_variants", "ImageNet variants: ImageNetV2, -Sketch, -R, -A (Top-1 / Top-5, %)",
              variants_table(variants_frame(collection)),
              "From `eval/imagenet_<variant>.json` (`eval-imagenet --variant`). ImageNet-R and -A are scored on "
              "the logits of their 200 classes only, as their authors do; 'subset of classes' marks a tree "
              "with fewer class folders than the benchmark's manifest. " + STATUS_NOTE,
              {"Top-1": STATUS, "Top-5": STATUS}),
        Table("cifar", "CIFAR-10-C / CIFAR-100-C (mean error, %) and CIFAR-10-P (mFP %, mT5D), unnormalised",
              cifar_table(cifar_frame(collection)),
              "From `eval/<set>_summary.json` (`eval-cifar`). No published baseline normalises the CIFAR sets: "
              "mean top-1 error over the 15 corruptions and severities 1-5; raw flip probability and top-5 "
              "distance averaged over the 10 perturbations of the authors' CIFAR-P script. 'partial' marks a "
              "run on fewer of them. " + STATUS_NOTE, {"mean error": STATUS, "mFP": STATUS, "mT5D": STATUS}),
        Table("detection", "COCO detection and instance segmentation (AP, %)",
              detection_table(detection_frame(collection), all_paper),
              f"Rows with source '{PAPER_COCO}' are the paper's numbers on COCO val2017 (1x schedule); "
              f"{DELTA} AP is filled only for our rows on COCO. " + STATUS_NOTE,
              {m: STATUS for m in COCO_METRICS}),
    ]
    return tables, curves
