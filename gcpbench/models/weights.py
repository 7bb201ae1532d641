"""Checkpoints: the gcpbench format, the original iSQRT-COV ``.pth.tar`` files, strict loading.

A gcpbench checkpoint is a dict ``{"format": "gcpbench", "format_version": 1, "model": NAME,
"num_classes": N, "state_dict": ...}`` plus whatever training adds (epoch, optimizer, ...).
Original checkpoints are ``{"epoch", "arch", "state_dict", "best_prec1", "optimizer"}`` with
DataParallel's ``module.`` prefix; plain state dicts (torchvision) are accepted too.
"""
from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import Tensor, nn

from gcpbench.errors import GcpbenchError, api_spelling
from gcpbench.io import atomic_torch_save
from gcpbench.models.checkpoint_file import ACCEPTED, REFUSED, python_objects_error, read_checkpoint  # noqa: F401 (re-exported)
from gcpbench.models.registry import MODELS, build_architecture, model_info

FORMAT = "gcpbench"
FORMAT_VERSION = 1


def extract_state_dict(checkpoint: Mapping[str, Any], source: str = "checkpoint") -> dict[str, Tensor]:
    """The model weights of any accepted checkpoint form, without a ``module.`` prefix."""
    state = checkpoint.get("state_dict", checkpoint)
    if not isinstance(state, Mapping) or not state or not all(isinstance(v, Tensor) for v in state.values()):
        raise GcpbenchError(f"{source} has no state_dict of tensors; pass {ACCEPTED}")
    return {(k[len("module."):] if k.startswith("module.") else k): v for k, v in state.items()}


@functools.lru_cache(maxsize=None)
def _signature(name: str) -> dict[str, tuple[int, ...]]:
    """Key -> shape of zoo model ``name`` (built on the meta device: no memory, no init)."""
    with torch.device("meta"):
        model = build_architecture(name)
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def guess_model(state: Mapping[str, Tensor]) -> str | None:
    """The zoo model whose keys and shapes (classifier rows aside) best match ``state``."""
    best, best_score = None, 0.0
    for name, info in MODELS.items():
        if info.head.is_gcp and info.head.norm != "isqrt":
            continue  # files without a name are original (iSQRT-COV) or torchvision checkpoints
        sig = _signature(name)
        hits = 0
        for key, shape in sig.items():
            tensor = state.get(key)
            if tensor is None:
                continue
            have = tuple(tensor.shape)
            if have == shape or (key.startswith(info.classifier_key.rsplit(".", 1)[0]) and have[1:] == shape[1:]):
                hits += 1
        score = hits / max(len(sig), len(state))
        if score > best_score:
            best, best_score = name, score
    return best if best_score > 0.5 else None


def nonfinite_tensors(state: Mapping[str, Tensor]) -> list[str]:
    """Keys of floating-point tensors holding NaN or infinity (a diverged model)."""
    return [key for key, value in state.items()
            if isinstance(value, Tensor) and value.is_floating_point() and not bool(torch.isfinite(value).all())]


def require_finite(state: Mapping[str, Tensor], source: str) -> None:
    """One-line error when ``state`` holds a non-finite tensor: its numbers would be meaningless."""
    bad = nonfinite_tensors(state)
    if bad:
        raise GcpbenchError(f"{source} holds NaN or infinite values in {len(bad)} tensor(s) (first: '{bad[0]}'): "
                            "the run diverged; use an earlier checkpoint")


def num_classes_of(name: str, state: Mapping[str, Tensor]) -> int | None:
    """Classifier rows stored in ``state`` for model ``name`` (None if absent)."""
    weight = state.get(model_info(name).classifier_key)
    return int(weight.shape[0]) if weight is not None and weight.dim() == 2 else None


