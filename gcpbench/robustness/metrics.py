"""Exact ImageNet-C / ImageNet-P metrics (Hendrycks & Dietterich, ICLR 2019).

ImageNet-C, with E_{s,c} the top-1 error (fraction) at severity s of corruption c:

* CE_c = sum_s E_{s,c} / sum_s E^AlexNet_{s,c};  mCE = mean of CE_c over the corruptions.
* relative CE_c = sum_s (E_{s,c} - E_clean) / sum_s (E^AlexNet_{s,c} - E^AlexNet_clean).

ImageNet-P, per sequence of frames: noise perturbations compare every frame j >= 2 with frame
1; the others compare every frame with the one ``difficulty`` steps earlier. A sequence's value
is the mean over its compared pairs; a perturbation's value is the mean over sequences.

* FP: share of pairs whose top-1 class differs.
* Top-5 distance of a pair: for the reference frame's top-5 classes in rank order i = 0..4,
  r_i = that class's 0-based rank in the other frame capped at 5; distance = sum_i |i - r_i|.
* mFP / mT5D: mean over the perturbations of FP / FP^AlexNet (T5D / uT5D^AlexNet), percent.

Units are in the key names of every summary (``docs/units.md``): ``_pct`` for a percentage,
``rel_`` for a per-item value relative to AlexNet's where the raw value sits beside it
(ImageNet-P: ``FP_pct`` raw, ``rel_FP_pct`` relative). mCE, relative mCE, mFP and mT5D are
AlexNet-normalised by their definition and keep the paper's names (``mCE_pct``); plain means
without a baseline (CIFAR) are ``mean_*``. Inputs (error tables, ``clean_error``) are fractions.
"""
from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np

from gcpbench.errors import GcpbenchError
from gcpbench.robustness.benchmarks import (
    ALEXNET_CLEAN_ERROR, BENCHMARK_CORRUPTIONS, BENCHMARK_PERTURBATIONS, EXTRA_CORRUPTIONS,
    EXTRA_PERTURBATIONS, SEVERITIES, alexnet_c_errors, alexnet_p, base_perturbation, is_noise,
)

CTable = Mapping[str, Mapping[int, float]]  # corruption -> severity -> error (fraction)

# ----------------------------------------------------------------------------- ImageNet-C


def corruption_error(errors: Sequence[float], alexnet_errors: Sequence[float]) -> float:
    """CE of one corruption as a ratio (1.0 = AlexNet): sum of errors over AlexNet's."""
    return math.fsum(errors) / math.fsum(alexnet_errors)


def relative_corruption_error(errors: Sequence[float], clean_error: float, alexnet_errors: Sequence[float],
                              alexnet_clean_error: float = ALEXNET_CLEAN_ERROR) -> float:
    """Relative CE of one corruption as a ratio: degradation from clean over AlexNet's."""
    return (math.fsum(e - clean_error for e in errors)
            / math.fsum(e - alexnet_clean_error for e in alexnet_errors))


def _severity_errors(table: CTable, corruption: str, severities: Sequence[int], source: str) -> list[float]:
    if corruption not in table:
        raise GcpbenchError(f"{source} has no errors for corruption '{corruption}' (needs severities "
                            f"{', '.join(map(str, severities))})")
    row = table[corruption]
    missing = [s for s in severities if s not in row]
    if missing:
        raise GcpbenchError(f"{source} has no error for corruption '{corruption}' severity {missing[0]}")
    return [float(row[s]) for s in severities]


