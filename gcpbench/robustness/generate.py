"""What ``data make-c`` and ``data make-p`` share: source listing, per-file atomic writes,
seeds, parallel workers with a progress bar, and the ``gcpbench_generated.json`` marker."""
from __future__ import annotations

import hashlib
import os
import sys
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Callable, Sequence

from gcpbench.errors import GcpbenchError
from gcpbench.io import atomic_write_json
from gcpbench.progress import progress_bar
from gcpbench.robustness.trees import IMAGE_EXTENSIONS, MARKER, class_names, files_in, require_dir, select_per_class


@dataclass(frozen=True)
class Source:
    """One clean source image and its class folder name."""

    wnid: str
    path: Path


def default_workers() -> int:
    """Worker processes by default: the CPU cores, at most 8."""
    return max(1, min(8, os.cpu_count() or 1))


def resolve_source(src: Path | None, quiet: bool = False) -> tuple[Path, str]:
    """(validation folder, dataset label); without ``src`` the built-in synthetic set's val/."""
    if src is not None:
        return require_dir(Path(src), "source (--src)"), "generated"
    from gcpbench.data.synthetic import ensure_classification_set

    return ensure_classification_set(quiet=quiet) / "val", "synthetic"


def list_sources(src: Path, per_class: int | None, seed: int) -> tuple[list[str], list[Source]]:
    """Classes and images of an ImageFolder validation tree (``per_class`` seeded per class)."""
    classes = class_names(src)
    if not classes:
        raise GcpbenchError(f"source '{src}' has no class folders (expected SRC/<wnid>/<image>)")
    sources = [Source(c, p) for c in classes
               for p in select_per_class(files_in(src / c, IMAGE_EXTENSIONS), per_class, seed, c)]
    if not sources:
        raise GcpbenchError(f"source '{src}' holds no images")
    return classes, sources


def stable_seed(*parts: Any) -> int:
    """A 32-bit seed from any parts (the same in every process and run)."""
    return int.from_bytes(hashlib.sha1("/".join(map(str, parts)).encode()).digest()[:4], "little")


def temp_sibling(path: Path) -> Path:
    """A hidden temporary name beside ``path`` that keeps its extension (codecs need it)."""
    return path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")


def _init_worker() -> None:
    try:
        import cv2

        cv2.setNumThreads(1)
    except ImportError:  # pragma: no cover - cv2 is a dependency
        pass


def _context():
    """fork on Linux (workers inherit the imports: starting them costs nothing), else spawn."""
    return get_context("fork" if sys.platform.startswith("linux") else "spawn")


def run_tasks(fn: Callable[[Any], tuple[int, list[str]]], tasks: Sequence[Any], weights: Sequence[int],
              workers: int, description: str, quiet: bool) -> list[str]:
    """Run ``fn`` over ``tasks`` (``workers`` processes, 0 = here); returns collected problems.

    ``fn(task)`` returns (units done, problems); the bar advances by the task's weight.
    """
    problems: list[str] = []
    with progress_bar(description, total=sum(weights), enabled=not quiet) as advance:
        if workers <= 0:
            for task, weight in zip(tasks, weights):
                problems += fn(task)[1]
                advance(weight)
            return problems
        with ProcessPoolExecutor(max_workers=workers, mp_context=_context(),
                                 initializer=_init_worker) as pool:
            futures = {pool.submit(fn, task): weight for task, weight in zip(tasks, weights)}
            for future in as_completed(futures):
                problems += future.result()[1]
                advance(futures[future])
    return problems


def write_marker(out: Path, record: dict[str, Any]) -> None:
    """Record what a generated tree holds (written last: its presence means complete)."""
    atomic_write_json(Path(out) / MARKER, record)


def clear_marker(out: Path) -> None:
    """Forget the marker while a tree is being (re)generated."""
    (Path(out) / MARKER).unlink(missing_ok=True)