def strict_mismatch(model: nn.Module, state: Mapping[str, Tensor]) -> str | None:
    """Describe the first key that is missing, unexpected or of another shape (None if all fit)."""
    expected = model.state_dict()
    for key, tensor in expected.items():
        if key not in state:
            return f"missing key '{key}'"
        if tuple(state[key].shape) != tuple(tensor.shape):
            return f"key '{key}' has shape {tuple(state[key].shape)}, the model expects {tuple(tensor.shape)}"
    for key in state:
        if key not in expected:
            return f"unexpected key '{key}'"
    return None


def load_state_strict(model: nn.Module, state: Mapping[str, Tensor], name: str, source: str = "checkpoint") -> None:
    """Load every tensor with equal shapes, or raise one line naming the first mismatch."""
    problem = strict_mismatch(model, state)
    if problem is not None:
        guess = guess_model(state)
        belongs = f"; it looks like a '{guess}' checkpoint" if guess and guess != name else ""
        raise GcpbenchError(f"{source} does not fit '{name}': {problem}{belongs}")
    model.load_state_dict(state, strict=True)


def build(name: str, num_classes: int = 1000, weights: str | os.PathLike | Mapping[str, Any] | None = None, *,
          head: str | None = None, gcp_dim: int | None = None, last_stride_one: bool | None = None,
          gcp_norm: str | None = None, gcp_options: Mapping[str, Any] | None = None, **model_kwargs: Any) -> nn.Module:
    """Build ``name``: a zoo model (``resnet50_gcp``, or an architecture with ``head``/``gcp_dim``),
    or ``timm/<name>`` / ``torchvision/<name>`` with ``head="gap"|"gcp"``, ``gcp_dim``,
    ``last_stride_one`` and builder ``model_kwargs`` (e.g. ``img_size=64``); ``gcp_norm`` picks the
    GCP normalisation (or must agree with the name's) and ``gcp_options`` its options. ``weights`` is a
    checkpoint path or dict: strict for zoo models; for the others see
    :func:`gcpbench.models.external_weights.load_external` (its report is ``model.load_report``).
    Errors name these arguments (``gcp_dim=...``), not the command line's flags."""
    from gcpbench.models.preprocess import pretrained_cfg

    with api_spelling():
        model = _build(name, num_classes, weights, head=head, gcp_dim=gcp_dim, last_stride_one=last_stride_one,
                       gcp_norm=gcp_norm, gcp_options=gcp_options, **model_kwargs)
    model.pretrained_cfg = pretrained_cfg(model, weights)
    return model


def _build(name: str, num_classes: int, weights: Any, *, head: str | None, gcp_dim: int | None,
           last_stride_one: bool | None, gcp_norm: str | None = None, gcp_options: Mapping[str, Any] | None = None,
           **model_kwargs: Any) -> nn.Module:
    from gcpbench.models.external import build_external, is_external, parse_name

    if is_external(name):
        spec = parse_name(name, head, gcp_dim, last_stride_one, model_kwargs, gcp_norm, gcp_options)
        model = build_external(spec, num_classes)
        if weights is not None:
            from gcpbench.models.external_weights import load_external

            model.load_report = load_external(model, weights)
        return model
    if last_stride_one is not None or model_kwargs:
        raise GcpbenchError(f"zoo model '{name}' takes no builder options ({', '.join(sorted(model_kwargs)) or 'last_stride_one'}; "
                            "the GCP ResNets already use stride 1)")
    from gcpbench.models.registry import model_name

    model = build_architecture(model_name(name, head, gcp_dim, gcp_norm), num_classes, dict(gcp_options or {}))
    if weights is not None:
        checkpoint = read_checkpoint(weights) if isinstance(weights, (str, os.PathLike)) else weights
        source = f"checkpoint '{weights}'" if isinstance(weights, (str, os.PathLike)) else "checkpoint"
        load_state_strict(model, extract_state_dict(checkpoint, source), model.zoo_name, source)
    return model


def output_classes(model: nn.Module) -> int | None:
    """How many classes ``model`` predicts (zoo or timm / torchvision model)."""
    if hasattr(model, "spec"):
        return int(model.num_classes)
    return num_classes_of(model.zoo_name, model.state_dict())


