"""Tiny fine-grained datasets in their official layouts, generated for tests (never the real data).

Each class has its own colour, so a model can tell the classes apart; images have odd sizes so
the resizes matter. Cars' ``.mat`` files are written with ``scipy.io.savemat`` in the structure
torchvision's ``StanfordCars`` reads: ``annotations`` a 1 x N struct array with ``bbox_x1``,
``bbox_y1``, ``bbox_x2``, ``bbox_y2``, ``class`` (1-based) and ``fname``; ``cars_meta.mat``
holding ``class_names`` (1 x C cell array).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

CLASSES = ("Black footed Albatross", "Laysan Albatross", "Sooty Albatross")
VARIANTS = ("707-320", "Cessna 172", "A320")
CARS = ("AM General Hummer SUV 2000", "Acura RL Sedan 2012", "Audi TT Hatchback 2011")


def _image(path: Path, label: int, index: int, size: tuple[int, int] = (40, 30)) -> None:
    rng = np.random.default_rng(label * 1000 + index)
    colour = np.array([[255, 40, 40], [40, 255, 40], [40, 40, 255]][label % 3], dtype=np.float64)
    pixels = np.clip(colour + rng.normal(0, 20, (size[1], size[0], 3)), 0, 255).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path, quality=95)


def make_cub(root: Path, train_per_class: int = 4, test_per_class: int = 2) -> Path:
    """``root/CUB_200_2011`` with len(CLASSES) classes; returns that folder."""
    folder = root / "CUB_200_2011"
    images, labels, split, classes = [], [], [], []
    image_id = 0
    for label, name in enumerate(CLASSES):
        class_dir = f"{label + 1:03d}.{name.replace(' ', '_')}"
        classes.append(f"{label + 1} {class_dir}")
        for index in range(train_per_class + test_per_class):
            image_id += 1
            rel = f"{class_dir}/{name.replace(' ', '_')}_{index:04d}.jpg"
            _image(folder / "images" / rel, label, index)
            images.append(f"{image_id} {rel}")
            labels.append(f"{image_id} {label + 1}")
            split.append(f"{image_id} {1 if index < train_per_class else 0}")
    for file, lines in (("images.txt", images), ("image_class_labels.txt", labels),
                        ("train_test_split.txt", split), ("classes.txt", classes)):
        (folder / file).write_text("\n".join(lines) + "\n")
    return folder


def make_aircraft(root: Path, train_per_class: int = 4, test_per_class: int = 2) -> Path:
    """``root/fgvc-aircraft-2013b`` (variant level); returns that folder."""
    folder = root / "fgvc-aircraft-2013b"
    data = folder / "data"
    lines: dict[str, list[str]] = {"trainval": [], "test": []}
    number = 1000000
    for label, variant in enumerate(VARIANTS):
        for index in range(train_per_class + test_per_class):
            number += 1
            _image(data / "images" / f"{number}.jpg", label, index, (50, 36))
            lines["trainval" if index < train_per_class else "test"].append(f"{number} {variant}")
    (data / "variants.txt").write_text("\n".join(VARIANTS) + "\n")
    for split, rows in lines.items():
        (data / f"images_variant_{split}.txt").write_text("\n".join(rows) + "\n")
    return folder


def _annotations(names: list[str], classes: list[int]):
    dtype = [("bbox_x1", "O"), ("bbox_y1", "O"), ("bbox_x2", "O"), ("bbox_y2", "O"), ("class", "O"), ("fname", "O")]
    table = np.zeros((1, len(names)), dtype=dtype)
    for i, (name, cls) in enumerate(zip(names, classes)):
        table[0, i] = (np.array([[1]]), np.array([[1]]), np.array([[30]]), np.array([[20]]), np.array([[cls]]), name)
    return table


def make_cars(root: Path, train_per_class: int = 4, test_per_class: int = 2, bad_class: int | None = None) -> Path:
    """``root/stanford_cars``; ``bad_class`` replaces the first test label (1-based in the file)."""
    from scipy.io import savemat

    folder = root / "stanford_cars"
    splits: dict[str, tuple[list[str], list[int]]] = {"train": ([], []), "test": ([], [])}
    for label in range(len(CARS)):
        for index in range(train_per_class + test_per_class):
            split = "train" if index < train_per_class else "test"
            name = f"{len(splits[split][0]) + 1:05d}.jpg"
            _image(folder / f"cars_{split}" / name, label, index, (44, 32))
            splits[split][0].append(name)
            splits[split][1].append(label + 1)
    if bad_class is not None:
        splits["test"][1][0] = bad_class
    (folder / "devkit").mkdir(parents=True, exist_ok=True)
    savemat(folder / "devkit" / "cars_meta.mat", {"class_names": np.array([list(CARS)], dtype=object)})
    savemat(folder / "devkit" / "cars_train_annos.mat", {"annotations": _annotations(*splits["train"])})
    savemat(folder / "cars_test_annos_withlabels.mat", {"annotations": _annotations(*splits["test"])})
    return folder


def make_folder(root: Path, held_out: str = "val", train_per_class: int = 4, test_per_class: int = 2) -> Path:
    """An ImageFolder tree ``root/{train,<held_out>}/<class>/<image>``."""
    for label, name in enumerate(CLASSES):
        for index in range(train_per_class + test_per_class):
            split = "train" if index < train_per_class else held_out
            _image(root / split / name.replace(" ", "_") / f"{index}.jpg", label, index)
    return root
