"""Backbone weights for detection: a gcpbench / original iSQRT-COV / torchvision ResNet checkpoint.

The ImageNet head is dropped (GCP's reduction layer, the GCP module, the classifier); every
other tensor must match the detection backbone by name and shape, or loading fails with one
line. Key names of gcpbench ResNets equal torchvision's, which equal mmdet's ResNet's.
"""
from __future__ import annotations

import os
from typing import Any, Mapping

from torch import Tensor, nn

from gcpbench.detection.checkpoints import read_mmengine_checkpoint, require_weights_only_default
from gcpbench.errors import GcpbenchError
from gcpbench.models.registry import MODELS as ZOO
from gcpbench.models.weights import extract_state_dict, guess_model
from gcpbench.runtime import first_line

HEAD_PREFIXES: tuple[str, ...] = ("fc.", "layer_reduce", "dimension_reduction", "gcp.", "classifier.")
REMOTE_SCHEMES: tuple[str, ...] = ("torchvision://", "open-mmlab://", "modelzoo://", "http://", "https://")


def is_head_key(key: str) -> bool:
    """True for tensors of the ImageNet head (reduction layer, GCP, classifier)."""
    return key.startswith(HEAD_PREFIXES)


def read_weights(source: str | os.PathLike) -> dict[str, Any]:
    """A checkpoint dict from a local file (``weights_only``) or an mmengine URL scheme."""
    text = str(source)
    if text.startswith(REMOTE_SCHEMES):
        from mmengine.runner.checkpoint import CheckpointLoader

        require_weights_only_default()
        try:
            checkpoint = CheckpointLoader.load_checkpoint(text, map_location="cpu")
        except Exception as exc:  # network / cache failures from mmengine
            raise GcpbenchError(f"cannot fetch backbone weights '{text}' ({first_line(exc)}); "
                                "pass --ckpt PATH to a local file") from None
        return dict(checkpoint)
    if not os.path.isfile(text):
        raise GcpbenchError(f"backbone weights '{text}' not found; pass --ckpt PATH (gcpbench, iSQRT-COV or torchvision "
                            "ResNet checkpoint) or --ckpt none to start from random weights")
    return read_mmengine_checkpoint(text)  # a detector checkpoint (prefix='backbone.') holds mmengine state


def _check_model_name(checkpoint: Mapping[str, Any], depth: int, source: str, mode: str | None = None) -> None:
    """A gcpbench checkpoint names its model: its depth must be the backbone's, and its head the
    one the backbone's mode reads (gap: GAP weights; gcp_d / gcp_m: GCP weights)."""
    name = checkpoint.get("model")
    info = ZOO.get(name) if isinstance(name, str) else None
    if info is None:
        return
    if info.arch != f"resnet{depth}":
        raise GcpbenchError(f"backbone weights '{source}' hold a '{name}', the backbone is resnet{depth}: "
                            f"pick --backbone {info.arch}_<mode> or other weights")
    if mode is not None and info.head.is_gcp != (mode != "gap"):
        modes = f"{info.arch}_gcp_d or {info.arch}_gcp_m" if info.head.is_gcp else f"{info.arch}_gap"
        raise GcpbenchError(f"backbone weights '{source}' hold a '{name}' ({info.head.kind.upper()} head), but the "
                            f"backbone resnet{depth}_{mode} reads {'GAP' if mode == 'gap' else 'GCP'} weights: "
                            f"pick --backbone {modes}, or other weights")


def backbone_state(checkpoint: Mapping[str, Any], prefix: str = "",
                   source: str = "backbone weights") -> tuple[dict[str, Tensor], list[str]]:
    """(backbone tensors, dropped head keys) of a checkpoint; ``prefix`` selects a sub-module."""
    state = extract_state_dict(checkpoint, source)
    if prefix:
        state = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    dropped = sorted(k for k in state if is_head_key(k))
    return {k: v for k, v in state.items() if not is_head_key(k)}, dropped


def fit_backbone_state(expected: Mapping[str, Tensor], checkpoint: Mapping[str, Any], depth: int, source: str,
                       prefix: str = "", mode: str | None = None) -> tuple[dict[str, Tensor], list[str]]:
    """(backbone tensors, dropped head keys) of ``checkpoint``, checked against ``expected``
    (name -> tensor, e.g. a state dict on the meta device) and the backbone's ``mode``; a misfit
    raises one line."""
    _check_model_name(checkpoint, depth, source, mode)
    state, dropped = backbone_state(checkpoint, prefix, f"backbone weights '{source}'")
    problem = None
    for key, tensor in expected.items():
        if key not in state:
            if not key.endswith("num_batches_tracked"):  # old torchvision files lack these counters
                problem = f"missing backbone tensor '{key}'"
                break
        elif tuple(state[key].shape) != tuple(tensor.shape):
            problem = f"backbone tensor '{key}' has shape {tuple(state[key].shape)}, resnet{depth} expects {tuple(tensor.shape)}"
            break
    if problem is None:
        extra = [k for k in state if k not in expected]
        problem = f"unexpected tensor '{extra[0]}' (not part of a resnet{depth} backbone)" if extra else None
    if problem is not None:
        guess = guess_model(extract_state_dict(checkpoint))
        hint = f"; it looks like a '{guess}' checkpoint" if guess and not guess.startswith(f"resnet{depth}_") else ""
        raise GcpbenchError(f"backbone weights '{source}' do not fit resnet{depth}: {problem}{hint}")
    return state, dropped


def load_backbone_weights(backbone: nn.Module, source: str | os.PathLike, depth: int, prefix: str = "") -> list[str]:
    """Load ``source`` into ``backbone`` strictly (head dropped); returns the dropped head keys."""
    state, dropped = fit_backbone_state(backbone.state_dict(), read_weights(source), depth, str(source), prefix,
                                        getattr(backbone, "mode", None))
    backbone.load_state_dict(state, strict=False)
    return dropped
