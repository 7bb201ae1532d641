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


def files_in(folder: Path, extensions: Iterable[str]) -> list[Path]:
    """Sorted files of a class folder with one of ``extensions`` (case-insensitive). Hidden files
    are no data: a killed ``make-c`` leaves ``.<name>.<pid>.tmp.JPEG``, macOS ``._<name>``."""
    extensions = frozenset(extensions)
    return sorted(p for p in folder.iterdir()
                  if p.is_file() and p.suffix.lower() in extensions and not p.name.startswith("."))


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
                  extensions: Iterable[str], per_class: int | None, seed: int) -> list[Item]:
    """Items of every group folder (``folders``: group -> folder holding the class folders)."""
    items: list[Item] = []
    for group, folder in folders.items():
        count = 0
        for name in classes:
            chosen = select_per_class(files_in(folder / name, extensions), per_class, seed, name)
            items.extend(Item(group, str(path), labels[name]) for path in chosen)
            count += len(chosen)
        if count == 0:
            raise GcpbenchError(f"'{folder}' holds no {'/'.join(sorted(extensions))} files")
    return items


def tree_items(title: str, root: Path, folders: dict[Hashable, Path], warn_strays: Callable[[], object],
               checkpoint: dict, num_outputs: int, extensions: Iterable[str], subset: int | None,
               seed: int) -> tuple[list[Item], dict[str, int]]:
    """The items and label map of the group ``folders`` (under ``root``) of a ``title`` tree
    (``ImageNet-C``): the folders must share one class list, a downloaded tree is checked against
    its manifest for the top folders used, ``warn_strays()`` names the folders no evaluation
    reads, and the classes must match the model (:func:`label_map`)."""
    classes = check_same_classes(list(folders.values()))
    check_against_manifest(title.lower(), root, [f.relative_to(root).parts[0] for f in folders.values()], classes)
    warn_strays()
    labels = label_map(classes, checkpoint, num_outputs, f"{title} tree '{root}'")
    return collect_items(folders, classes, labels, extensions, subset, seed), labels


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
