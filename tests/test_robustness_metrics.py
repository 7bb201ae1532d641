"""Exact ImageNet-C / -P metrics against hand-worked numbers (float64)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from gcpbench.errors import GcpbenchError
from gcpbench.robustness import benchmarks as baselines, metrics

# AlexNet gaussian_noise errors, severities 1..5, copied from the ImageNet-C paper's table.
ALEX_GN = [0.69528, 0.82542, 0.93554, 0.98138, 0.99452]


def alexnet_table(scale: float = 1.0) -> dict[str, dict[int, float]]:
    return {c: {s: scale * e for s, e in zip(range(1, 6), errs)} for c, errs in baselines.alexnet_c_errors().items()}


def test_baseline_tables_are_complete_and_in_units():
    assert len(baselines.BENCHMARK_CORRUPTIONS) == 15 and len(baselines.EXTRA_CORRUPTIONS) == 4
    assert len(baselines.BENCHMARK_PERTURBATIONS) == 10 and len(baselines.EXTRA_PERTURBATIONS) == 4
    assert baselines.alexnet_c_errors()["gaussian_noise"] == tuple(ALEX_GN)
    fp, t5d = baselines.alexnet_p()["gaussian_noise"]
    assert fp == pytest.approx(0.2365) and t5d == pytest.approx(4.77)  # FP stored in percent in the CSV
    assert baselines.ALEXNET_CLEAN_ERROR == 0.4345
    assert baselines.perturbation_frames("translate") == 41 and baselines.perturbation_frames("rotate") == 31


def test_alexnet_scores_100():
    summary = metrics.summarize_c(alexnet_table(), clean_error=0.4345)
    assert summary["mCE_pct"] == pytest.approx(100.0, abs=1e-9)
    assert summary["relative_mCE_pct"] == pytest.approx(100.0, abs=1e-9)
    assert all(v == pytest.approx(100.0) for v in summary["CE_pct"].values())
    assert len(summary["CE_pct"]) == 15 and summary["partial"] is False
    assert summary["clean_error_pct"] == pytest.approx(43.45) and summary["alexnet_clean_error_pct"] == pytest.approx(43.45)


def test_halving_every_error_gives_mce_50():
    summary = metrics.summarize_c(alexnet_table(0.5), clean_error=None)
    assert summary["mCE_pct"] == pytest.approx(50.0, abs=1e-9)
    assert summary["relative_mCE_pct"] is None and summary["clean_error_pct"] is None


def test_relative_ce_hand_worked():
    errors = [0.5, 0.6, 0.7, 0.8, 0.9]                     # sum 3.5
    # CE = 3.5 / (0.69528 + 0.82542 + 0.93554 + 0.98138 + 0.99452) = 3.5 / 4.43214
    assert metrics.corruption_error(errors, ALEX_GN) == pytest.approx(3.5 / 4.43214, rel=1e-12)
    # relative CE = (3.5 - 5 * 0.3) / (4.43214 - 5 * 0.4345) = 2.0 / 2.25964
    assert metrics.relative_corruption_error(errors, 0.3, ALEX_GN) == pytest.approx(2.0 / 2.25964, rel=1e-12)
    # the override of AlexNet's clean error is used: (3.5 - 1.5) / (4.43214 - 5 * 0.43478)
    assert metrics.relative_corruption_error(errors, 0.3, ALEX_GN, 0.43478) == pytest.approx(2.0 / 2.25824, rel=1e-12)


def test_relative_mce_two_corruption_mean():
    table = {"gaussian_noise": dict(zip(range(1, 6), [0.5, 0.6, 0.7, 0.8, 0.9])),
             "brightness": dict(zip(range(1, 6), [0.3, 0.3, 0.3, 0.3, 0.3]))}
    s = metrics.summarize_c(table, clean_error=0.3, corruptions=["gaussian_noise", "brightness"])
    # brightness AlexNet sum = 0.45140+0.48502+0.54048+0.62166+0.72440 = 2.82296
    assert s["CE_pct"]["brightness"] == pytest.approx(100 * 1.5 / 2.82296)
    assert s["relative_CE_pct"]["brightness"] == pytest.approx(0.0)
    assert s["relative_mCE_pct"] == pytest.approx(100 * (2.0 / 2.25964 + 0.0) / 2)
    assert s["mCE_pct"] == pytest.approx(100 * (3.5 / 4.43214 + 1.5 / 2.82296) / 2)
    assert s["partial"] is True


def test_missing_severity_is_named():
    table = alexnet_table()
    del table["fog"][3]
    with pytest.raises(GcpbenchError, match="'fog' severity 3"):
        metrics.summarize_c(table, 0.3)
    del table["snow"]
    with pytest.raises(GcpbenchError, match="corruption 'snow'"):
        metrics.summarize_c(table, 0.3)


def test_read_errors_csv(tmp_path):
    path = tmp_path / "e.csv"
    path.write_text("corruption,severity,error\nfog,1,0.5\nfog,2,0.25\n")
    assert metrics.read_errors_csv(path) == {"fog": {1: 0.5, 2: 0.25}}
    path.write_text("corruption,severity,error\nfog,1,50\n")
    with pytest.raises(GcpbenchError, match="not a fraction"):
        metrics.read_errors_csv(path)
    path.write_text("corruption,severity,error_pct,images\nfog,1,50.0,10\n")  # eval-c's own imagenet_c.csv
    assert metrics.read_errors_csv(path) == {"fog": {1: 0.5}}
    path.write_text("corruption,severity,error\nfog,1,0.5\nfog,1,0.4\n")
    with pytest.raises(GcpbenchError, match="twice"):
        metrics.read_errors_csv(path)
    path.write_text("corruption,level,error\nfog,1,0.5\n")
    with pytest.raises(GcpbenchError, match="columns"):
        metrics.read_errors_csv(path)


# ------------------------------------------------------------------------- ImageNet-P

TOP1 = np.array([[0, 1, 1, 1, 1],
                 [2, 2, 2, 2, 2]])


def test_flip_probability_noise_vs_other():
    # non-noise, d=1: pairs (0,1),(1,2),(2,3),(3,4): one flip in sequence 0 -> 1/4; sequence 1: 0
    assert metrics.flip_probability(TOP1, "rotate") == pytest.approx((1 / 4 + 0) / 2)
    # noise: frames 2..5 against frame 1: all four differ -> 1; difficulty does not change the pairs
    assert metrics.flip_probability(TOP1, "gaussian_noise") == pytest.approx((1 + 0) / 2)
    assert metrics.flip_probability(TOP1, "shot_noise", difficulty=3) == pytest.approx(0.5)
    # d=2: pairs (0,2),(1,3),(2,4): 0 vs 1 flips, the others do not -> 1/3
    assert metrics.flip_probability(TOP1, "translate", difficulty=2) == pytest.approx((1 / 3 + 0) / 2)


def test_flip_probability_pools_per_sequence_then_averages():
    seqs = [np.array([0, 1, 0]), np.array([3, 3, 3, 3, 3])]
    # per sequence: 2/2 and 0/4 -> mean 0.5 (pooling all pairs would give 2/6)
    assert metrics.flip_probability(seqs, "scale") == pytest.approx(0.5)


def logits_for(rankings: list[list[int]], n_classes: int = 8) -> np.ndarray:
    """Logits whose descending order is the given class ranking (first = highest)."""
    out = np.zeros((len(rankings), n_classes))
    for f, ranking in enumerate(rankings):
        for rank, cls in enumerate(ranking):
            out[f, cls] = n_classes - rank
    return out


def test_pair_top5_distance_known_cases():
    d = metrics.pair_top5_distance
    assert d(np.array([0, 1, 2, 3, 4]), np.array([0, 1, 2, 3, 4])) == 0
    assert d(np.array([0, 1, 2, 3, 4]), np.array([1, 0, 2, 3, 4])) == 2       # swapped ranks 0 and 1
    assert d(np.array([0, 1, 2, 3, 4]), np.array([0, 1, 2, 3, 7])) == 1       # class 4 left: r_4 = 5
    assert d(np.array([0, 1, 2, 3, 4]), np.array([5, 6, 7, 8, 9])) == 15      # all gone: 5+4+3+2+1
    assert d(np.array([0, 1, 2, 3, 4]), np.array([4, 3, 2, 1, 0])) == 4 + 2 + 0 + 2 + 4


def test_top5_distance_rank_capped_at_5():
    # frame 1 pushes class 0 to rank 7 (0-based): r_0 = min(7, 5) = 5, the others move up one
    logits = logits_for([[0, 1, 2, 3, 4, 5, 6, 7], [1, 2, 3, 4, 5, 6, 7, 0]])
    assert metrics.top5_distance(logits[None], "rotate") == pytest.approx(5 + 1 + 1 + 1 + 1)


def test_top5_distance_noise_difficulty():
    base = [0, 1, 2, 3, 4, 5, 6, 7]
    swap = [1, 0, 2, 3, 4, 5, 6, 7]
    seq = logits_for([base, swap, base])[None]
    # non-noise d=1: (0,1) -> 2, (1,2) -> 2; mean 2
    assert metrics.top5_distance(seq, "tilt") == pytest.approx(2.0)
    # noise: (0,1) -> 2, (0,2) -> 0; mean 1
    assert metrics.top5_distance(seq, "speckle_noise") == pytest.approx(1.0)
    # d=2: only (0,2) -> 0
    assert metrics.top5_distance(seq, "tilt", difficulty=2) == pytest.approx(0.0)


def test_top5_distance_matches_full_ranking_bruteforce():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(3, 6, 20))
    logits[:, 1:] = logits[:, :1] + 0.7 * rng.normal(size=(3, 5, 20))  # keep some overlap
    expected = []
    for seq in logits:
        dists = []
        for a, b in zip(range(0, 5), range(1, 6)):
            ref = list(np.argsort(-seq[a], kind="stable"))
            other = list(np.argsort(-seq[b], kind="stable"))
            dists.append(sum(abs(i - min(other.index(ref[i]), 5)) for i in range(5)))
        expected.append(np.mean(dists))
    assert metrics.top5_distance(logits, "motion_blur") == pytest.approx(np.mean(expected), rel=1e-12)


def test_top5_distance_with_fewer_than_five_classes():
    seq = logits_for([[0, 1, 2], [2, 1, 0]], n_classes=3)[None]
    assert metrics.top5_distance(seq, "rotate") == pytest.approx(2 + 0 + 2)


def test_too_short_sequence_is_an_error():
    with pytest.raises(GcpbenchError, match="no pair"):
        metrics.flip_probability(np.zeros((1, 2), dtype=int), "rotate", difficulty=2)


def test_summarize_p_alexnet_is_100_and_units():
    raw = {p: v for p, v in baselines.alexnet_p().items()}
    s = metrics.summarize_p(raw)
    assert s["mFP_pct"] == pytest.approx(100.0) and s["mT5D_pct"] == pytest.approx(100.0)
    raw = {p: (0.1101 / 2, 2.63 * 2) for p in ["translate"]}
    s = metrics.summarize_p(raw, perturbations=["translate"])
    assert s["rel_FP_pct"]["translate"] == pytest.approx(50.0) and s["rel_T5D_pct"]["translate"] == pytest.approx(200.0)
    assert s["FP_pct"]["translate"] == pytest.approx(100 * 0.1101 / 2) and s["T5D"]["translate"] == pytest.approx(5.26)
    json.dumps(s)
