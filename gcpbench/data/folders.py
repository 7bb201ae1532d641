"""ImageFolder datasets, classification-tree checks and DataLoaders.

* :func:`image_folder` reads ``ROOT/<class>/<image>``; an unreadable or corrupt image raises a
  one-line :class:`GcpbenchError` naming the file, or (``skip_unreadable=True``, for evaluation)
  is dropped from its batch and reported: batches are then ``(images, targets, unreadable_paths)``.
* :func:`check_classification_root` validates ``ROOT/train`` and ``ROOT/val`` before any work.
* :func:`make_loader` builds the DataLoader (DistributedSampler under torch.distributed); call
  :func:`set_epoch` at the start of every epoch: the shuffle order and the workers' random
  augmentation seeds are then a function of (seed, epoch, rank) only, so a run resumed at an
  epoch boundary sees exactly the same batches.
"""
from __future__ import annotations

import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, NamedTuple, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler
from torch.utils.data.dataloader import default_collate
from torchvision.datasets import ImageFolder
from torchvision.datasets.folder import IMG_EXTENSIONS

from gcpbench.errors import GcpbenchError
from gcpbench.paths import subfolders
from gcpbench.runtime import first_line, loader_workers, mix_seed, process_rank


class Unreadable(NamedTuple):
    """Stands in for an image that could not be decoded (``skip_unreadable`` mode)."""

    path: str
    reason: str


def open_rgb(path: str | os.PathLike):
    """Decode ``path`` fully as an RGB PIL image; a corrupt or truncated file raises GcpbenchError."""
    from PIL import Image

    try:
        with open(path, "rb") as handle:
            image = Image.open(handle)
            return image.convert("RGB")  # convert() forces the full decode
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise GcpbenchError(f"cannot read image '{path}': {first_line(exc)}; replace or delete the file") from None


class CheckedItems:
    """``__getitem__`` of a dataset of ``samples`` (path, label): one-line errors for a bad image,
    or (``skip_unreadable``) an :class:`Unreadable` stand-in that :func:`collate_skipping` drops."""

    samples: list[tuple[str, int]]
    transform: Callable | None
    skip_unreadable: bool = False

    def __getitem__(self, index: int) -> tuple[Any, int]:
        path, target = self.samples[index]
        try:
            image = open_rgb(path)
        except GcpbenchError as exc:
            if not self.skip_unreadable:
                raise
            return Unreadable(path, str(exc)), target
        if self.transform is not None:
            image = self.transform(image)
        return image, target


class ImageList(CheckedItems, Dataset):
    """Images listed as ``(path, label)`` pairs (datasets whose split lives in annotation files)."""

    def __init__(self, samples: Sequence[tuple[str, int]], transform: Callable | None = None,
                 skip_unreadable: bool = False):
        self.samples = list(samples)
        self.transform = transform
        self.skip_unreadable = skip_unreadable

    def __len__(self) -> int:
        return len(self.samples)


class CheckedImageFolder(CheckedItems, ImageFolder):
    """torchvision's ImageFolder with one-line errors, or skipping and recording of bad images."""

    def __init__(self, root: str | os.PathLike, transform: Callable | None = None, skip_unreadable: bool = False):
        from gcpbench.paths import require_folder

        root = require_folder(root, "image folder", f"{root}/<class>/<image>")
        try:
            super().__init__(str(root), transform=transform, loader=open_rgb, is_valid_file=is_data_image)
        except FileNotFoundError as exc:
            raise GcpbenchError(f"image folder '{root}': {first_line(exc)} (expected {root}/<class>/<image>)") from None
        self.skip_unreadable = skip_unreadable

    def make_dataset(self, directory: str | os.PathLike, class_to_idx: dict[str, int],
                     extensions: tuple[str, ...] | None = None, is_valid_file: Callable | None = None,
                     allow_empty: bool = False) -> list[tuple[str, int]]:
        """torchvision's samples and order, listed by one :class:`~gcpbench.data.walk.TreeWalk`:
        a link cycle or an image reached twice is refused in one line (torchvision would walk a
        cycle until memory runs out, and count a linked image under every class it is reached from)."""
        from gcpbench.data.walk import TreeWalk

        walk = TreeWalk()
        samples = []
        for name in sorted(class_to_idx):
            found = walk.sorted_files(Path(directory) / name, IMG_EXTENSIONS)
            if not found and not allow_empty:
                raise FileNotFoundError(f"Found no valid file for the classes {name}. "
                                        f"Supported extensions are: {', '.join(IMG_EXTENSIONS)}")
            samples += [(path, class_to_idx[name]) for path in found]
        return samples

    def fingerprint(self) -> str:
        """The listing fingerprint (names, sizes, modification times) of the images it holds."""
        from gcpbench.data.walk import listing_fingerprint

        return listing_fingerprint(self.root, (path for path, _ in self.samples))


