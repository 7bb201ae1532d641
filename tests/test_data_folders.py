"""ImageFolder datasets, tree checks, corrupt images and loaders."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import Dataset

from gcpbench.data.folders import (EpochSampler, check_classification_root, image_folder, make_loader,
                                   set_epoch)
from gcpbench.data.transforms import normalize_only
from gcpbench.errors import GcpbenchError
from gcpbench.evaluate import evaluate_classification

CLASSES = ("cat", "dog", "eel")


def write_tree(root: Path, per_class: int = 2, splits=("train", "val"), size: int = 8) -> Path:
    rng = np.random.default_rng(0)
    for split in splits:
        for name in CLASSES:
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(per_class):
                Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    return root


def corrupt_jpeg(path: Path) -> Path:
    """A JPEG whose data stops after the header: PIL opens it but cannot decode it."""
    Image.new("RGB", (16, 16), (200, 10, 10)).save(path, quality=90)
    path.write_bytes(path.read_bytes()[:200])
    return path


def one_line(exc: pytest.ExceptionInfo) -> str:
    text = str(exc.value)
    assert "\n" not in text
    return text


def test_check_accepts_a_good_tree(tmp_path):
    tree = check_classification_root(write_tree(tmp_path))
    assert tree.classes == list(CLASSES) and tree.splits == ("train", "val")


def test_missing_root_and_missing_val(tmp_path):
    with pytest.raises(GcpbenchError) as exc:
        check_classification_root(tmp_path / "nowhere")
    assert "does not exist" in one_line(exc)
    write_tree(tmp_path / "d", splits=("train",))
    with pytest.raises(GcpbenchError) as exc:
        check_classification_root(tmp_path / "d")
    assert "has no val/ folder" in one_line(exc)
    assert check_classification_root(tmp_path / "d", splits=("train",)).classes == list(CLASSES)


def test_empty_class_folder_is_named(tmp_path):
    root = write_tree(tmp_path)
    for f in (root / "val" / "dog").iterdir():
        f.unlink()
    (root / "val" / "dog" / "notes.txt").write_text("not an image")
    with pytest.raises(GcpbenchError) as exc:
        check_classification_root(root)
    assert f"class folder '{root / 'val' / 'dog'}' holds no images" in one_line(exc)


def test_mismatched_class_sets_are_named(tmp_path):
    root = write_tree(tmp_path)
    (root / "val" / "eel").rename(root / "val" / "emu")
    with pytest.raises(GcpbenchError) as exc:
        check_classification_root(root)
    assert "class folder 'eel' is in train/ but not in val/" in one_line(exc)


def test_flat_val_folder_gets_a_hint(tmp_path):
    root = write_tree(tmp_path, splits=("train",))
    (root / "val").mkdir()
    Image.new("RGB", (4, 4)).save(root / "val" / "ILSVRC2012_val_00000001.JPEG", format="JPEG")
    with pytest.raises(GcpbenchError) as exc:
        check_classification_root(root)
    assert "holds images directly" in one_line(exc)


def test_image_folder_labels_and_missing_folder(tmp_path):
    root = write_tree(tmp_path)
    dataset = image_folder(root / "val", normalize_only())
    assert dataset.classes == list(CLASSES) and len(dataset) == 6
    image, label = dataset[5]
    assert image.shape == (3, 8, 8) and label == 2
    with pytest.raises(GcpbenchError, match="does not exist"):
        image_folder(root / "test")


def test_corrupt_jpeg_is_a_one_line_error_naming_the_file(tmp_path):
    root = write_tree(tmp_path)
    bad = corrupt_jpeg(root / "val" / "dog" / "broken.jpg")
    dataset = image_folder(root / "val", normalize_only())
    index = [p for p, _ in dataset.samples].index(str(bad))
    with pytest.raises(GcpbenchError) as exc:
        dataset[index]
    assert one_line(exc).startswith(f"cannot read image '{bad}'")


def test_corrupt_jpeg_in_a_worker_process_stays_one_line(tmp_path):
    root = write_tree(tmp_path)
    bad = corrupt_jpeg(root / "val" / "dog" / "broken.jpg")
    loader = make_loader(image_folder(root / "val", normalize_only()), batch_size=4, shuffle=False, workers=1)
    with pytest.raises(GcpbenchError) as exc:
        list(loader)
    assert one_line(exc).startswith(f"cannot read image '{bad}'")


class Linear(torch.nn.Module):
    """Mean colour -> 3 logits: a tiny fixed model for evaluation tests."""

    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(3, 3)

    def forward(self, x):
        return self.fc(x.mean(dim=(2, 3)))


def test_skip_unreadable_records_the_file_and_evaluates_the_rest(tmp_path):
    root = write_tree(tmp_path)
    bad = corrupt_jpeg(root / "val" / "dog" / "broken.jpg")
    dataset = image_folder(root / "val", normalize_only(), skip_unreadable=True)
    loader = make_loader(dataset, batch_size=4, shuffle=False, workers=0)
    batches = list(loader)
    assert [len(b) for b in batches] == [3, 3]
    assert [p for b in batches for p in b[2]] == [str(bad)]
    assert sum(len(b[1]) for b in batches) == 6
    result = evaluate_classification(Linear(), loader, "cpu", progress=False)
    assert result["images"] == 6 and result["unreadable"] == [str(bad)]


def test_batch_of_only_unreadable_files(tmp_path):
    root = tmp_path / "val"
    (root / "a").mkdir(parents=True)
    corrupt_jpeg(root / "a" / "x.jpg")
    Image.new("RGB", (8, 8)).save(root / "a" / "y.png")
    loader = make_loader(image_folder(root, normalize_only(), skip_unreadable=True), batch_size=1, shuffle=False,
                         workers=0)
    first, second = list(loader)
    assert first[0] is None and first[1] is None and len(first[2]) == 1
    assert second[0].shape == (1, 3, 8, 8) and second[2] == []


def test_epoch_sampler_depends_on_seed_and_epoch_only():
    sampler = EpochSampler(20, shuffle=True, seed=3)
    sampler.set_epoch(1)
    first = list(sampler)
    assert sorted(first) == list(range(20))
    assert list(sampler) == first
    sampler.set_epoch(2)
    assert list(sampler) != first
    again = EpochSampler(20, shuffle=True, seed=3)
    again.set_epoch(1)
    assert list(again) == first
    assert list(EpochSampler(5, shuffle=False)) == [0, 1, 2, 3, 4]


class RandomValues(Dataset):
    """Each item draws from torch's RNG, like a random augmentation does."""

    def __len__(self):
        return 4

    def __getitem__(self, index):
        return torch.rand(1), index


