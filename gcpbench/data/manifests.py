"""Dataset manifests (``data_manifests/*.json``) and tree checks against them.

A manifest describes a tree level by level (``levels``: each with ``required``, ``optional``
and ``ignore`` folder names, ``"$imagenet"`` standing for the 1000 ImageNet wnids), the image
``extensions``, expected file counts (``files``: counted below every folder at ``depth``,
either ``counts[key]`` or ``each``, and the whole tree's ``total``) and ``required_files``. The package reads them as package
data from ``gcpbench/manifests/``, which in the repository is a link to ``data_manifests/`` (one
copy; the wheel ships the files).

Quick checks list folders only; ``full=True`` also counts image files and flags empty leaves.
``structure_only=True`` checks the layout without the manifest's names and counts: each level
may hold any non-empty subset of the known folder names, and every leaf must hold the same
class folders as the first one (for user-made or synthetic trees).
"""
from __future__ import annotations

import copy
import functools
import json
import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

from gcpbench.data.walk import TreeWalk
from gcpbench.errors import GcpbenchError
from gcpbench.paths import subfolders
from gcpbench.progress import progress_bar

if TYPE_CHECKING:
    from gcpbench.data.fgvc import FgvcData

MANIFEST_FILES: dict[str, str] = {"imagenet": "imagenet.json", "imagenet-c": "imagenet_c.json",
                                  "imagenet-p": "imagenet_p.json", "coco": "coco.json",
                                  "imagenet-v2": "imagenet_v2.json", "imagenet-sketch": "imagenet_sketch.json",
                                  "imagenet-r": "imagenet_r.json", "imagenet-a": "imagenet_a.json",
                                  "cifar10-c": "cifar10_c.json", "cifar100-c": "cifar100_c.json",
                                  "cifar10-p": "cifar10_p.json", "cub": "cub.json", "aircraft": "aircraft.json",
                                  "cars": "cars.json"}
FGVC_NAMES: tuple[str, ...] = ("cub", "aircraft", "cars")  # checked by reading their split files
IMAGEFOLDER = "imagefolder"  # manifest-free check of a ROOT/train, ROOT/val classification tree
NAMES: tuple[str, ...] = (*MANIFEST_FILES, IMAGEFOLDER)
_ALIASES = {"imagenet1k": "imagenet", "imagenet-1k": "imagenet", "ilsvrc2012": "imagenet",
            "imagenetv2": "imagenet-v2", "sketch": "imagenet-sketch",
            "coco2017": "coco", "coco-2017": "coco", "folder": IMAGEFOLDER, "synthetic": IMAGEFOLDER,
            "cub200": "cub", "cub-200-2011": "cub", "fgvc-aircraft": "aircraft", "stanford-cars": "cars"}
MAX_PROBLEMS = 100


def canonical_name(name: str) -> str:
    """``ImageNet_C`` -> ``imagenet-c``; unknown names raise a one-line error listing the valid ones."""
    key = name.strip().lower().replace("_", "-")
    key = _ALIASES.get(key, key)
    if key not in NAMES:
        raise GcpbenchError(f"unknown dataset '{name}': choose one of {', '.join(NAMES)}")
    return key


def manifest_label(name: str) -> str:
    """How messages name a manifest, e.g. ``data_manifests/imagenet_c.json``."""
    return f"data_manifests/{MANIFEST_FILES[canonical_name(name)]}"


@functools.lru_cache(maxsize=None)
def _read(file_name: str) -> dict[str, Any]:
    text = resources.files("gcpbench").joinpath("manifests", file_name).read_text()
    return json.loads(text)


def load_manifest(name: str) -> dict[str, Any]:
    """The manifest of ``name`` (imagenet, imagenet-c, imagenet-p, coco) as a dict.

    ``"$imagenet"`` class references are replaced by the 1000 wnids; ``file`` names the manifest.
    """
    key = canonical_name(name)
    if key == IMAGEFOLDER:
        raise GcpbenchError("'imagefolder' has no manifest: it checks the ROOT/train, ROOT/val structure only")
    manifest = copy.deepcopy(_read(MANIFEST_FILES[key]))
    for level in manifest["levels"]:
        if level.get("required") == "$imagenet":
            level["required"] = imagenet_classes()
            level["classes"] = True
    manifest["file"] = manifest_label(key)
    return manifest


