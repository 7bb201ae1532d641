"""``gcp_layer.py --norm NAME|all``: forward+backward time and peak memory of every GCP-family
method at one size, each measured interleaved with the same baseline (gcpbench's iSQRT-COV layer)
and with its authors' computation (``authors_gcp.py``) in the same process: the ratios are what
to read on a shared machine."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from authors_gcp import authors
from benchutil import interleaved_medians, machine_name, peak_memory_bytes, print_wide

from gcpbench.pooling import GCP, NORMS


@dataclass
class FamilyResult:
    """One method at one size (one JSON object)."""

    norm: str
    device: str
    machine: str
    threads: int
    batch: int
    channels: int
    size: int
    ms: float
    isqrt_ms: float
    authors_ms: float
    ratio_vs_isqrt: float
    ratio_vs_authors: float
    peak_mib: float
    authors_peak_mib: float
    repeats: int
    max_rel_error_vs_authors: float | None  # forward outputs (None for dropcov: random in training)


def _pass(layer, x: Tensor, grad_out: Tensor) -> None:
    x.grad = None
    layer(x).backward(grad_out)


def run_family(norms: list[str], batch: int, channels: int, size: int, *, device: torch.device, repeats: int,
               warmup: int, textbook, report=None) -> list[FamilyResult]:
    """Every method of ``norms`` (``report(result)`` is called as each one finishes)."""
    gen = torch.Generator().manual_seed(batch * 1_000_003 + channels * 101 + size)
    x = torch.randn(batch, channels, size, size, generator=gen).relu_().to(device).requires_grad_()
    isqrt = GCP(channels).to(device)
    isqrt_grad = torch.randn(batch, channels * (channels + 1) // 2, generator=gen).to(device)
    results = []
    for norm in norms:
        ours = GCP(channels, norm).to(device).train()
        theirs = authors(norm, channels, textbook)
        with torch.no_grad():
            out = ours(x)
            width = out.shape[1]
            error = None if norm == "dropcov" else float(
                ((out.double() - theirs(x).double()).abs().max() / out.double().abs().max()).item())
        grad_out = torch.randn(batch, width, generator=gen).to(device)
        times = interleaved_medians({
            "isqrt": lambda: _pass(isqrt, x, isqrt_grad),
            "ours": lambda: _pass(ours, x, grad_out),
            "authors": lambda: _pass(theirs, x, grad_out),
        }, device, repeats=repeats, warmup=warmup)
        peaks = {name: peak_memory_bytes(lambda fn=fn: _pass(fn, x, grad_out), device) / 2**20
                 for name, fn in (("ours", ours), ("authors", theirs))}
        results.append(FamilyResult(
            norm=norm, device=str(device), machine=machine_name(device), threads=torch.get_num_threads(),
            batch=batch, channels=channels, size=size, ms=times["ours"], isqrt_ms=times["isqrt"],
            authors_ms=times["authors"], ratio_vs_isqrt=times["ours"] / times["isqrt"],
            ratio_vs_authors=times["ours"] / times["authors"], peak_mib=peaks["ours"],
            authors_peak_mib=peaks["authors"], repeats=repeats, max_rel_error_vs_authors=error))
        if report is not None:
            report(results[-1])
    return results


def resolve_norms(names: list[str]) -> list[str]:
    return list(NORMS) if "all" in names else names


def print_family(results: list[FamilyResult]) -> None:
    from rich.table import Table

    first = results[0]
    table = Table(title=f"GCP family fwd+bwd at B={first.batch}, C={first.channels}, {first.size}x{first.size}, "
                        f"{first.device} ({first.machine}, {first.threads} threads)")
    for col in ("method", "ms", "iSQRT ms (same rounds)", "x iSQRT", "authors ms", "x authors", "MiB", "authors MiB"):
        table.add_column(col, justify="right")
    for r in results:
        table.add_row(r.norm, f"{r.ms:.1f}", f"{r.isqrt_ms:.1f}", f"{r.ratio_vs_isqrt:.2f}", f"{r.authors_ms:.1f}",
                      f"{r.ratio_vs_authors:.2f}", f"{r.peak_mib:.1f}", f"{r.authors_peak_mib:.1f}")
    print_wide(table)
