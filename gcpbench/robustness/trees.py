"""Scanning ImageNet-C / -P style trees: class folders, consistency checks, seeded subsets, the
items to evaluate, and the folders no evaluation reads.

A tree built by ``gcpbench data make-c`` / ``make-p`` carries a ``gcpbench_generated.json``
marker describing what it holds (it is validated against that, not the full-size manifest).

Stray folders: a stray top-level folder (``stray_folder/``) or an unknown severity (``fog/6``)
does not change the numbers (only the known folders are read), but a user who put data there
expects it to be used: they are named in a warning, not ignored silently. The manifest check
skips trees made by ``gcpbench data make-c`` / ``make-p``; the stray scan runs on every tree.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Collection, Hashable, Iterable, Sequence

from gcpbench.data.manifests import subfolders
from gcpbench.data.walk import TreeWalk, image_files
from gcpbench.errors import GcpbenchError, warn
from gcpbench.robustness.benchmarks import ALL_CORRUPTIONS, ALL_PERTURBATIONS, DIFFICULTIES, SEVERITIES, folder_name
from gcpbench.runtime import seed_digest

IMAGE_EXTENSIONS = frozenset({".jpeg", ".jpg", ".png", ".bmp", ".webp", ".ppm", ".tif", ".tiff"})
VIDEO_EXTENSIONS = frozenset({".mp4"})
MARKER = "gcpbench_generated.json"
MAX_NAMED = 5  # stray folders named in a warning


@dataclass(frozen=True, slots=True)
class Item:
    """One file to evaluate: its group (a subset key), path and class label (compact: millions
    of them are held for a full ImageNet-C run)."""

    group: Hashable
    path: str
    label: int


def read_marker(root: Path, allow_unfinished: bool = False) -> dict | None:
    """The generation record of a gcpbench-made tree (None for other trees); a tree whose
    generation did not finish is refused (one line) unless ``allow_unfinished``."""
    path = Path(root) / MARKER
    if not path.is_file():
        return None
    try:
        marker = json.loads(path.read_text())
    except json.JSONDecodeError:
        raise GcpbenchError(f"'{path}' is unreadable; delete it and regenerate the tree") from None
    if marker.get("unfinished") and not allow_unfinished:
        raise GcpbenchError(f"'{root}' is a generated tree whose make-c / make-p run did not finish; rerun that "
                            "command to complete it")
    return marker


def dataset_label(root: Path, downloaded: str) -> str:
    """``downloaded`` (e.g. ``imagenet-c``) for a downloaded tree, the source label for a gcpbench-made one."""
    marker = read_marker(root)
    return downloaded if marker is None else str(marker.get("dataset", "generated"))


def check_against_manifest(name: str, root: Path, only: Sequence[str], classes: Sequence[str]) -> None:
    """Validate a downloaded tree against ``data_manifests/`` for the ``only`` top folders used.

    A tree with the 1000 ImageNet classes is checked against the manifest's names; a tree with
    another class set (a user's subset) only for its layout; gcpbench-made trees are skipped.
    """
    if read_marker(root) is not None:
        return
    from gcpbench.data.manifests import check_tree

    check_tree(name, root, only=sorted(set(only)), structure_only=len(classes) != 1000)


def require_dir(path: Path, what: str) -> Path:
    """``path`` if it is a folder, else a one-line error naming it (missing, or a file)."""
    if path.exists() and not path.is_dir():
        raise GcpbenchError(f"{what} folder '{path}' is a file, not a folder")
    if not path.is_dir():
        raise GcpbenchError(f"{what} folder '{path}' is missing")
    return path


def files_in(folder: Path, extensions: Iterable[str], walk: TreeWalk | None = None) -> list[Path]:
    """The files of a class folder with one of ``extensions`` (case-insensitive), at any depth
    below it, in ImageFolder's order, listed by ``walk`` (:class:`gcpbench.data.walk.TreeWalk`:
    link cycles and files reached twice are refused; hidden files are no data)."""
    return image_files(folder, extensions, walk)


GENERATION_KEYS = ("kind", "dataset", "source_kind", "src", "per_class", "seed", "recipe_version", "geometry_mode")


def generation_identity(root: Path) -> dict | None:
    """What a gcpbench-made tree is (its generation record's source, subset, seed, recipe and
    geometry; not the folders it holds, which a later make-c may extend), None for other trees."""
    marker = read_marker(root)
    return None if marker is None else {key: marker.get(key) for key in GENERATION_KEYS}


def check_same_classes(folders: Sequence[Path]) -> list[str]:
    """The common class list of ``folders``; a folder with another class set is named."""
    if not folders:
        raise GcpbenchError("no folders to evaluate")
    reference = subfolders(folders[0])
    if not reference:
        raise GcpbenchError(f"'{folders[0]}' has no class folders")
    for folder in folders[1:]:
        names = subfolders(folder)
        if names != reference:
            missing = sorted(set(reference) - set(names))
            extra = sorted(set(names) - set(reference))
            detail = "; ".join(part for part in (
                f"missing {', '.join(missing[:3])}{' ...' if len(missing) > 3 else ''}" if missing else "",
                f"extra {', '.join(extra[:3])}{' ...' if len(extra) > 3 else ''}" if extra else "") if part)
            raise GcpbenchError(f"class folders of '{folder}' differ from those of '{folders[0]}' ({detail})")
    return reference


def subset_key(seed: int, class_name: str, file_name: str) -> str:
    """The stable ordering key of a file for seeded per-class subsets (same file, same key)."""
    return seed_digest(seed, class_name, Path(file_name).stem).hex()


def select_per_class(files: Sequence[Path], per_class: int | None, seed: int, class_name: str) -> list[Path]:
    """``per_class`` files chosen by a seeded hash of their names (all when None).

    The choice depends only on (seed, class, file stem), so every corruption, severity and
    perturbation folder of one tree keeps the same images.
    """
    if per_class is None or per_class >= len(files):
        return list(files)
    chosen = sorted(files, key=lambda p: subset_key(seed, class_name, p.name))[:per_class]
    return sorted(chosen)


def label_map(classes: Sequence[str], checkpoint: dict, num_outputs: int, source: str) -> dict[str, int]:
    """Class folder -> model output index.

    With ``checkpoint["classes"]`` (class names in output order) names are matched; otherwise
    the sorted folder order must have as many classes as the model has outputs.
    """
    known = checkpoint.get("classes")
    if isinstance(known, (list, tuple)) and known and all(isinstance(c, str) for c in known):
        index = {name: i for i, name in enumerate(known)}
        missing = [c for c in classes if c not in index]
        if missing:
            raise GcpbenchError(f"{source} has class '{missing[0]}', which the checkpoint was not trained on")
        return {c: index[c] for c in classes}
    if len(classes) != num_outputs:
        raise GcpbenchError(f"{source} has {len(classes)} classes but the model predicts {num_outputs}; "
                            "evaluate on a tree with the classes the model was trained on")
    return {c: i for i, c in enumerate(classes)}


def collect_items(folders: dict[Hashable, Path], classes: Sequence[str], labels: dict[str, int],
                  extensions: Iterable[str], per_class: int | None, seed: int,
                  walk: TreeWalk | None = None) -> tuple[list[Item], dict[Hashable, set[tuple[str, str]]]]:
    """Items of every group folder (``folders``: group -> folder holding the class folders),
    listed by one ``walk`` (a file reached from two groups or classes is refused), and every
    group's ``(class, stem)`` files before any subset is chosen (to find missing ones)."""
    walk = walk or TreeWalk()
    items: list[Item] = []
    present: dict[Hashable, set[tuple[str, str]]] = {}
    for group, folder in folders.items():
        count = 0
        present[group] = set()
        for name in classes:
            files = files_in(folder / name, extensions, walk)
            present[group].update((name, p.stem) for p in files)
            chosen = select_per_class(files, per_class, seed, name)
            items.extend(Item(group, str(path), labels[name]) for path in chosen)
            count += len(chosen)
        if count == 0:
            raise GcpbenchError(f"'{folder}' holds no {'/'.join(sorted(extensions))} files")
    return items, present