def imagenet_classes() -> list[str]:
    """The 1000 ImageNet-1k wnids in sorted (label) order."""
    return list(_read(MANIFEST_FILES["imagenet"])["classes"])


@dataclass
class CheckReport:
    """The outcome of :func:`check_tree`."""

    name: str
    title: str
    root: Path
    manifest: str
    full: bool
    structure_only: bool = False
    problems: list[str] = field(default_factory=list)
    folders: int = 0  # folders found where the manifest expects them
    top: dict[str, str] = field(default_factory=dict)  # first-level folder -> status
    images: dict[str, int] = field(default_factory=dict)  # full mode: key -> files found
    expected: dict[str, int | None] = field(default_factory=dict)  # full mode: key -> manifest count
    truncated: bool = False
    manifest_free: bool = False  # the imagefolder check: problems already name the tree
    files_found: int | None = None  # a manifest of files only (no folder levels): how many are present

    @property
    def ok(self) -> bool:
        return not self.problems

    def _where(self) -> str:
        suffix = ", structure only" if self.structure_only else ""
        return f"checked against {self.manifest}{suffix}"

    def summary(self) -> str:
        """One line: the first problem (and how many more), or what was checked."""
        head = f"{self.title} tree {self.root}"
        if self.problems and self.manifest_free:
            return self.problems[0]
        if self.problems:
            more = len(self.problems) - 1
            extra = f"; {more}{'+' if self.truncated else ''} more problem{'s' if more != 1 else ''}" if more else ""
            return f"{head}: {self.problems[0]} ({self._where()}{extra})"
        what = f"{self.folders:,} folders" if self.files_found is None else f"{self.files_found} files"
        if self.full and self.files_found is None:
            what += f", {sum(self.images.values()):,} files"
        return f"{head}: OK, {what} ({self._where()})"

    def raise_if_failed(self) -> CheckReport:
        """Raise the one-line summary as a GcpbenchError when there is a problem."""
        if self.problems:
            raise GcpbenchError(self.summary())
        return self


class _TooManyProblems(Exception):
    """Stops a walk after MAX_PROBLEMS problems."""


