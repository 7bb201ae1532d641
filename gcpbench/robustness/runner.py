"""One loading pipeline over many subsets: a single Dataset and one DataLoader over every
pending item of every group (corruption x severity, or perturbation), so the worker pool is
started once. Groups are reported as soon as their last item is through the model.
"""
from __future__ import annotations

from collections import Counter, defaultdict
from typing import Callable, Hashable, Sequence

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from gcpbench.evaluate import autocast
from gcpbench.progress import progress_bar
from gcpbench.robustness.trees import Item
from gcpbench.runtime import first_line

Loader = Callable[[Item], Tensor]  # item -> float tensor [n, 3, H, W] (n = 1 for an image)


class ItemDataset(Dataset):
    """Items loaded by ``load``; a file that fails to load yields its error message instead."""

    def __init__(self, items: Sequence[Item], load: Loader):
        self.items, self.load = list(items), load

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[int, Tensor | None, str | None]:
        try:
            return index, self.load(self.items[index]), None
        except Exception as exc:  # any broken file is reported, never fatal
            message = first_line(exc) if str(exc).strip() else ""
            return index, None, f"{type(exc).__name__}: {message}".rstrip(": ")


def _collate_by_shape(batch: list) -> tuple[list[int], list[tuple[int, str]], list[tuple[list[int], list[int], Tensor]]]:
    """In the worker: (indices, failed (index, error), per shape (indices, sizes, frames
    concatenated)). One tensor per shape crosses to the main process, which copies nothing:
    ~1.6x the images/s on 2 cores (docs/benchmarks.md)."""
    by_shape: dict[tuple, list[tuple[int, Tensor]]] = defaultdict(list)
    failed = []
    for index, tensor, error in batch:
        if tensor is None:
            failed.append((index, error or "unreadable"))
        else:
            by_shape[tuple(tensor.shape[1:])].append((index, tensor))
    groups = [([i for i, _ in g], [t.shape[0] for _, t in g], torch.cat([t for _, t in g])) for g in by_shape.values()]
    return [index for index, _, _ in batch], failed, groups


class Predictor:
    """The model in eval mode on ``device``; bf16 autocast and channels_last on CUDA."""

    def __init__(self, model: nn.Module, device: torch.device):
        self.device = torch.device(device)
        self.cuda = self.device.type == "cuda"
        self.model = model.eval().to(self.device)
        if self.cuda:
            self.model = self.model.to(memory_format=torch.channels_last)

    def __call__(self, x: Tensor) -> Tensor:
        """Float32 CPU logits of a batch."""
        x = x.to(self.device, non_blocking=True)
        if self.cuda:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode(), autocast(self.device, enabled=self.cuda):
            return self.model(x).float().cpu()


def _forward_in_chunks(predict: Callable[[Tensor], Tensor], frames: Tensor, sizes: list[int], batch_size: int) -> list[Tensor]:
    """Run ``frames`` (items of ``sizes`` frames each) through ``predict`` in chunks; split back."""
    logits = torch.cat([predict(chunk) for chunk in frames.split(batch_size)])
    return list(logits.split(sizes))


def run_items(items: Sequence[Item], load: Loader, predict: Callable[[Tensor], Tensor], *,
              on_item: Callable[[int, Tensor], None], on_failed: Callable[[int, str], None],
              on_group_done: Callable[[Hashable], None], batch_size: int = 64, items_per_batch: int = 64,
              workers: int | None = None, pin_memory: bool = False, description: str = "evaluating",
              quiet: bool = False) -> None:
    """Stream ``items`` through the model once; callbacks get each item's logits [n, classes]
    (or its load error) and each group the moment its last item is done. ``workers=None``:
    :func:`gcpbench.runtime.loader_workers`, the rule of every command."""
    from gcpbench.runtime import loader_workers

    workers = loader_workers() if workers is None else workers
    remaining = Counter(item.group for item in items)
    loader = DataLoader(ItemDataset(items, load), batch_size=max(1, items_per_batch), shuffle=False,
                        num_workers=workers, collate_fn=_collate_by_shape, pin_memory=pin_memory)
    with progress_bar(description, total=len(items), enabled=not quiet and len(items) > 0) as advance:
        for batch, failed, groups in loader:
            for index, error in failed:
                on_failed(index, error)
            for indices, sizes, frames in groups:
                for index, logits in zip(indices, _forward_in_chunks(predict, frames, sizes, batch_size)):
                    on_item(index, logits)
            finished = []
            for index in batch:
                key = items[index].group
                remaining[key] -= 1
                if remaining[key] == 0:
                    finished.append(key)
            for key in finished:
                on_group_done(key)
            advance(len(batch))
