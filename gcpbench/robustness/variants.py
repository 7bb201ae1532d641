"""ImageNet test-set variants scored like eval-imagenet (top-1 / top-5 through the model's own
preprocessing, :func:`gcpbench.evaluate.evaluate_val_folder`): ImageNetV2 and ImageNet-Sketch
(all 1000 classes), ImageNet-R and ImageNet-A (200-class subsets, scored on the logits of their
200 classes only, as their authors do: ``output[:, imagenet_r_mask]`` in hendrycks/imagenet-r
``eval.py`` and ``output[:, indices_in_1k]`` in hendrycks/natural-adv-examples ``eval.py``).

Tree: ``ROOT/<class>/<image>``; ImageNetV2's class folders are the ImageNet label indices
``0..999``, the others' the wnids. Class folders map to the model's outputs through the class
list the checkpoint was trained on, or the ImageNet-1k list (``data_manifests/imagenet.json``)
for a 1000-class model. A tree with fewer class folders than the manifest is evaluated and
marked ``complete: false``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn

from gcpbench.errors import GcpbenchError, require_positive
from gcpbench.provenance import provenance
from gcpbench.robustness.benchmarks import VARIANTS, Variant, get_variant

__all__ = ["VARIANTS", "Variant", "eval_variant", "get_variant"]


def manifest_classes(variant: Variant) -> list[str]:
    """The class folder names the variant's manifest lists (all of them make a complete tree)."""
    from gcpbench.data.manifests import load_manifest

    return list(load_manifest(variant.manifest)["levels"][0]["required"])


def folder_wnids(variant: Variant, folders: Sequence[str]) -> list[str]:
    """The wnid of each class folder; a folder the variant does not have is named (one line)."""
    from gcpbench.data.manifests import imagenet_classes, manifest_label

    known = set(manifest_classes(variant))
    stray = next((f for f in folders if f not in known), None)
    if stray is not None:
        raise GcpbenchError(f"'{stray}' is not a class folder of {variant.title} ({manifest_label(variant.manifest)}); "
                            f"point --data at the folder that holds the class folders")
    if not variant.index_folders:
        return list(folders)
    wnids = imagenet_classes()
    return [wnids[int(f)] for f in folders]


def model_classes(model: nn.Module, checkpoint: dict[str, Any]) -> list[str]:
    """The class (wnid) of each model output: the list the checkpoint was trained on, else the
    ImageNet-1k list for a 1000-class model; anything else is refused in one line."""
    from gcpbench.data.manifests import imagenet_classes
    from gcpbench.models.weights import output_classes

    trained_on = checkpoint.get("classes")
    if isinstance(trained_on, list) and all(isinstance(c, str) for c in trained_on):
        return list(trained_on)
    count = output_classes(model)
    if count == 1000:
        return imagenet_classes()
    raise GcpbenchError(f"{model.zoo_name} predicts {count} classes and its checkpoint names none: the ImageNet "
                        f"variants need a model trained on ImageNet-1k classes")


def label_plan(variant: Variant, folders: Sequence[str], classes: Sequence[str],
               model_name: str) -> tuple[dict[str, int], list[int] | None]:
    """(class folder -> target index, model outputs to keep or None). For a 200-class variant the
    outputs are those of the folders present (in folder order) and targets index into them."""
    wnids = folder_wnids(variant, folders)
    position = {wnid: i for i, wnid in enumerate(classes)}
    missing = next((w for w in wnids if w not in position), None)
    if missing is not None:
        raise GcpbenchError(f"{model_name} was trained on {len(classes)} other classes (not {variant.title}'s "
                            f"'{missing}'): evaluate a model trained on ImageNet-1k classes")
    if variant.class_subset:
        return {folder: i for i, folder in enumerate(folders)}, [position[w] for w in wnids]
    return {folder: position[w] for folder, w in zip(folders, wnids)}, None


class ClassSubset(nn.Module):
    """``model``'s logits of the outputs ``indices`` only (in that order)."""

    def __init__(self, model: nn.Module, indices: Sequence[int]):
        super().__init__()
        self.model = model
        self.register_buffer("indices", torch.tensor(list(indices), dtype=torch.long), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x).index_select(1, self.indices)