def missing_files(title: str, root: Path, present: dict[Hashable, set[tuple[str, str]]],
                  expected: int | None = None) -> int:
    """How many files the group folders lack: each group should hold the same images (every
    corruption and severity, every perturbation, is made from the same clean images), and a
    generated tree ``expected`` (its record's count) per group. Warned about (one line) when any:
    a mean over such a tree is over fewer images than the benchmark's, and is marked so."""
    union = set().union(*present.values()) if present else set()
    full = max(len(union), expected or 0)
    lacking = {group: full - len(files) for group, files in present.items() if len(files) < full}
    if lacking:
        first, count = next(iter(lacking.items()))
        more = f" and {len(lacking) - 1} more folder{'s' if len(lacking) > 2 else ''}" if len(lacking) > 1 else ""
        warn(f"{title} tree '{root}' is missing {sum(lacking.values())} file(s): '{first}' holds {full - count} of "
             f"{full}{more}; its means are over fewer images than the benchmark's and are marked incomplete")
    return sum(lacking.values())


@dataclass(frozen=True)
class TreeItems:
    """What :func:`tree_items` found: the items, the label map and the files the tree lacks."""

    items: list[Item]
    labels: dict[str, int]
    missing: int


def tree_items(title: str, root: Path, folders: dict[Hashable, Path], warn_strays: Callable[[], object],
               checkpoint: dict, num_outputs: int, extensions: Iterable[str], subset: int | None,
               seed: int, walk: TreeWalk | None = None) -> TreeItems:
    """The items, label map and missing-file count of the group ``folders`` (under ``root``) of
    a ``title`` tree (``ImageNet-C``): the folders must share one class list, a downloaded tree
    is checked against its manifest for the top folders used, ``warn_strays()`` names the
    folders no evaluation reads, the classes must match the model (:func:`label_map`), and
    files some groups lack are counted and warned about (:func:`missing_files`)."""
    classes = check_same_classes(list(folders.values()))
    check_against_manifest(title.lower(), root, [f.relative_to(root).parts[0] for f in folders.values()], classes)
    warn_strays()
    labels = label_map(classes, checkpoint, num_outputs, f"{title} tree '{root}'")
    items, present = collect_items(folders, classes, labels, extensions, subset, seed, walk)
    return TreeItems(items, labels, missing_files(title, root, present, expected_files(title, root, classes)))