def summarize_c(table: CTable, clean_error: float | None = None,
                corruptions: Sequence[str] = BENCHMARK_CORRUPTIONS, extra: Sequence[str] = (),
                alexnet_clean_error: float = ALEXNET_CLEAN_ERROR, source: str = "the error table",
                severities: Sequence[int] = SEVERITIES) -> dict:
    """CE per corruption, mCE and relative mCE (all percent, ``*_pct`` keys) of an error table
    (fractions); ``clean_error_pct`` is the clean error as a percentage.

    ``corruptions`` enter mCE (the 15 benchmark ones by default); ``extra`` corruptions are
    reported in ``extra_CE`` only. Without ``clean_error`` the relative values are None.
    Fewer ``severities`` (or corruptions) than the benchmark's give a result marked partial,
    with AlexNet's sums over the same severities. A missing corruption or severity raises a
    one-line GcpbenchError naming it.
    """
    severities = tuple(sorted(severities))
    alexnet = alexnet_c_errors()
    unknown = [c for c in (*corruptions, *extra) if c not in alexnet]
    if unknown:
        raise GcpbenchError(f"no AlexNet baseline for corruption '{unknown[0]}'; known: {', '.join(alexnet)}")
    bad = [s for s in severities if s not in SEVERITIES]
    if bad:
        raise GcpbenchError(f"severity {bad[0]} does not exist; severities are 1 to 5")

    def scores(names: Sequence[str]) -> tuple[dict[str, float], dict[str, float] | None]:
        ce, rel = {}, ({} if clean_error is not None else None)
        for c in names:
            errors = _severity_errors(table, c, severities, source)
            reference = [alexnet[c][s - 1] for s in severities]
            ce[c] = 100.0 * corruption_error(errors, reference)
            if rel is not None:
                rel[c] = 100.0 * relative_corruption_error(errors, clean_error, reference, alexnet_clean_error)
        return ce, rel

    ce, rel = scores(corruptions)
    extra_ce, extra_rel = scores(extra)
    return {
        "mCE_pct": float(np.mean(list(ce.values()))) if ce else None,
        "relative_mCE_pct": float(np.mean(list(rel.values()))) if rel else None,
        "CE_pct": ce,
        "relative_CE_pct": rel,
        "extra_CE_pct": extra_ce,
        "extra_relative_CE_pct": extra_rel,
        "clean_error_pct": percent(clean_error),
        "alexnet_clean_error_pct": percent(alexnet_clean_error),
        "corruptions": list(corruptions),
        "severities": list(severities),
        "partial": tuple(corruptions) != BENCHMARK_CORRUPTIONS or severities != SEVERITIES,
    }


def percent(fraction: float | None) -> float | None:
    """A fraction as a percentage (None stays None)."""
    return None if fraction is None else 100.0 * fraction


def severity_errors_pct(table: CTable, names: Iterable[str], severities: Sequence[int]) -> dict[str, dict[str, float]]:
    """``{name: {"1": error %, ...}}`` of an error table (fractions): a summary's ``severity_error_pct``."""
    return {n: {str(s): 100.0 * table[n][s] for s in severities} for n in names}


def read_errors_csv(path: str | Path) -> dict[str, dict[int, float]]:
    """Read a ``corruption,severity,error`` table (error a fraction in [0, 1]); a table with an
    ``error_pct`` column instead (eval-c's own ``imagenet_c.csv``) is read as percentages."""
    path = Path(path)
    if not path.is_file():
        raise GcpbenchError(f"errors table '{path}' does not exist")
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        fields = {f.strip() for f in reader.fieldnames or []}
        column, scale = ("error_pct", 100.0) if "error_pct" in fields and "error" not in fields else ("error", 1.0)
        need = {"corruption", "severity", column}
        if reader.fieldnames is None or not need <= fields:
            raise GcpbenchError(f"errors table '{path}' needs the columns corruption,severity,error "
                                f"(has: {', '.join(reader.fieldnames or [])})")
        table: dict[str, dict[int, float]] = {}
        for line, row in enumerate(reader, start=2):
            row = {k.strip(): (v or "").strip() for k, v in row.items() if k is not None}
            try:
                severity, error = int(row["severity"]), float(row[column]) / scale
            except ValueError:
                raise GcpbenchError(f"errors table '{path}' line {line}: severity must be an integer and "
                                    f"{column} a number (got '{row['severity']}', '{row[column]}')") from None
            if not 0.0 <= error <= 1.0:
                raise GcpbenchError(f"errors table '{path}' line {line}: error {error} is not a fraction in "
                                    "[0, 1] (divide percentages by 100)")
            bucket = table.setdefault(row["corruption"], {})
            if severity in bucket:
                raise GcpbenchError(f"errors table '{path}' line {line}: corruption '{row['corruption']}' "
                                    f"severity {severity} appears twice")
            bucket[severity] = error
    return table


