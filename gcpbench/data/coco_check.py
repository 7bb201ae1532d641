"""Validation of COCO-format annotation files before anything reads them.

mmdetection and pycocotools fail on a malformed file with a bare ``JSONDecodeError``,
``KeyError``, ``AssertionError`` or ``TypeError`` deep inside a run. :func:`check_annotations`
reads the file once and raises a one-line :class:`GcpbenchError` naming the file and the first
problem: unparsable JSON (with line and column), a missing or mistyped top-level key
(``images``, ``annotations``, ``categories``), an image / annotation / category entry with a
missing or mistyped field (``bbox`` must be 4 finite numbers ``[x, y, w, h]`` with w, h >= 0),
duplicate ids, references to unknown images or categories, and image files absent from the
image folder.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from gcpbench.errors import GcpbenchError

TOP_LEVEL: tuple[str, ...] = ("images", "annotations", "categories")
SPLITS: tuple[str, ...] = ("train", "val")


@dataclass(frozen=True)
class AnnotationStats:
    """What a valid annotation file holds."""

    path: Path
    images: int
    annotations: int
    categories: int


def annotation_file(root: str | os.PathLike, split: str) -> Path:
    """``ROOT/annotations/instances_<split>2017.json`` (the COCO 2017 layout)."""
    return Path(root) / "annotations" / f"instances_{split}2017.json"


def image_folder(root: str | os.PathLike, split: str) -> Path:
    """``ROOT/<split>2017``."""
    return Path(root) / f"{split}2017"


def _type_name(value: Any) -> str:
    names = {str: "a string", int: "an integer", float: "a number", bool: "a boolean", list: "a list",
             dict: "an object", type(None): "null"}
    return names.get(type(value), type(value).__name__)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)) and math.isfinite(value)


def _parse(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise GcpbenchError(f"annotation file '{path}' is not UTF-8 text (is it a COCO .json file?)") from None
    except OSError as exc:
        raise GcpbenchError(f"cannot read annotation file '{path}': {exc.strerror or exc}") from None
    if not text.strip():
        raise GcpbenchError(f"annotation file '{path}' is empty")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        cut = " (the file ends early: truncated?)" if exc.pos >= len(text.rstrip()) else ""
        raise GcpbenchError(f"annotation file '{path}' is not valid JSON: {exc.msg} at line {exc.lineno} "
                            f"column {exc.colno}{cut}") from None


class _Checker:
    """Field checks of one file; the first problem raises, naming the file and the entry."""

    def __init__(self, path: Path):
        self.path = path

    def fail(self, text: str) -> None:
        raise GcpbenchError(f"annotation file '{self.path}': {text}")

    def entries(self, data: Mapping[str, Any], key: str) -> list[Any]:
        value = data.get(key)
        if key not in data:
            self.fail(f"no '{key}' list (a COCO file needs {', '.join(repr(k) for k in TOP_LEVEL)})")
        if not isinstance(value, list):
            self.fail(f"'{key}' must be a list, got {_type_name(value)}")
        return value

    def field(self, entry: Any, where: str, key: str, ok: Callable[[Any], bool], wanted: str,
              required: bool = True) -> Any:
        if not isinstance(entry, dict):
            self.fail(f"{where} must be an object, got {_type_name(entry)}")
        if key not in entry:
            if required:
                self.fail(f"{where} has no '{key}'")
            return None
        value = entry[key]
        if not ok(value):
            self.fail(f"{where}: '{key}' must be {wanted}, got {_type_name(value)} {json.dumps(value)[:40]}")
        return value

    def unique_ids(self, entries: Sequence[dict], what: str) -> set[int]:
        seen: set[int] = set()
        for i, entry in enumerate(entries):
            ident = entry["id"]
            if ident in seen:
                self.fail(f"{what} {i} repeats id {ident}")
            seen.add(ident)
        return seen


def _is_bbox(value: Any) -> bool:
    return (isinstance(value, list) and len(value) == 4 and all(_is_number(v) for v in value)
            and value[2] >= 0 and value[3] >= 0)


def _is_segmentation(value: Any) -> bool:
    """Polygons (a list of coordinate lists) or RLE (an object with ``counts`` and ``size``)."""
    if isinstance(value, dict):
        return "counts" in value and "size" in value
    return isinstance(value, list) and all(isinstance(p, list) and all(_is_number(v) for v in p) for p in value)


def check_annotations(path: str | os.PathLike, images_dir: str | os.PathLike | None = None) -> AnnotationStats:
    """Validate one COCO annotation file (and, with ``images_dir``, that every image file exists)."""
    path = Path(path)
    if not path.is_file():
        state = "is a folder" if path.is_dir() else "does not exist"
        raise GcpbenchError(f"annotation file '{path}' {state} (expected ROOT/annotations/instances_<split>2017.json)")
    data = _parse(path)
    check = _Checker(path)
    if not isinstance(data, dict):
        check.fail(f"the top level must be an object with {', '.join(repr(k) for k in TOP_LEVEL)}, got {_type_name(data)}")
    images, annotations, categories = (check.entries(data, key) for key in TOP_LEVEL)
    positive_int = ("a positive integer", lambda v: _is_int(v) and v > 0)
    for i, image in enumerate(images):
        where = f"images[{i}]"
        check.field(image, where, "id", _is_int, "an integer")
        check.field(image, where, "file_name", lambda v: isinstance(v, str) and v != "", "a file name")
        for key in ("width", "height"):
            check.field(image, where, key, positive_int[1], positive_int[0])
    for i, category in enumerate(categories):
        where = f"categories[{i}]"
        check.field(category, where, "id", _is_int, "an integer")
        check.field(category, where, "name", lambda v: isinstance(v, str) and v != "", "a name")
    image_ids = check.unique_ids(images, "image")
    category_ids = check.unique_ids(categories, "category")
    if not categories:
        check.fail("'categories' is empty: a detector needs at least one category")
    for i, ann in enumerate(annotations):
        where = f"annotations[{i}]"
        check.field(ann, where, "id", _is_int, "an integer")
        image_id = check.field(ann, where, "image_id", _is_int, "an integer")
        category_id = check.field(ann, where, "category_id", _is_int, "an integer")
        check.field(ann, where, "bbox", _is_bbox, "4 numbers (x, y, width, height), width and height >= 0")
        check.field(ann, where, "area", lambda v: _is_number(v) and v >= 0, "a number >= 0")
        check.field(ann, where, "iscrowd", lambda v: v in (0, 1) and not isinstance(v, float), "0 or 1", required=False)
        check.field(ann, where, "segmentation", _is_segmentation, "polygons or an RLE object", required=False)
        if image_id not in image_ids:
            check.fail(f"{where} refers to image_id {image_id}, which is not in 'images'")
        if category_id not in category_ids:
            check.fail(f"{where} refers to category_id {category_id}, which is not in 'categories'")
    check.unique_ids(annotations, "annotation")
    if images_dir is not None:
        _check_image_files(path, Path(images_dir), [image["file_name"] for image in images])
    return AnnotationStats(path, len(images), len(annotations), len(categories))


def _check_image_files(path: Path, folder: Path, names: Sequence[str]) -> None:
    """Every listed image is a file in ``folder`` (one directory listing, not a stat per file)."""
    if not folder.is_dir():
        raise GcpbenchError(f"annotation file '{path}' lists {len(names):,} images but their folder '{folder}' "
                            "does not exist")
    present = {entry.name for entry in os.scandir(folder) if entry.is_file()}
    missing = [name for name in names if name not in present and not (folder / name).is_file()]
    if missing:
        more = f" and {len(missing) - 1:,} more" if len(missing) > 1 else ""
        raise GcpbenchError(f"annotation file '{path}' lists image '{missing[0]}'{more}, missing from '{folder}'")


def check_coco_root(root: str | os.PathLike, splits: Sequence[str] = SPLITS) -> list[AnnotationStats]:
    """Validate ``ROOT/annotations/instances_<split>2017.json`` and its images for each split."""
    return [check_annotations(annotation_file(root, split), image_folder(root, split)) for split in splits]
