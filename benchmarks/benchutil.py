"""Shared helpers of the benchmark scripts: devices, interleaved timing, peak memory.

Timings on a shared machine are noisy, so every benchmark compares candidates measured in the
same process, interleaved (A, B, A, B, ...), and reports medians.
"""
from __future__ import annotations

import argparse
import contextlib
import itertools
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Callable, Iterator

import torch

from gcpbench import runtime
from gcpbench.errors import GcpbenchError


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """Silence C++ writes to fd 2 (kineto prints profiler_start/stop lines there)."""
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as devnull:
            os.dup2(devnull.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def resolve_device(name: str) -> torch.device:
    """:func:`gcpbench.runtime.resolve_device`; a wrong choice ends the script with its one line."""
    try:
        return runtime.resolve_device(name)
    except GcpbenchError as exc:
        raise SystemExit(str(exc)) from None


def synchronize(device: torch.device) -> None:
    """Wait for queued kernels so wall-clock time covers the work."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def interleaved_medians(
    candidates: dict[str, Callable[[], object]],
    device: torch.device,
    repeats: int,
    warmup: int = 1,
) -> dict[str, float]:
    """Median wall time in ms of each candidate; rounds run A, B, C, A, B, C, ..."""
    for _ in range(warmup):
        for fn in candidates.values():
            fn()
    synchronize(device)
    samples: dict[str, list[float]] = {name: [] for name in candidates}
    for _ in range(repeats):
        for name, fn in candidates.items():
            synchronize(device)
            start = time.perf_counter()
            fn()
            synchronize(device)
            samples[name].append((time.perf_counter() - start) * 1e3)
    return {name: statistics.median(values) for name, values in samples.items()}


def peak_memory_bytes(fn: Callable[[], object], device: torch.device) -> int:
    """Peak bytes allocated while ``fn`` runs, above what was allocated before it.

    CUDA: the caching allocator's peak counter. CPU: the PyTorch profiler's memory events
    (``profile_memory=True``): every CPU allocation and free is recorded with its size; the
    running sum in time order is the memory held, and its maximum is the peak.
    """
    if device.type == "cuda":
        synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        fn()
        synchronize(device)
        return torch.cuda.max_memory_allocated(device) - base
    from torch._C._profiler import _EventType
    from torch.profiler import ProfilerActivity, profile

    with _quiet_stderr(), profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    events: list[tuple[int, int]] = []
    stack = list(prof.profiler.kineto_results.experimental_event_tree())
    while stack:
        node = stack.pop()
        if node.tag == _EventType.Allocation and node.extra_fields.device.type == "cpu":
            events.append((node.start_time_ns, node.extra_fields.alloc_size))
        stack.extend(node.children)
    events.sort()
    return max(itertools.accumulate((size for _, size in events), initial=0))


def machine_name(device: torch.device) -> str:
    """GPU name, or the CPU model name from /proc/cpuinfo (what ``lscpu`` prints)."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def base_parser(description: str, quick_help: str, json_help: str) -> argparse.ArgumentParser:
    """The options every benchmark shares: --quick, --json, --device, --threads."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help=quick_help)
    parser.add_argument("--json", action="store_true", help=json_help)
    parser.add_argument("--device", default="auto", help="auto (cuda if available), cpu or cuda[:i]")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    return parser


def device_from_args(args: argparse.Namespace) -> torch.device:
    """Apply --threads and resolve --device."""
    if args.threads:
        torch.set_num_threads(args.threads)
    return resolve_device(args.device)


def print_wide(table: object) -> None:
    """Print a rich table; to a pipe or file at 200 columns so the columns are not squeezed."""
    from rich.console import Console

    console = Console()
    if not console.is_terminal:
        console = Console(width=200)
    console.print(table)