def eval_variant(variant_name: str, ckpt: str | Path | None, data: str | Path | None, out: str | Path | None = None,
                 batch_size: int = 64, workers: int | None = None, device: str = "auto", amp: bool = False,
                 image_size: int | None = None, quiet: bool = False, model_name: str | None = None,
                 weights: str | Path | None = None, strict: bool = False, gcp_norm: str | None = None,
                 gcp_options: dict[str, Any] | None = None) -> tuple[dict[str, Any], Path]:
    """Evaluate checkpoint ``ckpt`` (or ``model_name`` with ``weights``) on the variant tree
    ``data`` and write ``eval/imagenet_<variant>.json`` with the result's identity (same places
    and options as :func:`gcpbench.evaluate.eval_imagenet`); returns the result and its path."""
    from gcpbench.data.manifests import manifest_label, subfolders
    from gcpbench.evaluate import evaluate_val_folder, imagenet_output, resolve_device
    from gcpbench.identity import Producer, ResultIdentity
    from gcpbench.io import atomic_write_json
    from gcpbench.models.resolve import resolve_model
    from gcpbench.records import VariantResult
    from gcpbench.robustness.trees import require_dir
    from gcpbench.runlock import writer_lock
    from gcpbench.runs import result_writer

    variant = get_variant(variant_name)
    require_positive("--image-size", image_size)
    if data is None:
        raise GcpbenchError(f"{variant.title} needs --data ROOT, the folder that holds its class folders "
                            f"(layout in {manifest_label(variant.manifest)})")
    root = require_dir(Path(data), variant.title)
    folders = subfolders(root)
    if not folders:
        raise GcpbenchError(f"{variant.title} folder '{root}' holds no class folders "
                            f"(layout in {manifest_label(variant.manifest)})")
    torch_device = resolve_device(device)
    resolved = resolve_model(ckpt, model_name, weights, gcp_norm=gcp_norm, gcp_options=gcp_options)
    model, name = resolved.model, resolved.model.zoo_name
    labels, indices = label_plan(variant, folders, model_classes(model, resolved.checkpoint), name)
    net = ClassSubset(model, indices) if indices is not None else model
    prep = resolved.preprocessing.at_size(image_size) if image_size else resolved.preprocessing
    producer = Producer.of(resolved.path, name, resolved.checkpoint)
    path, run = imagenet_output(resolved.path, Path(out) if out is not None else None, name, variant.result_file)
    if run is None:
        writing = writer_lock(path.parent, path.name, remove=True)
    else:
        writing = result_writer(run, f"imagenet_{variant.key}", (variant.result_file,), producer,
                                f"{variant.title} results", {"command": "eval-imagenet", "dataset": variant.dataset,
                                                             "data_root": str(root), "device": str(torch_device)})
    with writing:
        metrics = evaluate_val_folder(net, root, prep, labels, batch_size=batch_size, workers=workers,
                                      device=torch_device, amp=amp, progress=not quiet,
                                      description=f"{variant.title} {name}", strict=strict)
        unreadable = metrics.get("unreadable", [])
        options = {"variant": variant.key, "preprocessing": prep.as_dict(), "amp": amp}
        identity = ResultIdentity(producer, str(root.resolve()), options, {"listing": metrics["listing"]})
        complete = len(folders) == len(manifest_classes(variant))
        result = VariantResult(
            model=name, checkpoint=str(resolved.path), variant=variant.key, dataset=variant.dataset,
            top1=metrics["top1"], top5=metrics["top5"], images=metrics["images"], loss=metrics["loss"],
            class_folders=len(folders), complete=complete, identity=identity, provenance=provenance(device=torch_device),
            extra={"title": variant.title, "data_root": str(root),
                   "scored_on": f"the logits of its {len(folders)} classes" if indices is not None else "all outputs",
                   "image_size": prep.input_size, "resize": prep.resize, "device": str(torch_device), "amp": amp,
                   **resolved.description(), "preprocessing": prep.as_dict(), "unreadable": unreadable,
                   "unreadable_count": len(unreadable)})
        atomic_write_json(path, result.to_json())
    return result.to_json(), path
