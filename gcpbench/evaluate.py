"""Classification evaluation: top-1 / top-5 over any loader, device selection, and eval-imagenet."""
from __future__ import annotations

import contextlib
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

import torch
from torch import nn

from gcpbench.errors import GcpbenchError, require_positive
from gcpbench.progress import progress_bar

if TYPE_CHECKING:
    from gcpbench.runs import RunDir


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` (CUDA when visible, else CPU), ``cpu``, ``cuda`` or ``cuda:N``."""
    key = name.strip().lower()
    if key == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if key == "cpu":
        return torch.device("cpu")
    if key == "cuda" or key.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise GcpbenchError(f"--device {name}: no CUDA GPU is visible; use --device auto or --device cpu")
        device = torch.device(key)
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise GcpbenchError(f"--device {name}: only {torch.cuda.device_count()} CUDA device(s) are visible")
        return device
    raise GcpbenchError(f"unknown device '{name}': use auto, cpu, cuda or cuda:N")


def autocast(device: torch.device, enabled: bool) -> contextlib.AbstractContextManager:
    """bf16 autocast on ``device`` when ``enabled`` (the GCP layer keeps itself in float32)."""
    if not enabled:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def topk_correct(logits: torch.Tensor, targets: torch.Tensor, ks: Iterable[int] = (1, 5)) -> list[int]:
    """Number of samples whose target is among the top-k logits, for each k (k capped at #classes)."""
    ks = list(ks)
    kmax = min(max(ks), logits.shape[1])
    top = logits.topk(kmax, dim=1).indices
    hits = top.eq(targets[:, None])
    return [int(hits[:, : min(k, kmax)].any(dim=1).sum()) for k in ks]


def evaluate_classification(model: nn.Module, loader: Iterable, device: torch.device | str = "cpu",
                            amp: bool = False, progress: bool = True, distributed: bool = False,
                            description: str = "evaluating") -> dict[str, Any]:
    """Top-1 / top-5 accuracy (percent), mean cross-entropy and image count of ``model`` on ``loader``.

    Batches are ``(images, targets)`` or, from a ``skip_unreadable`` dataset,
    ``(images, targets, unreadable_paths)``; skipped files are listed under ``unreadable``.
    Top-5 with fewer than 5 classes counts the top-#classes (so it is 100). With
    ``distributed=True`` under torch.distributed the sums are all-reduced over ranks (a
    DistributedSampler may repeat a few samples to even out the ranks). The model is put in
    eval mode and restored afterwards.
    """
    device = torch.device(device) if isinstance(device, str) else device
    was_training = model.training
    model.eval()
    sums = torch.zeros(4, dtype=torch.float64)  # loss sum, top-1 hits, top-5 hits, images
    unreadable: list[str] | None = None
    total = len(loader) if hasattr(loader, "__len__") else None
    try:
        with progress_bar(description, total, progress) as advance, torch.inference_mode():
            for batch in loader:
                images, targets = batch[0], batch[1]
                if len(batch) > 2:
                    unreadable = (unreadable or []) + list(batch[2])
                if images is not None:
                    images = images.to(device, non_blocking=True)
                    targets = targets.to(device, non_blocking=True)
                    with autocast(device, amp):
                        logits = model(images)
                    logits = logits.float()
                    loss = nn.functional.cross_entropy(logits, targets, reduction="sum")
                    top1, top5 = topk_correct(logits, targets)
                    sums += torch.tensor([float(loss), top1, top5, len(targets)], dtype=torch.float64)
                advance()
    finally:
        model.train(was_training)
    if distributed:
        sums = _all_reduce(sums, device)
    n = int(sums[3])
    if n == 0:
        raise GcpbenchError("no readable images to evaluate")
    result: dict[str, Any] = {"top1": 100.0 * float(sums[1]) / n, "top5": 100.0 * float(sums[2]) / n,
                              "loss": float(sums[0]) / n, "images": n}
    if unreadable is not None:  # the loader skips unreadable files: say which
        result["unreadable"] = unreadable
    return result


def _all_reduce(sums: torch.Tensor, device: torch.device) -> torch.Tensor:
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return sums
    backend_device = device if dist.get_backend() == "nccl" else torch.device("cpu")
    reduced = sums.to(backend_device)
    dist.all_reduce(reduced)
    return reduced.cpu()


def imagenet_output(ckpt: Path, out: Path | None, model_name: str) -> tuple[Path, RunDir | None]:
    """Where eval-imagenet writes: ``out`` (a .json file or a run directory), else the checkpoint's
    run directory (``RUN/checkpoints/x.pt`` -> ``RUN``), else a new ``runs/eval-imagenet_<model>_<time>``.

    The second value is the run directory written into (None for a .json file).
    """
    from gcpbench.runs import RunDir, new_run_dir

    if out is not None and out.suffix.lower() == ".json":
        return out, None
    if out is not None:
        run = RunDir(out)
    elif ckpt.resolve().parent.name == "checkpoints":
        run = RunDir(ckpt.resolve().parent.parent)
    else:
        run = new_run_dir(None, f"eval-imagenet_{model_name}")
    return run.eval_file("imagenet.json"), run


def eval_imagenet(ckpt: str | Path, data: str | Path | None = None, out: str | Path | None = None,
                  batch_size: int = 64, workers: int | None = None, device: str = "auto", amp: bool = False,
                  image_size: int | None = None, quiet: bool = False,
                  strict: bool = False) -> tuple[dict[str, Any], Path]:
    """Evaluate checkpoint ``ckpt`` on ``data/val`` (or the built-in synthetic set) and write
    ``eval/imagenet.json``; returns the result and the path written. Unreadable images are
    skipped and listed (``unreadable``), or stop the run with ``strict``."""
    from gcpbench.data.folders import image_folder, make_loader
    from gcpbench.data.source import resolve_classification_data
    from gcpbench.data.transforms import eval_resize, eval_transform
    from gcpbench.io import atomic_write_json
    from gcpbench.runs import write_eval_config
    from gcpbench.models import load_model
    from gcpbench.models.weights import num_classes_of

    require_positive("--image-size", image_size)
    ckpt = Path(ckpt)
    torch_device = resolve_device(device)
    model, checkpoint = load_model(ckpt)
    name = model.zoo_name
    source = resolve_classification_data(data, splits=("val",), quiet=quiet)
    num_classes = num_classes_of(name, model.state_dict())
    if num_classes != len(source.classes):
        raise GcpbenchError(f"checkpoint '{ckpt}' predicts {num_classes} classes but '{source.root / 'val'}' has "
                            f"{len(source.classes)} class folders: evaluate on the data the model was trained on")
    trained_on = checkpoint.get("classes")
    if isinstance(trained_on, list) and trained_on != source.classes:
        first = next((a for a, b in zip(trained_on, source.classes) if a != b), None)
        raise GcpbenchError(f"checkpoint '{ckpt}' was trained on other class folders than '{source.root / 'val'}' "
                            f"(first difference: '{first}')")
    size = image_size or source.image_size
    loader = make_loader(image_folder(source.root / "val", eval_transform(size), skip_unreadable=not strict),
                         batch_size, shuffle=False, workers=workers)
    metrics = evaluate_classification(model.to(torch_device), loader, torch_device, amp=amp, progress=not quiet,
                                      description=f"eval-imagenet {name}")
    result = {"model": name, "checkpoint": str(ckpt), "dataset": source.dataset,
              "top1": metrics["top1"], "top5": metrics["top5"], "images": metrics["images"],
              "loss": metrics["loss"], "data_root": str(source.root), "image_size": size,
              "resize": eval_resize(size), "num_classes": num_classes, "device": str(torch_device), "amp": amp,
              "unreadable": metrics.get("unreadable", []), "unreadable_count": len(metrics.get("unreadable", []))}
    path, run = imagenet_output(ckpt, Path(out) if out is not None else None, name)
    if run is not None:
        write_eval_config(run, {"command": "eval-imagenet", "model": name, "dataset": source.dataset,
                                "data_root": str(source.root), "checkpoint": str(ckpt)})
    atomic_write_json(path, result)
    return result, path