def test_worker_randomness_is_reproducible_per_epoch():
    """set_epoch makes shuffle order and worker augmentation seeds a function of (seed, epoch)."""
    def epoch_values(epoch: int) -> tuple[list[int], list[float]]:
        loader = make_loader(RandomValues(), batch_size=2, shuffle=True, workers=1, seed=7)
        set_epoch(loader, epoch)
        batches = list(loader)
        return [int(i) for _, idx in batches for i in idx], [float(v) for v, _ in batches for v in v]

    order, values = epoch_values(1)
    assert epoch_values(1) == (order, values)
    _, other_values = epoch_values(2)
    assert other_values != values


def test_distributed_sampler_under_torch_distributed(tmp_path):
    import torch.distributed as dist
    from torch.utils.data.distributed import DistributedSampler

    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        loader = make_loader(RandomValues(), batch_size=2, shuffle=True, workers=0, distributed=True, seed=1)
        assert isinstance(loader.sampler, DistributedSampler)
        set_epoch(loader, 4)
        assert loader.sampler.epoch == 4 and loader.sampler.seed == 1
        assert sorted(int(i) for _, idx in loader for i in idx) == [0, 1, 2, 3]
        assert isinstance(make_loader(RandomValues(), 2, True, workers=0).sampler, EpochSampler)
    finally:
        dist.destroy_process_group()


def test_loader_argument_errors():
    with pytest.raises(GcpbenchError, match="--batch-size"):
        make_loader(RandomValues(), batch_size=0, shuffle=False, workers=0)
    with pytest.raises(GcpbenchError, match="--workers"):
        make_loader(RandomValues(), batch_size=1, shuffle=False, workers=-1)
