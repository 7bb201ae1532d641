"""A tiny COCO-format detection / instance-segmentation set, drawn from a seed.

Layout (like COCO 2017)::

    ROOT/annotations/instances_train2017.json   boxes [x, y, w, h] + polygon masks
    ROOT/annotations/instances_val2017.json
    ROOT/train2017/000000000001.jpg ...
    ROOT/val2017/...

Each image holds 1-3 non-overlapping filled shapes of three categories (rectangle, triangle,
ellipse), each category in its own colour family, so a detector can learn them in a few steps.
"""
from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable

import numpy as np
from PIL import Image, ImageDraw

from gcpbench.data.synthetic import STAMP, swap_into_place, build_once, default_root
from gcpbench.errors import GcpbenchError
from gcpbench.extras import require_modules
from gcpbench.io import atomic_write_json, follow_umask

CATEGORIES: tuple[str, ...] = ("rectangle", "triangle", "ellipse")
VERSION = 1
_BASE_COLOURS = np.array([[200, 60, 50], [60, 190, 70], [60, 90, 210]], dtype=np.float64)


def _shape_polygon(category: int, box: tuple[float, float, float, float], rng: np.random.Generator) -> list[tuple[float, float]]:
    """Vertices of one shape inside ``box = (x0, y0, x1, y1)``."""
    x0, y0, x1, y1 = box
    if category == 0:  # rectangle
        return [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]
    if category == 1:  # triangle with its apex somewhere along the top edge
        apex = x0 + (x1 - x0) * rng.uniform(0.2, 0.8)
        return [(apex, y0), (x1, y1), (x0, y1)]
    cx, cy, rx, ry = (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) / 2, (y1 - y0) / 2
    return [(cx + rx * math.cos(t), cy + ry * math.sin(t)) for t in np.linspace(0, 2 * math.pi, 24, endpoint=False)]


def _place_boxes(rng: np.random.Generator, size: int, count: int) -> list[tuple[float, float, float, float]]:
    """Up to ``count`` non-overlapping boxes (2 px apart) with sides between size/8 and size/2."""
    boxes: list[tuple[float, float, float, float]] = []
    for _ in range(50 * count):
        if len(boxes) == count:
            break
        w, h = rng.uniform(size / 8, size / 2, size=2)
        x0, y0 = rng.uniform(1, size - 1 - w), rng.uniform(1, size - 1 - h)
        box = (float(x0), float(y0), float(x0 + w), float(y0 + h))
        if all(box[2] + 2 < b[0] or b[2] + 2 < box[0] or box[3] + 2 < b[1] or b[3] + 2 < box[1] for b in boxes):
            boxes.append(box)
    return boxes


def _draw_image(rng: np.random.Generator, size: int, image_id: int, first_ann_id: int) -> tuple[Image.Image, list[dict[str, Any]]]:
    """One image and its COCO annotations (area and box as pycocotools computes them)."""
    from pycocotools import mask as mask_utils

    background = rng.integers(20, 90, size=3)
    noise = rng.integers(-12, 13, size=(size, size, 3))
    image = Image.fromarray(np.clip(background + noise, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    annotations = []
    for k, box in enumerate(_place_boxes(rng, size, int(rng.integers(1, 4)))):
        category = int(rng.integers(len(CATEGORIES)))
        polygon = _shape_polygon(category, box, rng)
        colour = tuple(int(c) for c in np.clip(_BASE_COLOURS[category] + rng.integers(-25, 26, size=3), 0, 255))
        draw.polygon(polygon, fill=colour)
        segmentation = [[round(c, 2) for point in polygon for c in point]]
        rle = mask_utils.merge(mask_utils.frPyObjects(segmentation, size, size))  # COCO's own rasterisation
        annotations.append({
            "id": first_ann_id + k, "image_id": image_id, "category_id": category + 1,
            "segmentation": segmentation, "area": float(mask_utils.area(rle)),
            "bbox": [float(v) for v in mask_utils.toBbox(rle)], "iscrowd": 0,
        })
    return image, annotations


def _write_split(root: Path, split: str, num_images: int, size: int, rng: np.random.Generator, first_id: int) -> None:
    folder = root / f"{split}2017"
    folder.mkdir(parents=True, exist_ok=True)
    images, annotations = [], []
    for i in range(num_images):
        image_id = first_id + i
        file_name = f"{image_id:012d}.jpg"
        image, anns = _draw_image(rng, size, image_id, first_ann_id=1 + 10 * image_id)
        image.save(folder / file_name, quality=95)
        images.append({"id": image_id, "file_name": file_name, "width": size, "height": size})
        annotations.extend(anns)
    categories = [{"id": i + 1, "name": name, "supercategory": "shape"} for i, name in enumerate(CATEGORIES)]
    atomic_write_json(root / "annotations" / f"instances_{split}2017.json", {
        "info": {"description": "gcpbench synthetic COCO-format shapes", "version": "1"},
        "licenses": [], "images": images, "annotations": annotations, "categories": categories})


def _params(num_train: int, num_val: int, image_size: int, seed: int) -> dict[str, Any]:
    return {"task": "detection", "version": VERSION, "num_train": num_train, "num_val": num_val,
            "image_size": image_size, "seed": seed}


def _generate(out: Path, params: dict[str, Any]) -> None:
    rng = np.random.default_rng(params["seed"])
    _write_split(out, "train", params["num_train"], params["image_size"], rng, first_id=1)
    _write_split(out, "val", params["num_val"], params["image_size"], rng, first_id=1 + params["num_train"])
    atomic_write_json(out / STAMP, params)


def detection_set_info(root: str | os.PathLike) -> dict[str, Any] | None:
    """The stamp of a synthetic COCO-format tree (None when ``root`` is not one)."""
    try:
        info = json.loads((Path(root) / STAMP).read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return info if isinstance(info, dict) and info.get("task") == "detection" else None


def _build(out: Path, params: dict[str, Any], keep_existing: Callable[[], bool] = lambda: False) -> None:
    """Generate into a temporary sibling of ``out``, then rename it into place."""
    require_modules(("pycocotools",), "the synthetic detection set")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        follow_umask(tmp, folder=True)  # the finished set is this folder: readable as mkdir makes it
        _generate(tmp, params)
        swap_into_place(tmp, out, keep_existing)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def make_detection_set(out: str | os.PathLike, num_train: int = 8, num_val: int = 4, image_size: int = 128, seed: int = 0,
                       overwrite: bool = False) -> Path:
    """Write the synthetic COCO-format set to ``out`` (atomically, deterministic in ``seed``).

    An existing non-empty ``out`` is replaced only with ``overwrite=True``.
    """
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not overwrite:
        raise GcpbenchError(f"'{out}' already exists and is not empty; choose another --out or pass --force")
    if num_train < 1 or num_val < 1 or image_size < 32:
        raise GcpbenchError("the synthetic detection set needs at least 1 train and 1 val image of at least 32 px")
    _build(out, _params(num_train, num_val, image_size, seed))
    return out


def ensure_detection_set(root: str | os.PathLike | None = None, num_train: int = 8, num_val: int = 4,
                         image_size: int = 128, seed: int = 0) -> Path:
    """The synthetic set at ``root`` (``default_root()/coco``), generated once per parameters."""
    root = Path(root) if root is not None else default_root() / "coco"
    params = _params(num_train, num_val, image_size, seed)

    def complete() -> bool:
        return detection_set_info(root) == params

    if complete():
        return root
    return build_once(root, lambda: _build(root, params, keep_existing=complete), complete,
                      "the synthetic detection set")
