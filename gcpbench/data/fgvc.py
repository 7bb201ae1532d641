"""The fine-grained datasets in their official layouts, read into ``(path, label)`` lists.

* ``cub``: CUB-200-2011 as released (``CUB_200_2011/``: ``images/``, ``images.txt``,
  ``image_class_labels.txt``, ``train_test_split.txt``, ``classes.txt``); labels are 1-based in
  the files, 0-based here.
* ``aircraft``: FGVC-Aircraft 2013b at the variant level (``trainval`` / ``test``), read by
  torchvision's :class:`~torchvision.datasets.FGVCAircraft`, which finds the dataset in a folder
  named ``fgvc-aircraft-2013b``.
* ``cars``: Stanford Cars (``cars_train/``, ``cars_test/``, ``devkit/cars_meta.mat``,
  ``devkit/cars_train_annos.mat``, ``cars_test_annos_withlabels.mat``), read by torchvision's
  :class:`~torchvision.datasets.StanfordCars` (scipy reads the ``.mat`` files), which finds the
  dataset in a folder named ``stanford_cars``.
* ``folder``: any ImageFolder tree with ``train/`` and ``val/`` (or ``test/``).

ROOT is the folder the archive extracts to (``CUB_200_2011``, ``fgvc-aircraft-2013b``,
``stanford_cars``) or the folder holding it. Every problem is one line naming the file.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from gcpbench.errors import GcpbenchError
from gcpbench.runtime import first_line

FGVC_DATASETS: tuple[str, ...] = ("cub", "aircraft", "cars")
DATASETS: tuple[str, ...] = (*FGVC_DATASETS, "folder")
TITLES: dict[str, str] = {"cub": "CUB-200-2011", "aircraft": "FGVC-Aircraft", "cars": "Stanford Cars",
                          "folder": "ImageFolder"}
FOLDERS: dict[str, str] = {"cub": "CUB_200_2011", "aircraft": "fgvc-aircraft-2013b", "cars": "stanford_cars"}
CUB_FILES: tuple[str, ...] = ("images.txt", "image_class_labels.txt", "train_test_split.txt", "classes.txt")
AIRCRAFT_FILES: tuple[str, ...] = ("data/variants.txt", "data/images_variant_trainval.txt",
                                   "data/images_variant_test.txt")
CARS_FILES: tuple[str, ...] = ("devkit/cars_meta.mat", "devkit/cars_train_annos.mat",
                               "cars_test_annos_withlabels.mat")

Sample = tuple[str, int]


@dataclass(frozen=True)
class FgvcData:
    """One dataset's two splits as ``(absolute path, 0-based label)`` lists and its class names."""

    dataset: str  # cub | aircraft | cars | folder
    root: Path  # the dataset's own folder (CUB_200_2011, fgvc-aircraft-2013b, stanford_cars, the tree)
    classes: list[str]
    train: list[Sample]
    test: list[Sample]
    test_split: str = "test"  # the evaluated split's name (``val`` for an ImageFolder tree with val/)

    @property
    def title(self) -> str:
        return TITLES[self.dataset]

    def fingerprint(self) -> str:
        """SHA-256 of what defines the data: dataset, class names, and every split's files
        (relative to the root) with their labels. Image contents are not read."""
        def rel(samples: list[Sample]) -> list[tuple[str, int]]:
            return [(os.path.relpath(path, self.root), label) for path, label in samples]

        text = json.dumps({"dataset": self.dataset, "classes": self.classes, "train": rel(self.train),
                           "test": rel(self.test)}, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()



def dataset_folder(name: str, root: str | os.PathLike) -> Path:
    """The dataset's own folder: ``root`` itself, or the official folder inside it."""
    root = Path(root)
    if not root.exists():
        raise GcpbenchError(f"{TITLES[name]} root '{root}' does not exist")
    if not root.is_dir():
        raise GcpbenchError(f"{TITLES[name]} root '{root}' is a file, not a folder")
    inner = root / FOLDERS[name]
    return inner if root.name != FOLDERS[name] and inner.is_dir() else root


def _require_files(name: str, folder: Path, files: tuple[str, ...], folders: tuple[str, ...]) -> None:
    layout = ", ".join([*(f + "/" for f in folders), *files])
    for rel in folders:
        if not (folder / rel).is_dir():
            raise GcpbenchError(f"{TITLES[name]} root '{folder}' has no {rel}/ folder (expected the official layout: "
                                f"{layout})")
    for rel in files:
        if not (folder / rel).is_file():
            raise GcpbenchError(f"{TITLES[name]} root '{folder}' has no {rel} (expected the official layout: {layout})")


def _require_images(name: str, samples: list[Sample], source: str) -> None:
    for path, _ in samples:
        if not os.path.isfile(path):
            raise GcpbenchError(f"{TITLES[name]}: {source} lists '{path}', which does not exist")


def _require_labels(name: str, samples: list[Sample], classes: list[str], source: str) -> None:
    for path, label in samples:
        if not 0 <= label < len(classes):
            raise GcpbenchError(f"{TITLES[name]}: {source} gives '{Path(path).name}' label {label + 1}, outside the "
                                f"{len(classes)} classes 1..{len(classes)}")


# ------------------------------------------------------------------------------ CUB-200-2011

def _table(path: Path, columns: int) -> dict[str, list[str]]:
    """``id value...`` lines of a CUB list file, keyed by id."""
    rows: dict[str, list[str]] = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split(maxsplit=columns - 1)
        if len(parts) != columns:
            raise GcpbenchError(f"CUB-200-2011: {path.name} line {number} is not '<id> <value>': {line[:60]!r}")
        if parts[0] in rows:
            raise GcpbenchError(f"CUB-200-2011: {path.name} line {number} repeats image id {parts[0]}")
        rows[parts[0]] = parts[1:]
    return rows


def _integer(text: str, file: str, image_id: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise GcpbenchError(f"CUB-200-2011: {file} gives image {image_id} the value {text!r}, not a number") from None


def read_cub(root: str | os.PathLike) -> FgvcData:
    """CUB-200-2011 from its official lists (labels 1..200 in the files)."""
    folder = dataset_folder("cub", root)
    _require_files("cub", folder, CUB_FILES, ("images",))
    classes = [v[0] for v in _table(folder / "classes.txt", 2).values()]
    images = _table(folder / "images.txt", 2)
    labels = _table(folder / "image_class_labels.txt", 2)
    splits = _table(folder / "train_test_split.txt", 2)
    train: list[Sample] = []
    test: list[Sample] = []
    for image_id, (rel,) in images.items():
        for file, table in (("image_class_labels.txt", labels), ("train_test_split.txt", splits)):
            if image_id not in table:
                raise GcpbenchError(f"CUB-200-2011: image {image_id} ('{rel}') of images.txt is missing from {file}")
        label = _integer(labels[image_id][0], "image_class_labels.txt", image_id) - 1
        is_train = _integer(splits[image_id][0], "train_test_split.txt", image_id)
        if is_train not in (0, 1):
            raise GcpbenchError(f"CUB-200-2011: train_test_split.txt gives image {image_id} the value {is_train}; "
                                "expected 1 (train) or 0 (test)")
        (train if is_train else test).append((str(folder / "images" / rel), label))
    for samples in (train, test):
        _require_labels("cub", samples, classes, "image_class_labels.txt")
        _require_images("cub", samples, "images.txt")
    return FgvcData("cub", folder, classes, train, test)


# ------------------------------------------------------------------------------ torchvision readers

def _torchvision_parent(name: str, root: str | os.PathLike, files: tuple[str, ...], folders: tuple[str, ...]) -> Path:
    """The folder to hand torchvision: the parent of the dataset folder, which must carry its
    official name (torchvision finds the dataset by that name)."""
    folder = dataset_folder(name, root)
    _require_files(name, folder, files, folders)
    if folder.name != FOLDERS[name]:
        raise GcpbenchError(f"torchvision's {TITLES[name]} reader finds the dataset in a folder named "
                            f"{FOLDERS[name]}; '{folder}' holds it under another name: rename it or link it "
                            f"(ln -s {folder.resolve()} SOMEWHERE/{FOLDERS[name]}) and pass that")
    return folder.parent


def _torchvision(name: str, make: Callable[[], object], errors: tuple[type[Exception], ...] = ()) -> object:
    """``make()``, a torchvision reader; its errors (and ``errors``) as one line."""
    try:
        return make()
    except GcpbenchError:
        raise
    except KeyError as exc:
        raise GcpbenchError(f"{TITLES[name]}: a label file names class {exc}, which is not in the class list") from None
    except (OSError, ValueError, RuntimeError, TypeError, IndexError, *errors) as exc:
        raise GcpbenchError(f"{TITLES[name]}: torchvision cannot read the dataset: {first_line(exc)}") from None


def read_aircraft(root: str | os.PathLike) -> FgvcData:
    """FGVC-Aircraft 2013b, variant level: ``trainval`` (6,667) and ``test`` (3,333)."""
    from torchvision.datasets import FGVCAircraft

    parent = _torchvision_parent("aircraft", root, AIRCRAFT_FILES, ("data/images",))
    splits = {split: _torchvision("aircraft", lambda s=split: FGVCAircraft(str(parent), split=s,
                                                                           annotation_level="variant"))
              for split in ("trainval", "test")}
    classes = list(splits["test"].classes)
    train, test = ([(str(p), int(t)) for p, t in zip(splits[s]._image_files, splits[s]._labels)]
                   for s in ("trainval", "test"))
    for samples, split in ((train, "trainval"), (test, "test")):
        _require_images("aircraft", samples, f"data/images_variant_{split}.txt")
    return FgvcData("aircraft", parent / FOLDERS["aircraft"], classes, train, test)


def read_cars(root: str | os.PathLike) -> FgvcData:
    """Stanford Cars: 196 classes, ``cars_train`` (8,144) and ``cars_test`` (8,041)."""
    from scipy.io.matlab import MatReadError
    from torchvision.datasets import StanfordCars

    parent = _torchvision_parent("cars", root, CARS_FILES, ("cars_train", "cars_test"))
    splits = {split: _torchvision("cars", lambda s=split: StanfordCars(str(parent), split=s), (MatReadError,))
              for split in ("train", "test")}
    classes = [str(c) for c in splits["train"].classes]
    train, test = ([(str(p), int(t)) for p, t in splits[s]._samples] for s in ("train", "test"))
    for samples, file in ((train, "devkit/cars_train_annos.mat"), (test, "cars_test_annos_withlabels.mat")):
        _require_labels("cars", samples, classes, file)
        _require_images("cars", samples, file)
    return FgvcData("cars", parent / FOLDERS["cars"], classes, train, test)


# ------------------------------------------------------------------------------ ImageFolder

def read_folder(root: str | os.PathLike) -> FgvcData:
    """An ImageFolder tree: ``train/`` and ``val/`` (or ``test/``), one folder per class."""
    from gcpbench.data.folders import check_classification_root, image_folder

    root = Path(root)
    if root.is_dir() and (root / "train").is_dir() and not (root / "val").is_dir() and not (root / "test").is_dir():
        raise GcpbenchError(f"'{root}' has no val/ or test/ folder: expected {root}/train/<class>/<image> and "
                            f"{root}/val/<class>/<image> (or test/)")
    held_out = "val" if (root / "val").is_dir() or not (root / "test").is_dir() else "test"
    tree = check_classification_root(root, ("train", held_out))
    train, test = (image_folder(root / split).samples for split in ("train", held_out))
    return FgvcData("folder", root, tree.classes, list(train), list(test), held_out)


READERS: dict[str, Callable[[str | os.PathLike], FgvcData]] = {
    "cub": read_cub, "aircraft": read_aircraft, "cars": read_cars, "folder": read_folder}


def canonical_dataset(name: str) -> str:
    """``CUB`` -> ``cub``; an unknown name raises with the choices."""
    key = name.strip().lower()
    key = {"cub200": "cub", "cub-200-2011": "cub", "fgvc-aircraft": "aircraft", "stanford-cars": "cars",
           "imagefolder": "folder"}.get(key, key)
    if key not in DATASETS:
        from gcpbench.models.registry import closest

        raise GcpbenchError(f"unknown dataset '{name}'{closest(key, DATASETS)}; choose from {', '.join(DATASETS)}")
    return key


def read_dataset(name: str, root: str | os.PathLike) -> FgvcData:
    """The splits of dataset ``name`` under ``root`` (checked; one-line errors)."""
    return READERS[canonical_dataset(name)](root)
