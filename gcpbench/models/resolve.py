"""One entry point for every command: ``--ckpt FILE`` or ``--model NAME --weights FILE`` -> the
model, its evaluation preprocessing and a description to print and store with results."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from gcpbench.errors import GcpbenchError
from gcpbench.models.external_weights import LoadReport
from gcpbench.models.preprocess import Preprocessing, for_model


@dataclass
class Resolved:
    """A model ready to evaluate, and where it came from."""

    model: nn.Module
    checkpoint: dict[str, Any]  # the file's dict when it is a checkpoint ({} for a bare state dict)
    preprocessing: Preprocessing
    path: Path  # the file holding the weights (--ckpt or --weights)
    load_report: LoadReport | None = None

    @property
    def name(self) -> str:
        return self.model.zoo_name

    def description(self) -> dict[str, Any]:
        """Name, weights file, preprocessing (and what was loaded), for result files."""
        return {"model": self.name, "weights": str(self.path), "preprocessing": self.preprocessing.as_dict(),
                **({"loaded": self.load_report.as_dict()} if self.load_report else {})}

    def lines(self, benchmark: bool = False) -> list[str]:
        """What to print about the evaluation; ``benchmark``: the images are a robustness
        benchmark's stored ones (ImageNet-C / -P, CIFAR .npy), not resized and cropped."""
        lines = [f"model {self.name} from {self.path}"]
        if self.load_report is not None:
            lines.append(self.load_report.describe())
        prep = self.preprocessing
        return lines + [prep.describe_benchmark() if benchmark else prep.describe()]


def _classes_in(state: dict[str, torch.Tensor], spec) -> int | None:
    """Classifier rows stored in ``state`` for ``spec`` (found on a meta build), or None."""
    from gcpbench.models.external import build_external

    with torch.device("meta"):
        prefix = build_external(spec, 1000).classifier_prefix
    for key in (f"{prefix}weight", f"{prefix.removeprefix('backbone.')}weight"):
        if key in state and state[key].dim() >= 2:
            return int(state[key].shape[0])
    return None


def _external(name: str, weights: Path, head: str | None, gcp_dim: int | None, last_stride_one: bool | None,
              num_classes: int | None, model_kwargs: dict[str, Any] | None, gcp_norm: str | None = None,
              gcp_options: dict[str, Any] | None = None) -> Resolved:
    from gcpbench.models.external import build_external, parse_name
    from gcpbench.models.external_weights import load_external, read_weights, state_dict_of

    parse_name(name, head, gcp_dim, last_stride_one, gcp_norm=gcp_norm)  # an unknown name is named before the file is read
    obj = read_weights(weights)
    state = state_dict_of(obj, f"weights '{weights}'")
    kwargs = model_kwargs if model_kwargs is not None else obj.get("model_kwargs") or {}
    if (head or "").lower() == "gcp" and gcp_dim is None and "layer_reduce.weight" in state:
        gcp_dim = int(state["layer_reduce.weight"].shape[0])  # a GCP checkpoint says its D
    options = gcp_options if gcp_options is not None else obj.get("gcp_options")
    spec = parse_name(name, head, gcp_dim, last_stride_one, kwargs, gcp_norm, options)
    classes = num_classes or _classes_in(state, spec) or 1000
    model = build_external(spec, classes)
    report = load_external(model, obj)
    checkpoint = dict(obj) if not all(isinstance(v, torch.Tensor) for v in obj.values()) else {}
    return Resolved(model, checkpoint, for_model(model), weights, report)


def resolve_model(ckpt: str | os.PathLike | None = None, model: str | None = None,
                  weights: str | os.PathLike | None = None, *, head: str | None = None, gcp_dim: int | None = None,
                  last_stride_one: bool | None = None, num_classes: int | None = None,
                  model_kwargs: dict[str, Any] | None = None, gcp_norm: str | None = None,
                  gcp_options: dict[str, Any] | None = None) -> Resolved:
    """``ckpt`` (a gcpbench, original iSQRT-COV or torchvision checkpoint of a zoo model, or a
    gcpbench checkpoint of a timm / torchvision model), or ``model`` with a local ``weights``
    file; the number of classes comes from the file unless ``num_classes`` is given.
    ``gcp_norm`` (``--gcp-norm``) must agree with the model's GCP normalisation, and
    ``gcp_options`` with a checkpoint's stored options (a model name alone takes them)."""
    from gcpbench.models.external import is_external
    from gcpbench.models.weights import load_model

    if ckpt is not None and model is not None:
        raise GcpbenchError("give either --ckpt FILE or --model NAME --weights FILE, not both")
    if ckpt is not None:
        if weights is not None:
            raise GcpbenchError("--weights goes with --model NAME; a --ckpt file already holds the weights")
        net, checkpoint = load_model(Path(ckpt))
        _require_gcp(net, gcp_norm, gcp_options, f"checkpoint '{ckpt}'")
        return Resolved(net, checkpoint, for_model(net), Path(ckpt))
    if model is None:
        raise GcpbenchError("name the model: --ckpt FILE, or --model NAME --weights FILE")
    if weights is None:
        raise GcpbenchError(f"--model {model} needs --weights FILE (local weights; nothing is downloaded)")
    weights = Path(weights)
    if is_external(model):
        from gcpbench.models.weights import require_finite

        resolved = _external(model, weights, head, gcp_dim, last_stride_one, num_classes, model_kwargs, gcp_norm,
                             gcp_options)
        require_finite(resolved.model.state_dict(), f"weights '{weights}'")
        return resolved
    from gcpbench.models.registry import model_name

    net, checkpoint = load_model(weights, model_name(model, head, gcp_dim, gcp_norm), gcp_options)
    _require_gcp(net, gcp_norm, gcp_options, f"weights '{weights}'")
    return Resolved(net, checkpoint, for_model(net), weights)


def _require_gcp(net: nn.Module, gcp_norm: str | None, gcp_options: dict[str, Any] | None, source: str) -> None:
    """One line when ``--gcp-norm`` or a GCP option contradicts the model ``source`` holds."""
    from gcpbench.models.weights import head_of
    from gcpbench.pooling.registry import check_options, method

    head = head_of(net)
    if gcp_norm is not None:
        norm = method(gcp_norm).name
        if not head.is_gcp or head.norm != norm:
            what = f"the {head.norm} normalisation" if head.is_gcp else "a GAP head"
            raise GcpbenchError(f"{source} holds {net.zoo_name} ({what}) but --gcp-norm {norm} was given; drop one of them")
    if gcp_options:
        if not head.is_gcp:
            raise GcpbenchError(f"{source} holds {net.zoo_name}, a GAP model: GCP options do not apply")
        stored = head.gcp_options()
        wanted = check_options(head.norm, gcp_options)
        for key in gcp_options:
            if wanted[key] != stored[key]:
                raise GcpbenchError(f"{source} holds {net.zoo_name} with GCP option {key}={stored[key]}, "
                                    f"but {key}={wanted[key]} was given; drop the option")