def checkpoint_dict(model: nn.Module, name: str, **extra: Any) -> dict[str, Any]:
    """The gcpbench checkpoint form of ``model`` (add training state through ``extra``)."""
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    spec = getattr(model, "spec", None)
    if spec is not None:  # timm / torchvision: the builder options rebuild it exactly
        extra = {"model_kwargs": dict(spec.kwargs), **extra}
    options = gcp_options_of(model)
    if options:  # options a name cannot say (e.g. the MPN power): the checkpoint carries them
        extra = {"gcp_options": options, **extra}
    return {"format": FORMAT, "format_version": FORMAT_VERSION, "model": name,
            "num_classes": output_classes(model), "state_dict": state, **extra}


def head_of(model: nn.Module):
    """The :class:`~gcpbench.models.heads.HeadSpec` of a zoo or timm / torchvision model."""
    spec = getattr(model, "spec", None)
    return spec.head if spec is not None else model.head


def gcp_options_of(model: nn.Module) -> dict[str, Any]:
    """The GCP options of ``model`` that differ from its normalisation's defaults ({} for GAP)."""
    return dict(head_of(model).options)


def save_checkpoint(path: str | os.PathLike, model: nn.Module, name: str, **extra: Any) -> Path:
    """Write a gcpbench checkpoint atomically."""
    return atomic_torch_save(path, checkpoint_dict(model, name, **extra))


def _canonical(name: str) -> str:
    """The one spelling of a zoo or timm / torchvision model name (unknown names as given)."""
    from gcpbench.models.registry import model_identity

    try:
        return model_identity(name).name
    except GcpbenchError:
        return name.lower()


def load_model(path: str | os.PathLike, name: str | None = None,
               gcp_options: Mapping[str, Any] | None = None) -> tuple[nn.Module, dict[str, Any]]:
    """Build the model a checkpoint was saved from (or ``name``) and load it strictly; its GCP
    options are the checkpoint's (``gcp_options`` when the file stores none)."""
    from gcpbench.models.external import build_external, is_external, parse_name

    checkpoint = read_checkpoint(path)
    state = extract_state_dict(checkpoint, f"checkpoint '{path}'")
    stored = checkpoint.get("model")
    if name is not None and isinstance(stored, str) and _canonical(stored) != _canonical(name):
        raise GcpbenchError(f"checkpoint '{path}' holds a {stored}, but the model was given as {name}: drop --model "
                            "(a gcpbench checkpoint names its model) or pass that model's weights")
    name = name or stored or guess_model(state)
    options = dict(checkpoint.get("gcp_options") or gcp_options or {}) or None
    if is_external(name):
        model = build_external(parse_name(name, kwargs=checkpoint.get("model_kwargs"), gcp_options=options),
                               int(checkpoint.get("num_classes") or 1000))
        load_state_strict(model, state, name, f"checkpoint '{path}'")
        return model, checkpoint
    if name is None:
        raise GcpbenchError(f"cannot tell which zoo model checkpoint '{path}' belongs to (it names none and its tensors "
                            "fit no zoo model); if it is one, name it once with `gcpbench convert "
                            f"{path} --model NAME --out NEW.pt` (names: gcpbench zoo)")
    num_classes = num_classes_of(name, state) or int(checkpoint.get("num_classes") or 1000)
    model = build_architecture(name, num_classes, options)
    load_state_strict(model, state, name, f"checkpoint '{path}'")
    require_finite(state, f"checkpoint '{path}'")
    from gcpbench.models.preprocess import pretrained_cfg

    model.pretrained_cfg = pretrained_cfg(model, path)
    return model, checkpoint


def convert(src: str | os.PathLike, name: str, out: str | os.PathLike) -> Path:
    """Rewrite an original iSQRT-COV (or torchvision) checkpoint in the gcpbench form."""
    model, checkpoint = load_model(src, name)
    extra = {k: checkpoint[k] for k in ("epoch", "best_prec1", "arch") if k in checkpoint}
    return save_checkpoint(out, model, name, converted_from=str(src), **extra)
