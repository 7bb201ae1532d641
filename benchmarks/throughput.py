"""Throughput: training steps GAP vs GCP, and eval-c's loading pipeline vs a per-subset loop.

1. ``train``: images/s of a full training step (forward, cross-entropy, backward, SGD with
   momentum) of ResNet-18 and ResNet-50, GAP and GCP heads, batch 32 at 224 px,
   channels_last (bf16 autocast with ``--amp``, default on CUDA). Each GCP model is timed
   interleaved with its GAP baseline in the same process; printed as GCP / GAP.
2. ``eval-c``: images/s of ``gcpbench eval-c``'s pipeline (one Dataset and one DataLoader over
   every corruption x severity subset, ``gcpbench.robustness.runner.run_items``) against the
   usual per-subset ``torchvision.datasets.ImageFolder`` + PIL + ``DataLoader`` loop, over the
   same generated ImageNet-C-style tree, interleaved; printed as ours / per-subset. By default
   the model is a stub (loading only); ``--eval-model resnet18_gap`` runs a network too.

Usage: ``python benchmarks/throughput.py [--quick] [--json] [--device cpu|cuda|auto]
[--parts train eval-c]``.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from torch import Tensor

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchutil import base_parser, device_from_args, interleaved_medians, machine_name, print_wide  # noqa: E402


@dataclass
class Ratio:
    """One comparison: ``candidate`` against ``baseline``, measured interleaved."""

    part: str
    device: str
    machine: str
    threads: int
    setting: str
    baseline: str
    candidate: str
    baseline_images_per_s: float
    candidate_images_per_s: float
    ratio: float
    repeats: int


# --------------------------------------------------------------------------- training steps
def training_step(name: str, batch: int, size: int, device: torch.device, amp: bool) -> Callable[[], None]:
    """A closure running one SGD step of zoo model ``name`` on a fixed random batch."""
    from gcpbench.evaluate import autocast
    from gcpbench.models import build

    torch.manual_seed(0)
    model = build(name, num_classes=1000).to(device, memory_format=torch.channels_last).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9, weight_decay=1e-4)
    images = torch.randn(batch, 3, size, size, device=device).contiguous(memory_format=torch.channels_last)
    targets = torch.randint(0, 1000, (batch,), device=device)

    def step() -> None:
        with autocast(device, amp):
            loss = torch.nn.functional.cross_entropy(model(images), targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def bench_train(archs: Sequence[str], batch: int, size: int, device: torch.device, amp: bool,
                repeats: int) -> list[Ratio]:
    """GCP vs GAP training steps, one architecture at a time (both models in memory)."""
    results = []
    for arch in archs:
        steps = {head: training_step(f"{arch}_{head}", batch, size, device, amp) for head in ("gap", "gcp")}
        times = interleaved_medians(steps, device, repeats=repeats, warmup=1)
        del steps
        gap, gcp = batch / times["gap"] * 1e3, batch / times["gcp"] * 1e3
        results.append(Ratio("train", str(device), machine_name(device), torch.get_num_threads(),
                             f"{arch} batch {batch} at {size}px, channels_last, amp {'bf16' if amp else 'off'}",
                             f"{arch}_gap", f"{arch}_gcp", gap, gcp, gcp / gap, repeats))
    return results


# --------------------------------------------------------------------------- eval-c loading
def make_tree(root: Path, corruptions: Sequence[str], severities: Sequence[int], classes: int,
              per_class: int, size: int, seed: int = 0) -> Path:
    """An ImageNet-C-style tree ``root/<corruption>/<severity>/<wnid>/<stem>.JPEG`` of random
    textures (JPEG quality 85, as ``gcpbench data make-c`` writes); the content is irrelevant
    to loading speed."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (size // 8, size // 8, 3), dtype=np.uint8)
    image = Image.fromarray(base).resize((size, size), Image.BILINEAR)
    for c in corruptions:
        for s in severities:
            for k in range(classes):
                folder = root / c / str(s) / f"n{k:08d}"
                folder.mkdir(parents=True, exist_ok=True)
                for i in range(per_class):
                    noisy = np.clip(np.asarray(image, dtype=np.int16) + rng.integers(-8 * s, 8 * s + 1, (size, size, 3)),
                                    0, 255).astype(np.uint8)
                    Image.fromarray(noisy).save(folder / f"ILSVRC2012_val_{k * per_class + i:08d}.JPEG", quality=85)
    return root


def stub_predictor(num_classes: int) -> Callable[[Tensor], Tensor]:
    """Loading only: logits of zeros (touches the batch so it is really materialised)."""
    def predict(x: Tensor) -> Tensor:
        return x.new_zeros(x.shape[0], num_classes) + x.flatten(1)[:, :1]
    return predict


def ours_eval_c(root: Path, corruptions: Sequence[str], severities: Sequence[int], predict, batch: int,
                workers: int) -> Callable[[], int]:
    """gcpbench eval-c's pipeline: one DataLoader over every subset; returns images seen."""
    from gcpbench.robustness.imagenet_c import load_c_item, subset_folders
    from gcpbench.robustness.runner import run_items
    from gcpbench.robustness.trees import IMAGE_EXTENSIONS, check_same_classes, collect_items

    folders = subset_folders(root, corruptions, severities)
    classes = check_same_classes(list(folders.values()))
    items = collect_items(folders, classes, {c: i for i, c in enumerate(classes)}, IMAGE_EXTENSIONS, None, 0)

    def run() -> int:
        seen = []
        run_items(items, load_c_item, predict, on_item=lambda i, logits: seen.append(i),
                  on_failed=lambda i, reason: None, on_group_done=lambda key: None,
                  batch_size=batch, items_per_batch=batch, workers=workers, quiet=True)
        return len(seen)

    return run


