"""Classification evaluation: top-1 / top-5 over any loader, and eval-imagenet."""
from __future__ import annotations

import contextlib
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

import torch
from torch import nn

from gcpbench.errors import GcpbenchError, require_positive
from gcpbench.progress import progress_bar
from gcpbench.provenance import provenance
from gcpbench.runtime import resolve_device

if TYPE_CHECKING:
    from gcpbench.models.preprocess import Preprocessing
    from gcpbench.runs import RunDir


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


def imagenet_output(ckpt: Path, out: Path | None, model_name: str,
                    result: str = "imagenet.json") -> tuple[Path, RunDir | None]:
    """Where eval-imagenet writes ``eval/<result>``: ``out`` (a .json file or a run directory), else
    the checkpoint's run directory (``RUN/checkpoints/x.pt`` -> ``RUN``), else a new
    ``runs/eval-imagenet_<model>_<time>``.

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
    return run.eval / result, run


IMAGENET_RESULT = "imagenet.json"


def evaluate_val_folder(model: nn.Module, folder: Path, prep: Preprocessing, labels: dict[str, int] | None = None, *,
                        subset: int | None = None, seed: int = 0, batch_size: int = 64, workers: int | None = None,
                        device: torch.device = torch.device("cpu"), amp: bool = False, progress: bool = True,
                        description: str = "evaluating", strict: bool = False) -> dict[str, Any]:
    """Top-1 / top-5 / loss of ``model`` on a clean tree ``folder/<class>/<image>`` through
    ``prep`` (resize, centre crop, normalise; see :func:`clean_preprocessing`): the one path that
    eval-imagenet and eval-c's clean error share, so the two agree image for image.

    ``labels`` maps class folders to output indices (default: sorted order); ``subset`` keeps a
    seeded ``subset`` images per class (the files eval-c's ``--subset`` picks). Unreadable images
    are skipped and listed under ``unreadable``, or stop the run with ``strict``."""
    from gcpbench.data.folders import image_folder, make_loader
    from gcpbench.robustness.trees import select_per_class

    dataset = image_folder(folder, prep.transform(), skip_unreadable=not strict)
    if labels is not None:
        dataset.samples = [(path, labels[dataset.classes[target]]) for path, target in dataset.samples]
    if subset is not None:
        by_class: dict[str, list[tuple[str, int]]] = {}
        for path, target in dataset.samples:
            by_class.setdefault(Path(path).parent.name, []).append((path, target))
        kept = []
        for name, samples in by_class.items():
            chosen = {str(p) for p in select_per_class([Path(p) for p, _ in samples], subset, seed, name)}
            kept += [sample for sample in samples if sample[0] in chosen]
        dataset.samples = sorted(kept)
    dataset.targets = [target for _, target in dataset.samples]
    loader = make_loader(dataset, batch_size, shuffle=False, workers=workers)
    result = evaluate_classification(model.to(device), loader, device, amp=amp, progress=progress,
                                     description=description)
    return {**result, "listing": dataset.fingerprint()}


def clean_preprocessing(prep: Preprocessing, dataset_root: Path, image_size: int | None = None) -> Preprocessing:
    """The model's evaluation preprocessing for a clean tree ``dataset_root/val``: at
    ``image_size`` if given, the built-in synthetic set's own size, else the model's input size
    (zoo models: Resize 256 + CenterCrop 224)."""
    from gcpbench.data.source import crop_size_of
    from gcpbench.data.synthetic import synthetic_info

    synthetic = synthetic_info(Path(dataset_root)) is not None
    return prep.at_size(image_size or (crop_size_of(dataset_root) if synthetic else prep.input_size))


def eval_imagenet(ckpt: str | Path | None, data: str | Path | None = None, out: str | Path | None = None,
                  batch_size: int = 64, workers: int | None = None, device: str = "auto", amp: bool = False,
                  image_size: int | None = None, quiet: bool = False, model_name: str | None = None,
                  weights: str | Path | None = None, strict: bool = False, gcp_norm: str | None = None,
                  gcp_options: dict[str, Any] | None = None) -> tuple[dict[str, Any], Path]:
    """Evaluate checkpoint ``ckpt`` (or ``model_name`` with ``weights``) on ``data/val`` (or the
    built-in synthetic set) with the model's own preprocessing and write ``eval/imagenet.json``
    with the result's identity; returns the result and the path written. Unreadable images are
    skipped and listed (``unreadable``), or stop the run with ``strict``."""
    from gcpbench.data.source import resolve_classification_data
    from gcpbench.identity import Producer, ResultIdentity
    from gcpbench.io import atomic_write_json
    from gcpbench.runlock import writer_lock
    from gcpbench.runs import result_writer
    from gcpbench.models.resolve import resolve_model
    from gcpbench.models.weights import output_classes
    from gcpbench.records import ImageNetResult

    require_positive("--image-size", image_size)
    torch_device = resolve_device(device)
    resolved = resolve_model(ckpt, model_name, weights, gcp_norm=gcp_norm, gcp_options=gcp_options)
    model, checkpoint, ckpt = resolved.model, resolved.checkpoint, resolved.path
    name = model.zoo_name
    source = resolve_classification_data(data, splits=("val",), quiet=quiet)
    num_classes = output_classes(model)
    if num_classes != len(source.classes):
        raise GcpbenchError(f"checkpoint '{ckpt}' predicts {num_classes} classes but '{source.root / 'val'}' has "
                            f"{len(source.classes)} class folders: evaluate on the data the model was trained on")
    trained_on = checkpoint.get("classes")
    if isinstance(trained_on, list) and trained_on != source.classes:
        first = next((a for a, b in zip(trained_on, source.classes) if a != b), None)
        raise GcpbenchError(f"checkpoint '{ckpt}' was trained on other class folders than '{source.root / 'val'}' "
                            f"(first difference: '{first}')")
    prep = clean_preprocessing(resolved.preprocessing, source.root, image_size)
    producer = Producer.of(ckpt, name, checkpoint)
    path, run = imagenet_output(ckpt, Path(out) if out is not None else None, name)
    if run is None:
        writing = writer_lock(path.parent, path.name, remove=True)
    else:
        writing = result_writer(run, "imagenet", (IMAGENET_RESULT,), producer, "ImageNet results",
                                {"command": "eval-imagenet", "dataset": source.dataset,
                                 "data_root": str(source.root), "device": str(torch_device)})
    with writing:
        metrics = evaluate_val_folder(model, source.root / "val", prep, batch_size=batch_size, workers=workers,
                                      device=torch_device, amp=amp, progress=not quiet,
                                      description=f"eval-imagenet {name}", strict=strict)
        unreadable = metrics.get("unreadable", [])
        identity = ResultIdentity(producer, str(source.root.resolve()), {"preprocessing": prep.as_dict(), "amp": amp},
                                  {"listing": metrics["listing"]})
        result = ImageNetResult(
            model=name, checkpoint=str(ckpt), dataset=source.dataset, top1=metrics["top1"], top5=metrics["top5"],
            images=metrics["images"], loss=metrics["loss"], identity=identity, provenance=provenance(device=torch_device),
            extra={"data_root": str(source.root), "image_size": prep.input_size, "resize": prep.resize,
                   "num_classes": num_classes, "device": str(torch_device), "amp": amp, **resolved.description(),
                   "preprocessing": prep.as_dict(), "unreadable": unreadable, "unreadable_count": len(unreadable)})
        atomic_write_json(path, result.to_json())
    return result.to_json(), path
