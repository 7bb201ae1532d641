"""Tiny shared data for the robustness tests: 3 classes of 32 px images and a ResNet-18
(GAP, 3 classes) after a few SGD steps, saved as a gcpbench checkpoint."""
from __future__ import annotations

import contextlib
import functools
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

CLASSES = ("n00000000", "n00000001", "n00000002")
PER_CLASS = 4
SIZE = 32


def tiny_images(seed: int = 0) -> dict[str, list[np.ndarray]]:
    """Class k: a bright channel k over noise (learnable in a few steps)."""
    rng = np.random.default_rng(seed)
    out = {}
    for k, wnid in enumerate(CLASSES):
        images = []
        for _ in range(PER_CLASS):
            x = rng.uniform(0.2, 0.5, (SIZE, SIZE, 3))
            x[..., k] += 0.4
            images.append((np.clip(x, 0, 1) * 255).astype(np.uint8))
        out[wnid] = images
    return out


def write_tree(root, images: dict[str, list[np.ndarray]], ext: str = "png") -> None:
    for wnid, arrays in images.items():
        (root / wnid).mkdir(parents=True, exist_ok=True)
        for i, a in enumerate(arrays):
            Image.fromarray(a).save(root / wnid / f"img_{i:03d}.{ext}")


@contextlib.contextmanager
def as_builtin_set(val_tree):
    """Let ``val_tree`` (a ``val/`` folder) stand for the built-in synthetic set's, so that
    ``make_c`` / ``make_p`` may keep its 32 px images at their size (``native=True``, allowed for
    the built-in set only): fast trees for tests of the metrics, not of the geometry."""
    import gcpbench.data.synthetic as synthetic

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(synthetic, "ensure_classification_set", lambda root=None, quiet=False: Path(val_tree).parent)
        yield


@pytest.fixture(scope="module")
def clean_tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("clean") / "val"
    write_tree(root, tiny_images())
    return root


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, clean_tree):
    """A ResNet-18 (GAP, 3 classes) after a few SGD steps on the tiny clean set."""
    return train_tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny.pt")


def train_tiny_checkpoint(path):
    """Train a ResNet-18 (GAP, 3 classes) a few SGD steps on :func:`tiny_images`; save it to ``path``."""
    from gcpbench.models import build, save_checkpoint

    torch.manual_seed(0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    model = build("resnet18_gap", num_classes=3)
    images = tiny_images()
    x = normalise(np.stack([a for k in CLASSES for a in images[k]]))
    y = torch.arange(3).repeat_interleave(PER_CLASS)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    model.train()
    for _ in range(4):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    torch.set_num_threads(threads)
    save_checkpoint(path, model, "resnet18_gap")
    return path


def normalise(frames: np.ndarray) -> torch.Tensor:
    """uint8 [n, H, W, 3] -> the model's input (ImageNet mean / std), written out independently."""
    x = torch.tensor(frames, dtype=torch.float32).permute(0, 3, 1, 2) / 255
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    return (x - mean) / std


@functools.lru_cache(maxsize=4)
def _model(checkpoint):
    from gcpbench.models import load_model

    return load_model(checkpoint)[0].eval()


def logits_of(checkpoint, frames: np.ndarray) -> np.ndarray:
    """Logits of uint8 frames by the checkpoint's model, outside the evaluation code."""
    with torch.no_grad():
        return _model(checkpoint)(normalise(frames)).double().numpy()
