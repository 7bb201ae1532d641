"""Smoke run of the GCP layer benchmark script (no timing assertions: the machine is shared)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "gcp_layer.py"
KEYS = {"batch", "channels", "height", "width", "layer_ms", "textbook_ms", "bmm_ms", "floor_ms", "efficiency",
        "speedup_vs_textbook", "layer_peak_mib", "textbook_peak_mib", "memory_ratio_vs_textbook",
        "max_rel_error", "max_rel_error_forward", "max_rel_error_gradient"}


def test_gcp_layer_benchmark_quick_json() -> None:
    result = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--json", "--threads", "1", "--repeats", "1"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    records = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    assert len(records) == 1
    record = records[0]
    assert KEYS <= record.keys()
    assert (record["batch"], record["channels"], record["height"]) == (4, 32, 7)
    # the layer agrees with the benchmark's own textbook implementation, forward and gradient
    assert 0.0 < record["max_rel_error"] < 1e-5
    assert record["max_rel_error"] == max(record["max_rel_error_forward"], record["max_rel_error_gradient"])
    # memory comes from the profiler's allocation events: both sides saw real allocations
    assert record["layer_peak_mib"] > 0 and record["textbook_peak_mib"] > 0
    assert record["floor_ms"] == record["floor_products"] * record["bmm_ms"] and record["floor_products"] == 36


def test_gcp_family_benchmark_quick_json_agrees_with_the_authors_computations() -> None:
    result = subprocess.run([sys.executable, str(SCRIPT), "--norm", "all", "--quick", "--json", "--threads", "1",
                             "--repeats", "1"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    records = {r["norm"]: r for r in (json.loads(line) for line in result.stdout.splitlines() if line.strip())}
    assert set(records) == {"isqrt", "mpn", "log", "mpa", "bcnn", "cbp", "none", "dropcov"}
    for norm, record in records.items():
        assert record["ms"] > 0 and record["authors_ms"] > 0 and record["peak_mib"] > 0, norm
        if norm == "dropcov":
            assert record["max_rel_error_vs_authors"] is None
        else:  # the same computation by another route: cbp's Gram route equals the authors' FFT route
            # up to float32 FFT rounding over d = 8192 bins (2.5e-4; tests/test_pooling_exact.py checks
            # the Gram route against the count-sketch convolution in float64 to 1e-10)
            bound = 1e-3 if norm == "cbp" else 1e-4
            assert record["max_rel_error_vs_authors"] < bound, (norm, record["max_rel_error_vs_authors"])