def per_subset_eval_c(root: Path, corruptions: Sequence[str], severities: Sequence[int], predict, batch: int,
                      workers: int) -> Callable[[], int]:
    """The common loop: a fresh ImageFolder (PIL loader, ToTensor, Normalize) and DataLoader
    per corruption x severity folder; returns images seen."""
    from torchvision import datasets, transforms

    from gcpbench.data.transforms import IMAGENET_MEAN, IMAGENET_STD

    transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD)])

    def run() -> int:
        seen = 0
        for c in corruptions:
            for s in severities:
                dataset = datasets.ImageFolder(str(root / c / str(s)), transform=transform)
                loader = torch.utils.data.DataLoader(dataset, batch_size=batch, shuffle=False, num_workers=workers)
                for images, _ in loader:
                    predict(images)
                    seen += images.shape[0]
        return seen

    return run


def bench_eval_c(args: argparse.Namespace, device: torch.device) -> list[Ratio]:
    """Ours vs the per-subset loop over one generated tree (or ``--tree``)."""
    from gcpbench.robustness.benchmarks import BENCHMARK_CORRUPTIONS

    corruptions = list(BENCHMARK_CORRUPTIONS[:3] if args.quick else BENCHMARK_CORRUPTIONS)
    severities = [1, 2] if args.quick else [1, 2, 3, 4, 5]
    classes = 3 if args.quick else 4
    with tempfile.TemporaryDirectory(prefix="gcpbench-evalc-") as tmp:
        root = Path(args.tree) if args.tree else make_tree(
            Path(tmp), corruptions, severities, classes, args.per_class or (2 if args.quick else 8),
            64 if args.quick else 224)
        if args.eval_model:
            from gcpbench.models import build
            from gcpbench.robustness.runner import Predictor

            predict = Predictor(build(args.eval_model, num_classes=classes), device)
        else:
            predict = stub_predictor(classes)
        candidates = {
            "ours": ours_eval_c(root, corruptions, severities, predict, args.eval_batch, args.workers),
            "per-subset": per_subset_eval_c(root, corruptions, severities, predict, args.eval_batch, args.workers),
        }
        counts = {name: fn() for name, fn in candidates.items()}  # also the warm-up (page cache)
        if len(set(counts.values())) != 1:
            raise SystemExit(f"the two pipelines saw different numbers of images: {counts}")
        times = interleaved_medians(candidates, device, repeats=args.repeats or 3, warmup=0)
    images = counts["ours"]
    ours, base = images / times["ours"] * 1e3, images / times["per-subset"] * 1e3
    setting = (f"{images} images, {len(corruptions)}x{len(severities)} subsets, batch {args.eval_batch}, "
               f"{args.workers} workers, model {args.eval_model or 'stub (loading only)'}")
    return [Ratio("eval-c", str(device), machine_name(device), torch.get_num_threads(), setting,
                  "ImageFolder per subset", "gcpbench eval-c", base, ours, ours / base, args.repeats or 3)]


# --------------------------------------------------------------------------- CLI
def print_table(results: list[Ratio]) -> None:
    from rich.table import Table

    table = Table(title=f"Throughput on {results[0].device} ({results[0].machine}, {results[0].threads} threads); "
                        "medians of interleaved repeats")
    for col in ("part", "setting", "baseline", "img/s", "candidate", "img/s ", "ratio"):
        table.add_column(col, justify="left" if col in ("part", "setting", "baseline", "candidate") else "right")
    for r in results:
        table.add_row(r.part, r.setting, r.baseline, f"{r.baseline_images_per_s:.2f}", r.candidate,
                      f"{r.candidate_images_per_s:.2f}", f"{r.ratio:.3f}")
    print_wide(table)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = base_parser(__doc__.split("\n\n")[0], "small batch, small images, ResNet-18 only",
                         "one JSON object per comparison")
    parser.add_argument("--parts", nargs="+", choices=("train", "eval-c"), default=["train", "eval-c"])
    parser.add_argument("--archs", nargs="+", choices=("resnet18", "resnet34", "resnet50", "resnet101"),
                        help="training-step architectures (default resnet18 resnet50; quick resnet18)")
    parser.add_argument("--batch", type=int, help="training batch (default 32, quick 4)")
    parser.add_argument("--size", type=int, help="training image size (default 224, quick 64)")
    parser.add_argument("--amp", action=argparse.BooleanOptionalAction, default=None,
                        help="bf16 autocast in training steps (default: on for CUDA)")
    parser.add_argument("--repeats", type=int, help="timed repeats (default 3)")
    parser.add_argument("--tree", help="an existing ImageNet-C-style tree for eval-c (default: generate one)")
    parser.add_argument("--per-class", type=int, help="generated images per class and subset (default 8, quick 2)")
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers of both eval-c pipelines")
    parser.add_argument("--eval-batch", type=int, default=64, help="eval-c batch size")
    parser.add_argument("--eval-model", help="zoo model for eval-c (default: a stub, loading only)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> list[Ratio]:
    args = parse_args(argv)
    device = device_from_args(args)
    results: list[Ratio] = []
    if "train" in args.parts:
        archs = args.archs or (["resnet18"] if args.quick else ["resnet18", "resnet50"])
        amp = args.amp if args.amp is not None else device.type == "cuda"
        results += bench_train(archs, args.batch or (4 if args.quick else 32), args.size or (64 if args.quick else 224),
                               device, amp, args.repeats or 3)
    if "eval-c" in args.parts:
        results += bench_eval_c(args, device)
    if args.json:
        for r in results:
            print(json.dumps(asdict(r)))
    else:
        print_table(results)
    return results


if __name__ == "__main__":
    main()
