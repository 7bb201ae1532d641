"""The paper's own layouts: wide tables with the paper's numbers and ours side by side.

* Table 1 (:func:`imagenet_wide`): architectures as rows, GAP / GCP per schedule as columns
  (Top-1 and Top-5), one row for the paper, one per data set we ran on, and a Δ row (ours -
  paper) where ours are measured on full ImageNet.
* The robustness table (:func:`robustness_wide`): methods (architecture x head) as rows, mCE,
  relative mCE, mFP, mT5D as columns; paper and ours per row group, Δ where comparable.
* Detection (:func:`detection_wide`): backbone x method as rows, AP ... APl (box, and mask for
  Mask R-CNN) as columns; one wide table per framework.

A :class:`WideTable` keeps the numbers apart from the row labels and the per-cell marks (a
stale / partial / unnormalised status from the long tables, several runs in one cell), so each
renderer (Markdown, LaTeX, HTML, JSON) shows the same marks and bolds the same best values.
The long tables (:mod:`gcpbench.report.tables`) stay the source of every number.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterable, Sequence

import numpy as np
import pandas as pd

from gcpbench.coco import COCO_METRICS
from gcpbench.report import paper
from gcpbench.report.tables import DELTA, FRAMEWORKS, METHODS, PAPER, PAPER_COCO, Table
from gcpbench.train.schedules import SCHEDULES

SOURCE = "source"
OURS = "ours"
# A long table's status: a text column ("stale", "partial", ...; "" or "ok" = plain) or flag columns (True = not plain).
STATUS_COLUMNS = ("status", "stale", "partial", "unnormalised")
METHOD_COLUMNS = ("gcp_norm",)  # a GCP variant column (normalisation method), grouped when present
MARKS = {"status": "†", "several": "‡"}
LEGEND = {"†": "not a plain number (its status is given in the long table's status column)",
          "‡": "several runs fill this cell: the one with the most epochs (else the last) is shown; all are in "
               "the long table's CSV"}


@dataclass
class WideTable:
    """A paper-layout table: text ``labels`` and numeric ``values`` (same rows), a ``marks``
    frame of the same shape as ``values`` ("" or footnote marks), the header groups over the
    value columns (``groups``: (title, span) in order), ``better`` per value column ("max",
    "min" or None) and a ``kind`` per row ("paper", "ours" or "delta"; Δ rows are never bold).

    Bold, as the paper does: with ``rivals`` (sets of columns, e.g. GAP and GCP Top-1 of one
    schedule), the best of each set within a row; otherwise the best of a column among the rows
    that share the label columns ``peers`` (e.g. one architecture's methods from one source)."""

    name: str
    title: str
    labels: pd.DataFrame
    values: pd.DataFrame
    marks: pd.DataFrame
    kinds: list[str]
    groups: list[tuple[str, int]] = field(default_factory=list)
    better: dict[str, str | None] = field(default_factory=dict)
    note: str = ""
    rivals: list[tuple[str, ...]] = field(default_factory=list)
    peers: tuple[str, ...] = (SOURCE,)

    @property
    def empty(self) -> bool:
        return self.values.empty

    def legend(self) -> dict[str, str]:
        """The footnote marks used in this table, with their meaning."""
        used = set("".join(self.marks.to_numpy(dtype=str).ravel())) if not self.marks.empty else set()
        return {mark: text for mark, text in LEGEND.items() if mark in used}

    @staticmethod
    def _winners(numbers: pd.Series, better: str | None) -> list:
        """Index labels of the best of ``numbers`` (none when fewer than two are present)."""
        numbers = numbers.astype(float)
        if better is None or numbers.notna().sum() < 2:
            return []
        target = numbers.max() if better == "max" else numbers.min()
        return list(numbers.index[numbers == target])

    def best(self) -> pd.DataFrame:
        """Booleans (shape of ``values``): where the bold values are (see the class docstring)."""
        best = pd.DataFrame(False, index=self.values.index, columns=self.values.columns)
        compared = [i for i in self.values.index if self.kinds[i] != "delta"]
        if self.rivals:
            for i in compared:
                for columns in self.rivals:
                    present = [c for c in columns if c in self.values]
                    if present:
                        for column in self._winners(self.values.loc[i, present], self.better.get(present[0])):
                            best.at[i, column] = True
            return best
        peers = [c for c in self.peers if c in self.labels]
        groups = list(self.labels.loc[compared].groupby(peers, sort=False, dropna=False).groups.values()) if peers \
            else [compared]
        for column, better in self.better.items():
            if column in self.values:
                for rows in groups:
                    for i in self._winners(self.values.loc[list(rows), column], better):
                        best.at[i, column] = True
        return best

    def cells(self, escape: Callable[[str], str] = str, bold: Callable[[str], str] = str,
              mark: Callable[[str], str] = str, missing: str = "—") -> list[list[str]]:
        """Every row as text: label cells escaped, numbers with two decimals (Δ rows signed),
        the best value of a column decorated by ``bold`` and footnote marks by ``mark``."""
        best = self.best()
        rows = []
        for i in range(len(self.values)):
            cells = [escape("" if pd.isna(v) else str(v)) for v in self.labels.iloc[i]]
            for column in self.values.columns:
                value = self.values.at[i, column]
                if pd.isna(value):
                    cells.append(missing)
                    continue
                text = f"{value:+.2f}" if self.kinds[i] == "delta" else f"{value:.2f}"
                text = bold(text) if best.at[i, column] else text
                cells.append(text + (mark(self.marks.at[i, column]) if self.marks.at[i, column] else ""))
            rows.append(cells)
        return rows

    def frame(self) -> pd.DataFrame:
        """Labels and values as one frame (for CSV / JSON)."""
        return pd.concat([self.labels, self.values], axis=1)


def _status_marks(long: pd.DataFrame, columns: Sequence[str] = STATUS_COLUMNS) -> pd.Series:
    """Per row of a long table: "†" where a status column says the number is not plain."""
    marks = pd.Series("", index=long.index)
    for column in columns:
        if column in long:
            status = long[column].astype(object)
            text = status.astype(str).str.lower()
            flagged = status.notna() & ~text.isin(["", "ok", "none", "nan", "<na>", "false", "0"])
            marks = marks.where(~flagged, MARKS["status"])
    return marks


def _method_label(long: pd.DataFrame) -> pd.Series:
    """The GCP variant of each row (e.g. a normalisation method), "" when none is given."""
    for column in METHOD_COLUMNS:
        if column in long:
            return long[column].astype(object).where(long[column].notna(), "").astype(str)
    return pd.Series("", index=long.index)


def _dim_label(dim: object) -> str:
    return "" if pd.isna(dim) else str(int(dim))


def _dim_rank(label: str) -> int:
    """Larger GCP dimensions first, as the paper lists them ("" last)."""
    return -int(label) if label.isdigit() else 0


def _arch_rank(name: str) -> int:
    order = [paper.display_name(a) for a in dict.fromkeys(paper.paper_imagenet()["arch"])]
    return order.index(name) if name in order else len(order)


def _build(name: str, title: str, rows: dict[tuple, dict[str, object]], marks: dict[tuple, dict[str, str]],
           label_names: Sequence[str], value_columns: Sequence[str], groups: list[tuple[str, int]],
           better: dict[str, str | None], note: str) -> WideTable:
    """A WideTable from row keys (label values..., kind) -> {column: value}, rows in key order."""
    keys = list(rows)
    labels = pd.DataFrame([dict(zip(label_names, key[:-1])) for key in keys], columns=list(label_names))
    values = pd.DataFrame([{c: rows[k].get(c, np.nan) for c in value_columns} for k in keys],
                          columns=list(value_columns), dtype=float)
    mark_frame = pd.DataFrame([{c: marks.get(k, {}).get(c, "") for c in value_columns} for k in keys],
                              columns=list(value_columns), dtype=object)
    return WideTable(name, title, labels, values, mark_frame, [k[-1] for k in keys], groups, better, note)


def _fill(rows: dict, marks: dict, key: tuple, column: str, value: object, mark: str, count: int) -> None:
    rows.setdefault(key, {})[column] = value
    text = mark + (MARKS["several"] if count > 1 else "")
    if text:
        marks.setdefault(key, {})[column] = text


def _chosen(group: pd.DataFrame) -> pd.Series:
    """One long-table row for a cell: the run with the most epochs (the first on ties; the last row
    when the table has no epochs)."""
    if "epochs" in group and group["epochs"].notna().any():
        return group.loc[group["epochs"].astype(float).fillna(-1).idxmax()]
    return group.iloc[-1]


def _ordered(rows: dict, sort_key) -> dict:
    """``rows`` with its keys sorted by ``sort_key`` (the table's row order)."""
    return {k: rows[k] for k in sorted(rows, key=sort_key)}


_KIND_ORDER = {"paper": 0, "ours": 1, "delta": 2}


# ---------------------------------------------------------------- Table 1

def imagenet_wide(long: pd.DataFrame) -> WideTable:
    """Table 1 from the long ImageNet table: (architecture, GCP variant) x source rows, GAP / GCP
    Top-1 / Top-5 per schedule as columns."""
    schedules = [s for s in SCHEDULES] + sorted({str(s) for s in long["schedule"].dropna() if s not in SCHEDULES})
    columns = [f"{s} {h} {m}" for s in schedules for h in ("GAP", "GCP") for m in ("Top-1", "Top-5")]
    rows: dict[tuple, dict[str, object]] = {}
    marks: dict[tuple, dict[str, str]] = {}
    frame = long.assign(_variant=[_dim_label(d) if h == "GCP" else _dim_label(256)
                                  for d, h in zip(long["GCP dim"], long["head"])],
                        _method=_method_label(long), _mark=_status_marks(long))
    for _, r in frame[frame["paper (ImageNet) Top-1"].notna() | frame["paper (ImageNet) Top-5"].notna()].iterrows():
        key = (r["architecture"], r["_variant"], r["_method"], PAPER, "paper")
        for metric in ("Top-1", "Top-5"):
            _fill(rows, marks, key, f"{r['schedule']} {r['head']} {metric}", r[f"{PAPER} {metric}"], "", 1)
    ours = frame[frame["run"].notna()]
    for (arch, variant, method, dataset, schedule, head), group in ours.groupby(
            ["architecture", "_variant", "_method", "dataset", "schedule", "head"], sort=False, dropna=False):
        chosen = _chosen(group)
        key = (arch, variant, method, f"{OURS} ({dataset})", "ours")
        for metric in ("Top-1", "Top-5"):
            _fill(rows, marks, key, f"{schedule} {head} {metric}", chosen[metric], chosen["_mark"], len(group))
            delta = chosen[f"{DELTA} {metric}"]
            if not pd.isna(delta):
                _fill(rows, marks, (arch, variant, method, f"{DELTA} ({dataset})", "delta"),
                      f"{schedule} {head} {metric}", delta, chosen["_mark"], len(group))
    rows = _ordered(rows, lambda k: (_arch_rank(k[0]), k[0], _dim_rank(k[1]), k[2], _KIND_ORDER[k[-1]], k[3]))
    used = [c for c in columns if any(not pd.isna(v.get(c, np.nan)) for v in rows.values())]
    labels = ("architecture", "GCP dim", "method", SOURCE)
    table = _build("table1_imagenet", "Table 1: ImageNet Top-1 / Top-5 (%) per schedule, GAP vs GCP",
                   rows, marks, labels, used, [], {c: "max" for c in used},
                   f"Rows '{PAPER}' are the paper's numbers; 'ours (DATA)' our final numbers on DATA; "
                   f"'{DELTA}' rows (ours - paper) only for our runs on full ImageNet. Bold: the better of GAP "
                   "and GCP in a row, per schedule.")
    table.groups = _spans([c.rsplit(" ", 1)[0] for c in used])
    table.rivals = [tuple(c for c in (f"{s} GAP {m}", f"{s} GCP {m}") if c in used)
                    for s in schedules for m in ("Top-1", "Top-5")]
    return _drop_empty_labels(table)


def _spans(prefixes: Iterable[str]) -> list[tuple[str, int]]:
    """Consecutive equal prefixes -> (prefix, count)."""
    spans: list[tuple[str, int]] = []
    for prefix in prefixes:
        if spans and spans[-1][0] == prefix:
            spans[-1] = (prefix, spans[-1][1] + 1)
        else:
            spans.append((prefix, 1))
    return spans


def _drop_empty_labels(table: WideTable) -> WideTable:
    """Leave out label columns that are empty in every row (no GCP variant, no method)."""
    keep = [c for c in table.labels.columns if c == SOURCE or c == table.labels.columns[0]
            or table.labels[c].astype(str).str.len().gt(0).any()]
    table.labels = table.labels[keep]
    return table


# ---------------------------------------------------------------- robustness

ROBUSTNESS_COLUMNS = ("mCE", "relative mCE", "mFP", "mT5D")


def robustness_wide(long: pd.DataFrame) -> WideTable:
    """Methods (architecture x head) as rows; mCE, relative mCE, mFP, mT5D as columns."""
    frame = long.assign(_variant=[_dim_label(d) if h == "GCP" else "" for d, h in zip(long["GCP dim"], long["head"])],
                        _method=_method_label(long),
                        _mark_c=_status_marks(long, ("status (C)", *STATUS_COLUMNS)),  # ImageNet-C's flags
                        _mark_p=_status_marks(long, ("status (P)", *STATUS_COLUMNS)))  # ImageNet-P's
    rows: dict[tuple, dict[str, object]] = {}
    marks: dict[tuple, dict[str, str]] = {}
    for _, r in frame[frame[f"{PAPER} mCE"].notna()].iterrows():
        key = (r["architecture"], r["head"], r["_variant"], r["_method"], PAPER, "paper")
        for metric in ROBUSTNESS_COLUMNS:
            _fill(rows, marks, key, metric, r[f"{PAPER} {metric}"], "", 1)
    ours = frame[frame["run"].notna()]
    ours = ours.assign(_data=[" / ".join(dict.fromkeys(str(d) for d in pair if not pd.isna(d)))
                              for pair in zip(ours["dataset (C)"], ours["dataset (P)"])])
    for (arch, head, variant, method, data), group in ours.groupby(
            ["architecture", "head", "_variant", "_method", "_data"], sort=False, dropna=False):
        for metric in ROBUSTNESS_COLUMNS:
            measured = group[group[metric].notna()]
            if measured.empty:
                continue
            chosen = _chosen(measured)
            mark = chosen["_mark_c" if metric in ("mCE", "relative mCE") else "_mark_p"]
            _fill(rows, marks, (arch, head, variant, method, f"{OURS} ({data})", "ours"), metric, chosen[metric],
                  mark, len(measured))
            if not pd.isna(chosen[f"{DELTA} {metric}"]):
                _fill(rows, marks, (arch, head, variant, method, f"{DELTA} ({data})", "delta"), metric,
                      chosen[f"{DELTA} {metric}"], mark, len(measured))
    rows = _ordered(rows, lambda k: (_arch_rank(k[0]), k[0], k[1], _dim_rank(k[2]), k[3], _KIND_ORDER[k[-1]], k[4]))
    table = _build("table_robustness", "Robustness: ImageNet-C mCE, relative mCE and ImageNet-P mFP, mT5D "
                   "(% of AlexNet, lower is better)", rows, marks,
                   ("architecture", "head", "GCP dim", "method", SOURCE), list(ROBUSTNESS_COLUMNS), [],
                   {c: "min" for c in ROBUSTNESS_COLUMNS},
                   f"'{PAPER}' rows are the paper's; {DELTA} rows only for our models on full ImageNet-C/-P. "
                   "Bold: the lowest value of a column among one architecture's methods from one source.")
    table.peers = ("architecture", SOURCE)
    return _drop_empty_labels(table)


# ---------------------------------------------------------------- detection

def detection_wide(long: pd.DataFrame) -> list[WideTable]:
    """Per framework: backbone x method as rows, box (and mask) AP ... APl as columns."""
    tables = []
    for framework in [f for f in dict.fromkeys(long["framework"]) if not pd.isna(f)]:
        chosen = long[long["framework"] == framework]
        tasks = [t for t in ("bbox", "segm") if (chosen["task"] == t).any()]
        columns = [f"{t} {m}" for t in tasks for m in COCO_METRICS]
        rows: dict[tuple, dict[str, object]] = {}
        marks: dict[tuple, dict[str, str]] = {}
        frame = chosen.assign(_mark=_status_marks(chosen))
        for (backbone, method, source, dataset, task), group in frame.groupby(
                ["backbone", "method", "source", "dataset", "task"], sort=False, dropna=False):
            r = group.iloc[-1]
            kind = "paper" if source == PAPER_COCO else "ours"
            label = PAPER_COCO if kind == "paper" else f"{OURS} ({dataset})"
            for metric in COCO_METRICS:
                _fill(rows, marks, (backbone, method, label, kind), f"{task} {metric}", r[metric],
                      r["_mark"], len(group))
            if kind == "ours" and task == "bbox" and not pd.isna(r.get(f"{DELTA} AP", np.nan)):
                _fill(rows, marks, (backbone, method, f"{DELTA} ({dataset})", "delta"), "bbox AP",
                      r[f"{DELTA} AP"], r["_mark"], len(group))
        method_order = [m.upper() for m in METHODS]
        rows = _ordered(rows, lambda k: (_arch_rank(k[0]), k[0], method_order.index(k[1])
                                         if k[1] in method_order else 99, _KIND_ORDER[k[-1]], k[2]))
        key = next((k for k, v in FRAMEWORKS.items() if v == framework), str(framework))
        table = _build(f"table_detection_{key}", f"{framework} on COCO val2017 (AP, %)", rows, marks,
                       ("backbone", "method", SOURCE), columns, [], {c: "max" for c in columns},
                       f"'{PAPER_COCO}' rows are the paper's (1x schedule); {DELTA} (box AP only) for our runs on "
                       "COCO. Bold: the best value of a column among one backbone's methods from one source.")
        table.peers = ("backbone", SOURCE)
        table.groups = _spans([{"bbox": "box", "segm": "mask"}[c.split(" ")[0]] for c in columns]) \
            if len(tasks) > 1 else []
        tables.append(table)
    return tables


def wide_tables(tables: Sequence[Table]) -> list[WideTable]:
    """The paper-layout tables of the long ``tables`` that have entries (empty ones left out)."""
    by_name = {t.name: t.frame for t in tables}
    wide: list[WideTable] = []
    if "imagenet" in by_name and not by_name["imagenet"].empty:
        wide.append(imagenet_wide(by_name["imagenet"]))
    if "robustness" in by_name and not by_name["robustness"].empty:
        wide.append(robustness_wide(by_name["robustness"]))
    if "detection" in by_name and not by_name["detection"].empty:
        wide += detection_wide(by_name["detection"])
    return [w for w in wide if not w.empty]