def image_folder(root: str | os.PathLike, transform: Callable | None = None,
                 skip_unreadable: bool = False) -> CheckedImageFolder:
    """The images under ``root/<class>/`` as a dataset of ``(tensor, label)`` (labels: sorted class names)."""
    return CheckedImageFolder(root, transform, skip_unreadable)


def collate_skipping(batch: Sequence[tuple[Any, int]]) -> tuple[Any, Any, list[str]]:
    """Collate the readable samples; return ``(images, targets, unreadable paths)``.

    ``images`` and ``targets`` are None when every sample of the batch was unreadable.
    """
    good = [sample for sample in batch if not isinstance(sample[0], Unreadable)]
    bad = [sample[0].path for sample in batch if isinstance(sample[0], Unreadable)]
    images, targets = default_collate(good) if good else (None, None)
    return images, targets, bad


def skipped_note(unreadable: list[str], listed_in: str | os.PathLike) -> str:
    """The warning of a run that skipped unreadable images (one line)."""
    count = len(unreadable)
    return (f"skipped {count} unreadable image{'s' if count != 1 else ''} (listed in {listed_in}; "
            f"first: {unreadable[0]}); replace or delete them, or pass --strict to stop at the first")


# ----------------------------------------------------------------------------- tree checks

def is_image_file(name: str) -> bool:
    """True for the extensions torchvision's ImageFolder reads (case-insensitive)."""
    return name.lower().endswith(IMG_EXTENSIONS)


def is_data_image(path: str) -> bool:
    """An image file that is data: hidden files (an interrupted writer's temporary file, macOS
    ``._<name>``) are not."""
    return is_image_file(path) and not os.path.basename(path).startswith(".")


def _holds_an_image(folder: Path) -> bool:
    """True as soon as one image file is found below ``folder`` (stops early; a link cycle met
    before the first image is refused in one line)."""
    from gcpbench.data.walk import TreeWalk

    return next(iter(TreeWalk().iter_files(folder, IMG_EXTENSIONS)), None) is not None


@dataclass(frozen=True)
class ClassificationTree:
    """A checked ImageFolder tree: ``root/<split>/<class>/<image>``."""

    root: Path
    splits: tuple[str, ...]
    classes: list[str]

    def split(self, name: str) -> Path:
        return self.root / name


def _check_split(root: Path, split: str) -> list[str]:
    folder = root / split
    if folder.exists() and not folder.is_dir():
        raise GcpbenchError(f"'{folder}' is a file, not a folder: expected {folder}/<class>/<image>")
    if not folder.is_dir():
        raise GcpbenchError(f"'{root}' has no {split}/ folder: expected {root}/{split}/<class>/<image> "
                            "(ImageFolder layout)")
    classes = subfolders(folder)
    if not classes:
        with os.scandir(folder) as entries:
            flat = any(e.is_file() and is_image_file(e.name) for e in entries)
        if flat:
            raise GcpbenchError(f"'{folder}' holds images directly: sort them into one folder per class "
                                f"({folder}/<class>/<image>)")
        raise GcpbenchError(f"'{folder}' has no class folders: expected {folder}/<class>/<image>")
    for name in classes:
        if not _holds_an_image(folder / name):
            raise GcpbenchError(f"class folder '{folder / name}' holds no images "
                                f"({', '.join(IMG_EXTENSIONS)}); add images or remove the folder")
    return classes


def check_classification_root(root: str | os.PathLike, splits: Sequence[str] = ("train", "val")) -> ClassificationTree:
    """Validate ``root/<split>/<class>/<image>`` for each split; the splits must share one class list.

    Raises a one-line GcpbenchError for a missing root or split folder, a split with no class
    folders, an empty class folder (named) or class folders present in one split only (named).
    """
    from gcpbench.paths import require_folder

    root = Path(root)
    require_folder(root, "data root", " and ".join(f"{root / split}/<class>/<image>" for split in splits))
    per_split = {split: _check_split(root, split) for split in splits}
    first, reference = next(iter(per_split.items()))
    for split, classes in per_split.items():
        for name in sorted(set(reference) ^ set(classes)):
            have, lack = (first, split) if name in reference else (split, first)
            raise GcpbenchError(f"class folder '{name}' is in {have}/ but not in {lack}/ of '{root}': "
                                "every split needs the same class folders")
    return ClassificationTree(root, tuple(splits), list(reference))


