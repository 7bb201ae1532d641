"""Rich tables of ImageNet-C / -P summaries."""
from __future__ import annotations

from rich.markup import escape
from rich.table import Table


def _fmt(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _title(name: str, summary: dict) -> str:
    subset = f", subset {summary['subset_per_class']}/class" if summary.get("subset") else ""
    partial = ", partial" if summary.get("partial") else ""
    model = summary.get("model") or "scored errors"
    return f"{name}: {model} ({summary.get('dataset', '-')}{subset}{partial})"


def marks(summary: dict) -> str:
    """The flags of a -C / -P summary's means (as the report marks them): partial, incomplete,
    not ImageNet, implausible; ``""`` for a plain result."""
    found = ["partial"] if summary.get("partial") else []
    if summary.get("missing_images") or summary.get("unreadable_count"):
        found.append("incomplete")
    if summary.get("source_kind") not in (None, "imagenet-val"):
        found.append("not ImageNet")
    if summary.get("sanity"):
        found.append("implausible")
    return ", ".join(found)


def _mean_label(label: str, summary: dict) -> str:
    state = marks(summary)
    return escape(f"{label} [{state}]") if state else label


def _notes(summary: dict) -> list[str]:
    notes = []
    if summary.get("partial"):
        notes.append("partial: the means are over the chosen corruptions / perturbations / severities only")
    if summary.get("missing_images"):
        notes.append(f"incomplete: the tree lacks {summary['missing_images']} file(s)")
    if summary.get("source_kind") not in (None, "imagenet-val"):
        notes.append(f"not ImageNet ({summary['source_kind']} data): {summary.get('normalisation', '')}")
    return notes


def c_table(summary: dict) -> Table:
    """Error (%) per severity, CE and relative CE per corruption, then mCE / relative mCE."""
    severities = summary.get("severities", [1, 2, 3, 4, 5])
    table = Table(title=_title("ImageNet-C", summary))
    table.add_column("corruption", no_wrap=True)
    for s in severities:
        table.add_column(f"s{s}", justify="right")
    table.add_column("CE", justify="right")
    table.add_column("rel CE", justify="right")
    errors = summary.get("errors", {})
    rel = summary.get("relative_CE") or {}
    extra_rel = summary.get("extra_relative_CE") or {}
    rows = [(c, v, rel.get(c)) for c, v in summary["CE"].items()]
    rows += [(f"{c}*", v, extra_rel.get(c)) for c, v in summary.get("extra_CE", {}).items()]
    for label, ce, rce in rows:
        per = errors.get(label.rstrip("*"), {})
        table.add_row(label, *[_fmt(100 * per[str(s)]) if str(s) in per else "-" for s in severities],
                      _fmt(ce), _fmt(rce))
    table.add_section()
    table.add_row(_mean_label("mCE, relative mCE", summary), *[""] * len(severities), _fmt(summary["mCE"]), _fmt(summary["relative_mCE"]),
                  style="bold")
    caption = ["s1-s5: top-1 error %; CE, rel CE: % of AlexNet"]
    if summary.get("extra_CE"):
        caption.append("* held out, not in mCE")
    caption += [f"clean error {_fmt(100 * summary['clean_error'])} %" if summary.get("clean_error") is not None
               else "no clean error: pass --clean-error or --clean-data for relative mCE"]
    if summary.get("unreadable_count"):
        caption.append(f"{summary['unreadable_count']} unreadable image(s) skipped, listed in the summary")
    table.caption = "; ".join(caption + _notes(summary))
    return table


def p_table(summary: dict) -> Table:
    """FP (%), T5D, and both relative to AlexNet per perturbation, then mFP / mT5D."""
    table = Table(title=_title(f"ImageNet-P difficulty {summary['difficulty']}", summary))
    for column, justify in (("perturbation", "left"), ("FP %", "right"), ("T5D", "right"),
                            ("FP rel", "right"), ("T5D rel", "right")):
        table.add_column(column, justify=justify, no_wrap=column == "perturbation")
    raw = summary.get("raw", {})
    rows = [(p, summary["FP"][p], summary["T5D"][p], p) for p in summary["FP"]]
    rows += [(f"{p}*", summary["extra_FP"][p], summary["extra_T5D"][p], p) for p in summary.get("extra_FP", {})]
    for label, fp, t5d, p in rows:
        table.add_row(label, _fmt(100 * raw[p]["FP"], 2), _fmt(raw[p]["T5D"], 3), _fmt(fp), _fmt(t5d))
    table.add_section()
    table.add_row(_mean_label("mFP, mT5D", summary), "", "", _fmt(summary["mFP"]), _fmt(summary["mT5D"]),
                  style="bold")
    caption = ["FP %: raw flip probability; T5D: mean top-5 distance; rel: % of AlexNet"]
    if summary.get("extra_FP"):
        caption.append("* held out, not in mFP / mT5D")
    if summary.get("unreadable_count"):
        caption.append(f"{summary['unreadable_count']} unreadable sequence(s) skipped, listed in the summary")
    table.caption = "; ".join(caption + _notes(summary))
    return table


def npy_table(summary: dict) -> Table:
    """CIFAR-C: mean error (%) per corruption and their mean; CIFAR-P: FP (%) and T5D per
    perturbation and their means. Unnormalised (no published CIFAR baseline)."""
    table = Table(title=_title(summary["title"], summary))
    if "mean_error" in summary:
        table.add_column("corruption", no_wrap=True)
        table.add_column("error %", justify="right")
        for c, e in summary["error"].items():
            table.add_row(c, _fmt(e))
        for c, e in summary.get("extra_error", {}).items():
            table.add_row(f"{c}*", _fmt(e))
        table.add_section()
        table.add_row(_mean_label("mean error", summary), _fmt(summary["mean_error"]), style="bold")
    else:
        for column in ("perturbation", "FP %", "T5D"):
            table.add_column(column, justify="left" if column == "perturbation" else "right")
        for p in summary["FP"]:
            table.add_row(p, _fmt(summary["FP"][p], 2), _fmt(summary["T5D"][p], 3))
        for p in summary.get("extra_FP", {}):
            table.add_row(f"{p}*", _fmt(summary["extra_FP"][p], 2), _fmt(summary["extra_T5D"][p], 3))
        table.add_section()
        table.add_row(_mean_label("mFP, mT5D", summary), _fmt(summary["mFP"], 2), _fmt(summary["mT5D"], 3),
                      style="bold")
    table.caption = "unnormalised: no published CIFAR baseline" + ("; * held out" if summary.get("extra_error")
                                                                   or summary.get("extra_FP") else "")
    return table