class _Walk:
    """Depth-first walk of a tree against the manifest's levels."""

    def __init__(self, manifest: dict[str, Any], report: CheckReport, only: Sequence[str] | None,
                 tick: Callable[[], None]):
        self.levels = manifest["levels"]
        self.extensions = tuple(e.lower() for e in manifest.get("extensions", ()))
        self.count_depth = manifest.get("files", {}).get("depth")
        self.report, self.only, self.tick = report, only, tick
        self.reference_classes: list[str] | None = None
        self.tree = TreeWalk()  # every folder and file once: link cycles and doubles are problems

    def entered(self, path: Path) -> bool:
        """Register ``path`` with the tree walk; a folder reached twice is a problem (False)."""
        try:
            self.tree.enter(path)
        except GcpbenchError as exc:
            self.problem(str(exc))
            return False
        return True

    def problem(self, text: str) -> None:
        if len(self.report.problems) >= MAX_PROBLEMS:
            self.report.truncated = True
            raise _TooManyProblems
        self.report.problems.append(text)

    def _expected(self, depth: int, present: list[str]) -> tuple[list[str], list[str], set[str]]:
        """(required, optional, ignored) folder names at ``depth``."""
        level = self.levels[depth]
        required, optional = list(level.get("required", [])), list(level.get("optional", []))
        ignore = set(level.get("ignore", []))
        if depth == 0 and self.only is not None:
            return list(self.only), [], set(present) - set(self.only)
        if self.report.structure_only:
            if level.get("classes"):
                if self.reference_classes is None:
                    self.reference_classes = present
                return list(self.reference_classes), [], ignore
            return [], required + optional, ignore
        return required, optional, ignore

    def walk(self, path: Path, rel: str = "", depth: int = 0) -> None:
        present = subfolders(path)
        required, optional, ignore = self._expected(depth, present)
        known = set(required) | set(optional) | ignore
        have = set(present)
        level = self.levels[depth]
        if not (have & (set(required) | set(optional))) and not required:
            self.problem(f"no {level['name']} folders in '{rel or '.'}'")
            return
        if depth == 0 and required and not (have & set(required)) and len(present) == 1:
            hint = f" (is the tree one level down, in '{present[0]}'?)"
        else:
            hint = ""
        for name in required + [o for o in optional if o in have]:
            child = f"{rel}/{name}" if rel else name
            if name not in have:
                if depth == 0:
                    self.report.top[name] = "missing"
                self.problem(f"missing folder '{child}'{hint}")
                continue
            if not self.entered(path / name):
                continue
            self.report.folders += 1
            self.tick()
            before = len(self.report.problems)
            if depth == 0:
                self.report.top[name] = "incomplete"  # until its walk finishes without problems
            if depth + 1 < len(self.levels):
                self.walk(path / name, child, depth + 1)
            elif self.report.full:
                self.count_leaf(path / name, child)
            if depth == 0 and len(self.report.problems) == before:
                is_optional = name not in required and not self.report.structure_only
                self.report.top[name] = "ok (optional)" if is_optional else "ok"
        for name in present:
            if name not in known:
                child = f"{rel}/{name}" if rel else name
                if depth == 0:
                    self.report.top[name] = "extra"
                note = level.get("hints", {}).get(name)
                self.problem(f"extra folder '{child}'" + (f" ({note})" if note else ""))

    def count_leaf(self, path: Path, rel: str) -> None:
        try:
            found = sum(1 for _ in self.tree.iter_files(path, self.extensions))
        except GcpbenchError as exc:
            return self.problem(str(exc))
        if found == 0:
            self.problem(f"empty folder '{rel}': no {'/'.join(self.extensions)} files")
        if self.count_depth:
            key = "/".join(rel.split("/")[: self.count_depth])
            self.report.images[key] = self.report.images.get(key, 0) + found


def _compare_counts(manifest: dict[str, Any], walk: _Walk, report: CheckReport) -> None:
    files = manifest.get("files", {})
    counts, each = files.get("counts", {}), files.get("each")
    for key in list(report.images):  # walk (manifest) order
        expected = None if report.structure_only else counts.get(key, each)
        report.expected[key] = expected
        if expected is not None and report.images[key] != expected:
            walk.problem(f"'{key}' holds {report.images[key]:,} files, expected {expected:,}")
    total, found = files.get("total"), sum(report.images.values())
    if total is not None and not report.structure_only and walk.only is None and found != total:
        walk.problem(f"the tree holds {found:,} files, expected {total:,}")


def _check_imagefolder(root: Path, full: bool, report: CheckReport) -> CheckReport:
    from torchvision.datasets.folder import IMG_EXTENSIONS

    from gcpbench.data.folders import check_classification_root

    walk = TreeWalk()

    try:
        tree = check_classification_root(root)
    except GcpbenchError as exc:
        report.problems.append(str(exc))
        return report
    report.folders = len(tree.classes) * len(tree.splits)
    for split in tree.splits:
        report.top[split] = "ok"
        if full:
            try:
                report.images[split] = sum(1 for _ in walk.iter_files(root / split, IMG_EXTENSIONS))
            except GcpbenchError as exc:
                report.problems.append(str(exc))
                return report
            report.expected[split] = None
    return report


def _check_coco_annotations(root: Path, only: Sequence[str] | None, report: CheckReport) -> None:
    """Parse and validate the annotation files of a COCO tree whose folders are in place."""
    from gcpbench.data.coco_check import SPLITS, check_coco_root

    splits = [s for s in SPLITS if only is None or f"{s}2017" in only]
    try:
        check_coco_root(root, splits)
    except GcpbenchError as exc:
        report.problems.append(str(exc))


def is_official_fgvc(data: FgvcData) -> bool:
    """True when ``data`` has the split sizes and class count of its official release (never for
    an ImageFolder tree): only then are its numbers comparable with published ones."""
    if data.dataset not in FGVC_NAMES:
        return False
    manifest = load_manifest(data.dataset)
    counts = manifest["files"]["counts"]
    return (len(data.train), len(data.test), len(data.classes)) == (counts["train"], counts["test"],
                                                                     manifest["num_classes"])