# ----------------------------------------------------------------------------- ImageNet-P


def compared_pairs(n_frames: int, perturbation: str, difficulty: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """(reference frame, other frame) indices (0-based) of the pairs one sequence contributes."""
    if difficulty < 1:
        raise GcpbenchError(f"difficulty must be 1, 2 or 3 (got {difficulty})")
    if is_noise(perturbation):
        other = np.arange(1, n_frames)
        return np.zeros_like(other), other
    other = np.arange(difficulty, n_frames)
    return other - difficulty, other


def _pairs_or_fail(n_frames: int, perturbation: str, difficulty: int) -> tuple[np.ndarray, np.ndarray]:
    ref, other = compared_pairs(n_frames, perturbation, difficulty)
    if ref.size == 0:
        raise GcpbenchError(f"a '{perturbation}' sequence of {n_frames} frame(s) has no pair to compare "
                            f"at difficulty {difficulty}")
    return ref, other


def top5_ranks(logits: np.ndarray) -> np.ndarray:
    """Top-5 class indices in rank order along the last axis (ties: lower class index first;
    with fewer than 5 classes, all of them)."""
    logits = np.asarray(logits)
    order = np.argsort(-logits, axis=-1, kind="stable")
    return order[..., :5]


def pair_top5_distance(ref_top5: np.ndarray, other_top5: np.ndarray) -> np.ndarray:
    """sum_i |i - r_i| for pairs of top-5 lists [..., 5] (r_i capped at 5: absent from the top 5)."""
    ref_top5, other_top5 = np.asarray(ref_top5), np.asarray(other_top5)
    match = ref_top5[..., :, None] == other_top5[..., None, :]          # [..., i, j]
    rank = np.where(match.any(-1), match.argmax(-1), 5)                 # r_i
    return np.abs(np.arange(ref_top5.shape[-1]) - rank).sum(-1)


def sequence_flip_probability(top1: Sequence[int], perturbation: str, difficulty: int = 1) -> float:
    """Mean flip over the compared pairs of one sequence."""
    top1 = np.asarray(top1)
    ref, other = _pairs_or_fail(len(top1), perturbation, difficulty)
    return float(np.mean(top1[ref] != top1[other]))


def sequence_top5_distance(top5: np.ndarray, perturbation: str, difficulty: int = 1) -> float:
    """Mean top-5 distance over the compared pairs of one sequence (``top5``: [frames, 5])."""
    top5 = np.asarray(top5)
    ref, other = _pairs_or_fail(len(top5), perturbation, difficulty)
    return float(np.mean(pair_top5_distance(top5[ref], top5[other])))


def _mean_over_sequences(values: Iterable[float]) -> float:
    values = list(values)
    if not values:
        raise GcpbenchError("no sequences to average")
    return float(np.mean(values))


def flip_probability(top1, perturbation: str, difficulty: int = 1) -> float:
    """Raw flip probability (fraction): ``top1`` int [n_sequences, n_frames] (or a list of sequences)."""
    return _mean_over_sequences(sequence_flip_probability(seq, perturbation, difficulty) for seq in top1)


def top5_distance(logits, perturbation: str, difficulty: int = 1) -> float:
    """Raw mean top-5 distance: ``logits`` float [n_sequences, n_frames, n_classes] (or a list)."""
    return _mean_over_sequences(sequence_top5_distance(top5_ranks(seq), perturbation, difficulty)
                                for seq in logits)


def summarize_p(raw: Mapping[str, tuple[float, float]],
                perturbations: Sequence[str] = BENCHMARK_PERTURBATIONS,
                extra: Sequence[str] = ()) -> dict:
    """FP and T5D relative to AlexNet (``rel_FP_pct``, ``rel_T5D_pct``), mFP and mT5D (percent)
    from raw (FP fraction, T5D) pairs, and the raw values (``FP_pct``, ``T5D``) of every perturbation."""
    alexnet = alexnet_p()

    def relative(names: Sequence[str]) -> tuple[dict[str, float], dict[str, float]]:
        fp, t5d = {}, {}
        for p in names:
            base = base_perturbation(p)
            if base not in alexnet:
                raise GcpbenchError(f"no AlexNet baseline for perturbation '{p}'; known: {', '.join(alexnet)}")
            if p not in raw:
                raise GcpbenchError(f"no result for perturbation '{p}'")
            fp[p] = 100.0 * raw[p][0] / alexnet[base][0]
            t5d[p] = 100.0 * raw[p][1] / alexnet[base][1]
        return fp, t5d

    fp, t5d = relative(perturbations)
    extra_fp, extra_t5d = relative(extra)
    every = (*perturbations, *extra)
    return {
        "mFP_pct": float(np.mean(list(fp.values()))) if fp else None,
        "mT5D_pct": float(np.mean(list(t5d.values()))) if t5d else None,
        "rel_FP_pct": fp, "rel_T5D_pct": t5d, "extra_rel_FP_pct": extra_fp, "extra_rel_T5D_pct": extra_t5d,
        "FP_pct": {p: 100.0 * raw[p][0] for p in every}, "T5D": {p: raw[p][1] for p in every},
        "perturbations": list(perturbations),
        "partial": tuple(perturbations) != BENCHMARK_PERTURBATIONS,
    }


# ----------------------------------------------------------------------------- unnormalised (CIFAR)


def summarize_unnormalised_c(table: CTable, corruptions: Sequence[str], extra: Sequence[str] = (),
                             severities: Sequence[int] = (1, 2, 3, 4, 5), source: str = "results") -> dict:
    """Mean top-1 error (percent, ``error_pct``) over ``severities`` per corruption, and its mean
    over ``corruptions`` (``mean_error_pct``); ``extra`` ones are reported apart, never in the mean."""
    def means(names: Sequence[str]) -> dict[str, float]:
        return {c: 100.0 * float(np.mean(_severity_errors(table, c, severities, source))) for c in names}

    error, extra_error = means(corruptions), means(extra)
    return {"mean_error_pct": float(np.mean(list(error.values()))) if error else None, "error_pct": error,
            "extra_error_pct": extra_error, "corruptions": list(corruptions), "severities": list(severities)}


def summarize_unnormalised_p(raw: Mapping[str, tuple[float, float]], perturbations: Sequence[str],
                             extra: Sequence[str] = ()) -> dict:
    """Mean raw flip probability (percent) and top-5 distance over ``perturbations``
    (``mean_FP_pct``, ``mean_T5D``: no baseline, so not mFP / mT5D); ``extra`` ones are reported
    apart, never in the means."""
    missing = next((p for p in (*perturbations, *extra) if p not in raw), None)
    if missing is not None:
        raise GcpbenchError(f"no result for perturbation '{missing}'")
    fp = {p: 100.0 * raw[p][0] for p in perturbations}
    t5d = {p: raw[p][1] for p in perturbations}
    return {"mean_FP_pct": float(np.mean(list(fp.values()))) if fp else None,
            "mean_T5D": float(np.mean(list(t5d.values()))) if t5d else None, "FP_pct": fp, "T5D": t5d,
            "extra_FP_pct": {p: 100.0 * raw[p][0] for p in extra}, "extra_T5D": {p: raw[p][1] for p in extra},
            "perturbations": list(perturbations)}


__all__ = ["ALEXNET_CLEAN_ERROR", "BENCHMARK_CORRUPTIONS", "BENCHMARK_PERTURBATIONS", "EXTRA_CORRUPTIONS",
           "EXTRA_PERTURBATIONS", "compared_pairs", "corruption_error", "flip_probability",
           "pair_top5_distance", "percent", "read_errors_csv", "severity_errors_pct", "relative_corruption_error", "summarize_c", "summarize_p",
           "summarize_unnormalised_c", "summarize_unnormalised_p",
           "top5_distance", "top5_ranks"]
