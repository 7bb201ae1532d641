"""Machine-readable column names for the CSV and JSON files: ``top1_pct``, ``delta_top1_pct``.

The Markdown / LaTeX tables keep their display names (``Top-1``, ``Δ Top-1``, ``paper
(ImageNet) Top-1``); scripts get snake_case names of letters, digits and ``_`` only, with the
unit in the name: ``_pct`` for a percentage. ImageNet-C / -P metrics (mCE, relative mCE, mFP,
mT5D) are percentages of AlexNet's (``rel_``-prefixed in the result files, see
``docs/units.md``); in a report table they keep their paper names plus ``_pct``.
"""
from __future__ import annotations

import re
from typing import Iterable

from gcpbench.coco import COCO_METRICS

# Display words -> machine words (applied before snake-casing).
_WORDS = {"Δ": "delta ", "paper (ImageNet)": "paper", "paper (COCO)": "paper", "#": "number"}
# Last word(s) of a column whose values are percentages.
PERCENT_METRICS: frozenset[str] = frozenset(
    {"top1", "top5", "mce", "relative_mce", "mfp", "mt5d", "mean_error", "ce"} | {m.lower() for m in COCO_METRICS})


def snake(name: str) -> str:
    """``paper (ImageNet) Top-1`` -> ``paper_top1``; ``Δ AP`` -> ``delta_ap``; ``dataset (C)`` -> ``dataset_c``."""
    text = str(name)
    for word, replacement in _WORDS.items():
        text = text.replace(word, replacement)
    text = re.sub(r"(?<=[A-Za-z])-(?=\d(?!\d))", "", text)  # Top-1 -> Top1 (CUB-200 stays cub_200)
    text = re.sub(r"[^0-9A-Za-z]+", "_", text).strip("_").lower()
    return text or "column"


def is_percent(name: str) -> bool:
    """True when a column's snake name ends with a percentage metric (``top1``, ``delta_mce``, ``bbox_ap50``)."""
    return any(name == m or name.endswith("_" + m) for m in PERCENT_METRICS)


def csv_header(columns: Iterable[str], percent: Iterable[str] | None = None) -> list[str]:
    """Snake names with ``_pct`` on percentages: by :data:`PERCENT_METRICS`, or exactly the
    display columns in ``percent`` when given; repeated names get ``_2``, ``_3``."""
    chosen = None if percent is None else set(percent)
    names: list[str] = []
    for column in columns:
        name = snake(column)
        if (is_percent(name) if chosen is None else column in chosen) and not name.endswith("_pct"):
            name += "_pct"
        base, n = name, 2
        while name in names:
            name, n = f"{base}_{n}", n + 1
        names.append(name)
    return names