def _check_fgvc(key: str, manifest: dict[str, Any], root: Path, structure_only: bool,
                report: CheckReport) -> CheckReport:
    """CUB / Aircraft / Cars: read the split files (layout, labels, listed images), then compare
    the split sizes and class count with the manifest's (unless ``structure_only``)."""
    from gcpbench.data.fgvc import read_dataset

    try:
        data = read_dataset(key, root)
    except GcpbenchError as exc:
        report.problems.append(str(exc))
        report.manifest_free = True  # the reader's line names the dataset and the file
        return report
    counts = manifest["files"]["counts"]
    found = {"train": len(data.train), "test": len(data.test)}
    for split, count in found.items():
        report.top[split] = "ok"
        report.images[split], report.expected[split] = count, None if structure_only else counts[split]
        if not structure_only and count != counts[split]:
            report.top[split] = "incomplete"
            report.problems.append(f"the {split} split lists {count:,} images, expected {counts[split]:,}")
    if not structure_only and len(data.classes) != manifest["num_classes"]:
        report.problems.append(f"{len(data.classes)} classes, expected {manifest['num_classes']}")
    report.files_found = sum(found.values())
    report.full = True  # the split files were read: the counts are known
    return report


def check_tree(name: str, root: str | os.PathLike, full: bool = False, only: Sequence[str] | None = None,
               structure_only: bool = False, raise_on_error: bool = True, progress: bool = False) -> CheckReport:
    """Check the tree at ``root`` against manifest ``name``; the report lists problems in walk order.

    ``only`` restricts the first level (e.g. some corruptions, or ``["val"]``), each then
    required. With ``raise_on_error`` the first problem raises a one-line GcpbenchError naming
    the folder and the manifest, e.g. ``ImageNet-C tree /x: missing folder 'fog/3' (checked
    against data_manifests/imagenet_c.json)``.
    """
    key = canonical_name(name)
    root = Path(root)
    if key == IMAGEFOLDER:
        report = CheckReport(key, "ImageFolder", root, "the ImageFolder layout ROOT/{train,val}/<class>/<image>",
                             full, manifest_free=True)
        report = _check_imagefolder(root, full, report)
        return report.raise_if_failed() if raise_on_error else report
    manifest = load_manifest(key)
    report = CheckReport(key, manifest["title"], root, manifest["file"], full, structure_only)
    if not root.is_dir():
        state = "is a file, not a folder" if root.exists() else "folder does not exist"
        report.problems.append(f"{state} (expected layout {manifest['layout']})")
        return report.raise_if_failed() if raise_on_error else report
    if key in FGVC_NAMES:
        report = _check_fgvc(key, manifest, root, structure_only, report)
        return report.raise_if_failed() if raise_on_error else report
    if only is not None and not manifest["levels"]:
        raise GcpbenchError(f"--only selects folders; {manifest['title']} is a set of files ({manifest['file']})")
    if only is not None:
        first = manifest["levels"][0]
        known = set(first.get("required", [])) | set(first.get("optional", []))
        unknown = [n for n in only if n not in known]
        if unknown:
            raise GcpbenchError(f"'{unknown[0]}' is not a {first['name']} of {manifest['title']} "
                                f"({manifest['file']})")
    with progress_bar(f"checking {manifest['title']}", None, progress, unit="folders") as tick:
        walk = _Walk(manifest, report, only, tick)
        try:
            for rel in manifest.get("required_files", []):
                if not (root / rel).is_file():
                    walk.problem(f"missing file '{rel}'")
            if walk.levels:
                walk.walk(root)
            else:  # a set of files (e.g. CIFAR-10-C's .npy arrays)
                names = [*manifest.get("required_files", []), *manifest.get("optional_files", [])]
                report.files_found = sum((root / name).is_file() for name in names)
            if full:
                _compare_counts(manifest, walk, report)
        except _TooManyProblems:
            pass
    if key == "coco" and report.ok:
        _check_coco_annotations(root, only, report)
    return report.raise_if_failed() if raise_on_error else report
