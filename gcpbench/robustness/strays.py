"""Folders in an ImageNet-C / -P tree that no evaluation reads: named in a warning, not ignored silently.

A stray top-level folder (``stray_folder/``) or an unknown severity (``fog/6``) does not change
the numbers (only the known folders are read), but a user who put data there expects it to be
used. The manifest check skips trees made by ``gcpbench data make-c`` / ``make-p``; this scan
runs on every tree.
"""
from __future__ import annotations

from pathlib import Path
from typing import Collection, Sequence

from gcpbench.data.manifests import subfolders
from gcpbench.errors import warn
from gcpbench.robustness.baselines import ALL_CORRUPTIONS, ALL_PERTURBATIONS, DIFFICULTIES, SEVERITIES, folder_name

MAX_NAMED = 5


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