def expected_files(title: str, root: Path, classes: Sequence[str]) -> int | None:
    """How many files each group folder should hold: a generated tree's record says it; a
    downloaded tree of ImageNet classes holds its manifest's count per class (ImageNet-C: 50,000
    for the 1000 classes, 50 per class); None when nothing says."""
    marker = read_marker(root)
    if marker is not None:
        expected = marker.get("images_per_subset", marker.get("sequences_per_folder"))
        return expected if isinstance(expected, int) else None
    if classes_kind(classes) != IMAGENET:
        return None
    from gcpbench.data.manifests import load_manifest

    each = load_manifest(title.lower()).get("files", {}).get("each")
    return each * len(classes) // 1000 if isinstance(each, int) else None


SYNTHETIC, IMAGENET, OTHER = "synthetic", "imagenet-val", "other"  # what a tree's images were made from


def classes_kind(classes: Sequence[str]) -> str:
    """``imagenet-val`` when every class folder is an ImageNet-1k wnid, else ``other``."""
    from gcpbench.data.manifests import imagenet_classes

    return IMAGENET if set(classes) <= set(imagenet_classes()) else OTHER


def source_kind(root: Path, classes: Sequence[str]) -> str:
    """What a -C / -P tree was made from: its generation record's ``source_kind``; for a
    downloaded tree (ImageNet-C / -P are made from ImageNet's validation set) ``imagenet-val``
    when its class folders are ImageNet wnids, else ``other``."""
    marker = read_marker(root)
    if marker is None:
        return classes_kind(classes)
    return str(marker.get("source_kind") or (SYNTHETIC if marker.get("dataset") == "synthetic" else OTHER))


def stray_folders(root: Path, known_top: Collection[str], levels: dict[str, Collection[str]] | None = None) -> list[str]:
    """Top-level folders of ``root`` not in ``known_top``, then for each ``levels`` key present
    its sub-folders not among the allowed names (``fog/6``); hidden folders are skipped."""
    strays = [name for name in subfolders(root) if name not in known_top]
    for top, allowed in (levels or {}).items():
        if (root / top).is_dir():
            strays += [f"{top}/{name}" for name in subfolders(root / top) if name not in allowed]
    return strays


def _warn(title: str, root: Path, strays: Sequence[str]) -> list[str]:
    if strays:
        more = f" and {len(strays) - MAX_NAMED} more" if len(strays) > MAX_NAMED else ""
        warn(f"{title} tree '{root}' holds folders that are not part of {title} and were ignored: "
             f"{', '.join(strays[:MAX_NAMED])}{more}")
    return list(strays)


def warn_c_strays(root: Path, corruptions: Sequence[str]) -> list[str]:
    """Warn about stray folders of an ImageNet-C tree (unknown corruptions, severities outside 1-5)."""
    severities = {str(s) for s in SEVERITIES}
    return _warn("ImageNet-C", root, stray_folders(root, ALL_CORRUPTIONS, {c: severities for c in corruptions}))


def warn_p_strays(root: Path) -> list[str]:
    """Warn about stray top-level folders of an ImageNet-P tree (not a perturbation [+ _2 / _3])."""
    known = {folder_name(p, d) for p in ALL_PERTURBATIONS for d in DIFFICULTIES}
    return _warn("ImageNet-P", root, stray_folders(root, known))
