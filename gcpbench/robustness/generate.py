"""What ``data make-c`` and ``data make-p`` share: source listing, per-file atomic writes,
seeds, parallel workers with a progress bar, and the ``gcpbench_generated.json`` marker."""
from __future__ import annotations

import contextlib
import logging
import os
import re
import signal
import sys
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from gcpbench.children import die_with_parent
from gcpbench.data.manifests import subfolders
from gcpbench.data.walk import TreeWalk
from gcpbench.errors import GcpbenchError
from gcpbench.io import atomic_write_json
from gcpbench.progress import progress_bar
from gcpbench.runtime import pool_workers
from gcpbench.robustness.images import NATIVE, OFFICIAL
from gcpbench.robustness.trees import (
    IMAGE_EXTENSIONS, IMAGENET, MARKER, OTHER, SYNTHETIC, classes_kind, files_in, read_marker, require_dir,
    select_per_class,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Source:
    """One clean source image and its class folder name."""

    wnid: str
    path: Path


SOURCE_LABELS = {SYNTHETIC: "synthetic", IMAGENET: "generated from ImageNet val", OTHER: "generated from another tree"}


def resolve_source(src: Path | None, quiet: bool = False) -> Path:
    """The validation folder: ``src``, else the built-in synthetic set's val/."""
    if src is not None:
        return require_dir(Path(src), "source (--src)")
    from gcpbench.data.synthetic import ensure_classification_set

    return ensure_classification_set(quiet=quiet) / "val"


def list_sources(src: Path, per_class: int | None, seed: int) -> tuple[list[str], list[Source]]:
    """Classes and images of an ImageFolder validation tree (``per_class`` seeded per class)."""
    classes = subfolders(src)
    if not classes:
        raise GcpbenchError(f"source '{src}' has no class folders (expected SRC/<wnid>/<image>)")
    walk = TreeWalk()
    sources = []
    for c in classes:
        files = files_in(src / c, IMAGE_EXTENSIONS, walk)
        _require_unique_stems(files)
        sources += [Source(c, p) for p in select_per_class(files, per_class, seed, c)]
    if not sources:
        raise GcpbenchError(f"source '{src}' holds no images")
    return classes, sources


def _require_unique_stems(files: Sequence[Path]) -> None:
    """Two sources of one class with the same stem would write the same output file: refused."""
    seen: dict[str, Path] = {}
    for path in files:
        if path.stem in seen:
            raise GcpbenchError(f"sources '{seen[path.stem]}' and '{path}' share the name '{path.stem}': their "
                                "generated files would overwrite each other; rename one")
        seen[path.stem] = path


TEMP_NAME = re.compile(r"^\..+\.\d+\.tmp\.[^.]+$")  # what temp_sibling names


def temp_sibling(path: Path) -> Path:
    """A hidden temporary name beside ``path`` that keeps its extension (codecs need it); hidden
    files are never read as data (:func:`gcpbench.robustness.trees.files_in`)."""
    return path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")


def remove_stale_temp_siblings(out: Path) -> int:
    """Delete the temporary files a killed ``make-c`` / ``make-p`` left in the tree ``out`` (call
    it holding :func:`generating`'s lock); returns how many."""
    removed = 0
    for path in Path(out).rglob(".*.tmp.*"):
        if TEMP_NAME.match(path.name) and path.is_file():
            path.unlink(missing_ok=True)
            removed += 1
    if removed:
        log.info("removed %d unfinished temporary file(s) in %s left by an interrupted run", removed, out)
    return removed


@contextlib.contextmanager
def generating(out: Path) -> Iterator[None]:
    """One generator at a time writes the tree ``out`` (a lock file in it, deleted when done);
    what a killed one left half-written is deleted first."""
    from gcpbench.runlock import writer_lock

    with writer_lock(out, "generate", remove=True):
        remove_stale_temp_siblings(out)
        yield


def _init_worker() -> None:
    """A pool worker: ends with the forkserver that forked it, which ends with the command (a
    worker that loses its parent before this call ends at its next task: its queue is closed),
    so a killed command leaves no worker behind holding its pipes; Ctrl-C is the command's to
    handle (it terminates the pool); one OpenCV thread."""
    die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    import cv2  # imported by the worker alone: the parent's import stays light

    cv2.setNumThreads(1)


def _call(task: tuple[int, Callable[[Any], tuple[int, list[str]]], Any]) -> tuple[int, tuple[int, list[str]]]:
    """Run one task in a worker; its index comes back with the result."""
    index, fn, argument = task
    return index, fn(argument)


def _context():
    """forkserver on Linux, else spawn. Not fork: a child forked from a process whose OpenCV
    thread pool has run deadlocks in ``cv2.setNumThreads`` (seen in the test suite). The
    server preloads the generators, so each worker still starts without importing them."""
    if not sys.platform.startswith("linux"):
        return get_context("spawn")
    context = get_context("forkserver")
    context.set_forkserver_preload(["gcpbench.robustness.make_c", "gcpbench.robustness.make_p"])
    return context


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
        pool = _context().Pool(workers, initializer=_init_worker)
        try:
            for index, (_, found) in pool.imap_unordered(_call, [(i, fn, t) for i, t in enumerate(tasks)]):
                problems += found
                advance(weights[index])
            pool.close()
        except BaseException:  # Ctrl-C, SIGTERM, a failed task: no worker goes on without the command
            pool.terminate()
            raise
        finally:
            pool.join()
    return problems



def write_marker(out: Path, record: dict[str, Any]) -> None:
    """Record what a generated tree holds (written last: its presence means complete)."""
    atomic_write_json(Path(out) / MARKER, record)


RECIPE_VERSION = 3  # bump when a recipe changes: a tree of another generator is never topped up
# 3: every source image gets the official geometry (small ones were cropped at their own size);
#    native size only on request (--native-size), recorded as geometry_mode


def check_same_generation(out: Path, previous: dict[str, Any], params: dict[str, Any]) -> None:
    """Refuse (one line) to add files to a tree made with another source, subset, seed or
    generator, or to a folder with files but no generation record: the tree would mix recipes."""
    out = Path(out)
    if not previous:
        if out.is_dir() and any(not p.name.startswith(".lock-") for p in out.iterdir()):
            raise GcpbenchError(f"'{out}' is not empty and holds no {MARKER}: generate into a new or empty --out")
        return
    differs = [k for k, v in params.items() if previous.get(k) != v]
    if differs:
        was = ", ".join(f"{k} {previous.get(k)}" for k in differs)
        now = ", ".join(f"{k} {params[k]}" for k in differs)
        raise GcpbenchError(f"'{out}' holds a tree made with {was}; files made with {now} would be mixed with "
                            "them: choose another --out or delete the tree")


@dataclass(frozen=True)
class GeneratedTree:
    """What one ``make-c`` / ``make-p`` run did: its source, the previous marker, problems."""

    src: Path
    kind: str  # what the images were made from: trees.SYNTHETIC, IMAGENET or OTHER
    classes: list[str]
    sources: list[Source]
    native: bool  # native-size geometry (the built-in synthetic set, asked for explicitly)
    previous: dict[str, Any]
    same_source: bool  # the previous marker came from the same source, per_class and seed
    problems: list[str]

    def record(self, kind: str, per_class: int | None, seed: int, **fields: Any) -> dict[str, Any]:
        """The marker record: the shared fields, then ``fields``, then the problems."""
        from gcpbench.robustness.images import geometry_note

        return {"kind": kind, "dataset": SOURCE_LABELS[self.kind], "source_kind": self.kind, "src": str(self.src),
                "classes": self.classes, "per_class": per_class, "seed": seed, "recipe_version": RECIPE_VERSION,
                "geometry_mode": NATIVE if self.native else OFFICIAL, "geometry": geometry_note(self.native, kind),
                **fields, "problems": self.problems}

    def previously(self, key: str) -> set[Any]:
        """The values of ``key`` an earlier run on the same source wrote (kept on a rerun)."""
        return set(self.previous.get(key, [])) if self.same_source else set()


def generate_tree(fn: Callable[[Any], tuple[int, list[str]]], jobs: tuple[Any, ...], src: Path | None, out: Path,
                  per_class: int | None, seed: int, workers: int | None, description: str,
                  quiet: bool, native: bool = False) -> GeneratedTree:
    """Run ``fn`` on every source image with ``jobs`` (its tasks: path, out, wnid, jobs, seed,
    native), the marker cleared while it runs; the caller writes the new marker. ``native``
    (native-size geometry) is for the built-in synthetic set only (the cached one, or a set made
    by ``data synth``); every other source image, whatever its size, gets the official
    Resize(256) + CenterCrop(224)."""
    from gcpbench.data.synthetic import synthetic_info

    src_folder = resolve_source(src, quiet)
    builtin = src is None or synthetic_info(src_folder.parent) is not None
    if native and not builtin:
        raise GcpbenchError(f"--native-size applies to the built-in synthetic set only (no --src, or the val/ folder "
                            f"of a set made by `gcpbench data synth`), not '{src_folder}': other sources get the "
                            "official geometry, Resize(256) + CenterCrop(224), for every image")
    classes, sources = list_sources(src_folder, per_class, seed)
    kind = SYNTHETIC if builtin else classes_kind(classes)
    previous = read_marker(out, allow_unfinished=True) or {}
    params = {"src": str(src_folder), "per_class": per_class, "seed": seed, "recipe_version": RECIPE_VERSION,
              "geometry_mode": NATIVE if native else OFFICIAL}
    check_same_generation(out, previous, params)
    out.mkdir(parents=True, exist_ok=True)
    write_marker(out, {**previous, **params, "unfinished": True})  # the caller's record replaces it at the end
    tasks = [(str(x.path), str(out), x.wnid, jobs, seed, native) for x in sources]
    problems = run_tasks(fn, tasks, [len(jobs)] * len(tasks), pool_workers() if workers is None else workers,
                         description, quiet)
    return GeneratedTree(src_folder, kind, classes, sources, native, previous, bool(previous), problems)
