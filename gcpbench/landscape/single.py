"""``gcpbench landscape --ckpt C`` / ``--model NAME --weights FILE``: probe one trained model.

One landscape measurement (:func:`gcpbench.landscape.probe.measure`, the model cut after its
stem) at a fixed, seeded batch of training images in the model's own preprocessing, written as
one row of ``RUN/landscape.csv`` (step 0) in a run directory of its own, so that ``gcpbench
landscape RUN...`` plots it beside training-time records.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from gcpbench.errors import GcpbenchError
from gcpbench.models.resolve import Resolved
from gcpbench.identity import Producer
from gcpbench.runs import DEFAULT_ROOT, RunDir, new_run_dir, result_writer, run_slug


def probe_batch(root: Path, transform, batch_size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``batch_size`` images of ``root`` (ImageFolder) chosen by ``seed``, transformed."""
    from gcpbench.data.folders import image_folder

    dataset = image_folder(root, transform)
    if len(dataset) < batch_size:
        raise GcpbenchError(f"'{root}' has {len(dataset)} images, fewer than --batch-size {batch_size}")
    order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed))[:batch_size]
    samples = [dataset[int(i)] for i in order]
    return torch.stack([s[0] for s in samples]), torch.tensor([s[1] for s in samples])


def probe_model(resolved: Resolved, data: str | Path | None, family: str, *, batch_size: int = 32,
                num_eta: int | None = None, seed: int = 0, out: str | Path | None = None,
                device: str = "auto", quiet: bool = False) -> tuple[dict[str, Any], RunDir]:
    """Measure the landscape of ``resolved``'s model once; returns the row and its run directory."""
    from gcpbench.data.source import resolve_classification_data
    from gcpbench.runtime import resolve_device
    from gcpbench.landscape.probe import NUM_ETA, default_etas, measure
    from gcpbench.landscape.recorder import append_row
    from gcpbench.records import LandscapeRow
    from gcpbench.models.weights import output_classes

    source = resolve_classification_data(data, splits=("train",), quiet=quiet)
    if output_classes(resolved.model) != len(source.classes):
        raise GcpbenchError(f"'{resolved.name}' predicts {output_classes(resolved.model)} classes but "
                            f"'{source.root / 'train'}' has {len(source.classes)}: probe on the data it was trained on")
    prep = resolved.preprocessing
    prep = prep.at_size(source.image_size if source.synthetic else prep.input_size)
    images, targets = probe_batch(source.root / "train", prep.transform(), batch_size, seed)
    torch_device = resolve_device(device)
    model = resolved.model.to(torch_device)
    result = measure(model, images.to(torch_device), targets.to(torch_device), default_etas(family, num_eta or NUM_ETA))
    producer = Producer.of(resolved.path, resolved.name, resolved.checkpoint)
    run = new_run_dir(out or DEFAULT_ROOT / f"landscape_{run_slug(resolved.name)}_{resolved.path.stem}_"
                             f"{producer.sha256[:8]}", "landscape")
    row = LandscapeRow.measured(0, 0, result["loss"], result)
    with result_writer(run, "landscape", (), producer, "landscape measurements",
                       {"command": "landscape", "dataset": source.dataset, "data_root": str(source.root),
                        "family": family, "batch_size": batch_size, "seed": seed, "preprocessing": prep.as_dict(),
                        "device": str(torch_device)}):
        append_row(run.landscape, row)
        write_eta_curves(run.landscape_eta, result)
    return row, run


ETA_COLUMNS = ("eta", "loss", "grad_diff", "grad_norm")


def write_eta_curves(path: Path, result: dict[str, Any]) -> Path:
    """The probe's values per step size (``eta,loss,grad_diff,grad_norm``), written atomically:
    what the single-probe figure plots against the step size."""
    from gcpbench.io import atomic_write_text

    lines = [",".join(ETA_COLUMNS)] + [f"{eta!r},{loss!r},{diff!r},{result['grad_norm']!r}"
                                       for eta, loss, diff in zip(result["etas"], result["losses"], result["grad_diffs"])]
    return atomic_write_text(path, "\n".join(lines) + "\n")
