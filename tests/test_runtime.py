"""gcpbench.runtime: one answer per question (device, workers, seeds, rank, error text)."""
import hashlib

import pytest

from gcpbench import runtime
from gcpbench.errors import GcpbenchError


def test_stable_seed_is_the_sha1_prefix():
    digest = hashlib.sha1(b"7/fog/3/n01440764/img").digest()
    assert runtime.stable_seed(7, "fog", 3, "n01440764", "img") == int.from_bytes(digest[:4], "little")


def test_mix_seed_depends_on_every_value_and_fits_63_bits():
    seeds = {runtime.mix_seed(s, e, r) for s in range(3) for e in range(3) for r in range(3)}
    assert len(seeds) == 27 and all(0 <= s < 2**63 for s in seeds)
    assert runtime.mix_seed(1, 2) == runtime.mix_seed(1, 2) != runtime.mix_seed(2, 1)


def test_worker_counts(monkeypatch):
    monkeypatch.setattr(runtime, "usable_cores", lambda: 2)
    assert (runtime.loader_workers(), runtime.pool_workers()) == (1, 2)
    monkeypatch.setattr(runtime, "usable_cores", lambda: 32)
    assert (runtime.loader_workers(), runtime.pool_workers()) == (8, 8)


def test_rank_from_torchrun_environment(monkeypatch):
    monkeypatch.delenv("RANK", raising=False)
    assert runtime.process_rank() == 0 and runtime.is_main_process()
    monkeypatch.setenv("RANK", "3")
    assert runtime.process_rank() == 3 and not runtime.is_main_process()
    monkeypatch.setenv("RANK", "x")
    with pytest.raises(GcpbenchError, match="RANK='x' is not an integer"):
        runtime.process_rank()


def test_first_line():
    assert runtime.first_line(ValueError("  bad value\nsecond line")) == "bad value"
    assert runtime.first_line(KeyError()) == "KeyError"