# ----------------------------------------------------------------------------- loaders

class EpochSampler(Sampler[int]):
    """Sequential, or shuffled by a permutation that depends on (seed, epoch) only."""

    def __init__(self, length: int, shuffle: bool, seed: int = 0):
        self.length, self.shuffle, self.seed, self.epoch = length, shuffle, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        if not self.shuffle:
            return iter(range(self.length))
        generator = torch.Generator().manual_seed(mix_seed(self.seed, self.epoch))
        return iter(torch.randperm(self.length, generator=generator).tolist())

    def __len__(self) -> int:
        return self.length


def _seed_worker(worker_id: int) -> None:
    """Seed Python's and NumPy's RNGs in a worker from torch's per-worker seed."""
    seed = torch.initial_seed() % 2**32
    random.seed(seed)
    np.random.seed(seed)


class GcpbenchLoader(DataLoader):
    """A DataLoader whose worker-raised GcpbenchError comes back as the original one line
    (torch re-raises worker errors with the worker's traceback folded into the message)."""

    def __iter__(self) -> Iterator[Any]:
        iterator = super().__iter__()
        while True:
            try:
                batch = next(iterator)
            except StopIteration:
                return
            except GcpbenchError as exc:
                shutdown = getattr(iterator, "_shutdown_workers", None)
                if shutdown is not None:  # stop the workers now, not at garbage collection
                    shutdown()
                raise GcpbenchError(_original_message(str(exc))) from None
            yield batch


def _original_message(text: str) -> str:
    """The GcpbenchError message inside a worker traceback (the text itself if there is none)."""
    marker = "GcpbenchError: "
    lines = [line for line in text.splitlines() if marker in line]
    return lines[-1].split(marker, 1)[1].strip() if lines else text


def make_loader(dataset: Dataset, batch_size: int, shuffle: bool, workers: int | None = None,
                distributed: bool = False, seed: int = 0, drop_last: bool = False,
                persistent: bool = False) -> DataLoader:
    """A DataLoader over ``dataset``.

    ``distributed=True`` under an initialised torch.distributed uses a DistributedSampler (each
    rank reads its share); otherwise an :class:`EpochSampler`. ``workers=None`` picks
    :func:`gcpbench.runtime.loader_workers`. ``persistent`` keeps worker processes between epochs (faster epoch
    starts, but worker RNG then carries over epochs: leave it off for exactly resumable runs).
    Datasets in ``skip_unreadable`` mode get :func:`collate_skipping`.
    """
    import torch.distributed as dist

    if batch_size < 1:
        raise GcpbenchError(f"--batch-size must be at least 1, got {batch_size}")
    workers = loader_workers() if workers is None else workers
    if workers < 0:
        raise GcpbenchError(f"--workers must be 0 or more, got {workers}")
    if distributed and dist.is_available() and dist.is_initialized():
        from torch.utils.data.distributed import DistributedSampler

        sampler: Sampler = DistributedSampler(dataset, shuffle=shuffle, seed=seed, drop_last=drop_last)
    else:
        sampler = EpochSampler(len(dataset), shuffle, seed)
    generator = torch.Generator().manual_seed(mix_seed(seed, 0, process_rank()))
    loader = GcpbenchLoader(
        dataset, batch_size=batch_size, sampler=sampler, num_workers=workers, drop_last=drop_last,
        pin_memory=torch.cuda.is_available(), persistent_workers=persistent and workers > 0,
        worker_init_fn=_seed_worker if workers > 0 else None, generator=generator,
        collate_fn=collate_skipping if getattr(dataset, "skip_unreadable", False) else None)
    loader.gcpbench_seed = seed  # read by set_epoch
    return loader


def set_epoch(loader: DataLoader, epoch: int) -> None:
    """Make the next pass over ``loader`` epoch ``epoch``: shuffle order and worker seeds."""
    if hasattr(loader.sampler, "set_epoch"):
        loader.sampler.set_epoch(epoch)
    if loader.generator is not None:
        loader.generator.manual_seed(mix_seed(getattr(loader, "gcpbench_seed", 0), epoch, process_rank()))
