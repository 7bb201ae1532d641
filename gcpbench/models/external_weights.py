"""Local weight files for timm / torchvision models, and a report of what was loaded.

Accepted: timm checkpoints (``.pth``, ``.bin``, ``.safetensors``; a plain state dict or one under
``state_dict`` / ``model`` / ``state_dict_ema``), torchvision ``.pth`` files, gcpbench checkpoints
and released iSQRT-COV ``.pth.tar`` files (``module.`` prefixes dropped). Everything is read with
``weights_only`` (``.safetensors`` through the ``safetensors`` package); nothing is downloaded.

Key mapping into :class:`~gcpbench.models.external.ExternalModel`: a file key ``k`` goes to
``backbone.k`` (the source's own names) or, for GCP-head tensors (``layer_reduce*``, ``fc``),
to ``k`` itself, so a released iSQRT-COV ResNet loads into ``torchvision/resnet50_gcp_s1``.
The backbone must load completely, shapes equal; the classifier (and a new GCP head) may be
absent or of another shape (the fine-tuning case): those tensors keep their fresh
initialisation, and file tensors of the modules a GCP head replaced are ignored. The report
says which.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from torch import Tensor

from gcpbench.errors import GcpbenchError
from gcpbench.models.checkpoint_file import read_checkpoint
from gcpbench.models.external import ExternalModel
from gcpbench.runtime import first_line

_STATE_KEYS = ("state_dict", "model", "state_dict_ema", "model_ema")
_PREFIXES = ("module.", "_orig_mod.")


def read_weights(path: str | os.PathLike) -> dict[str, Any]:
    """The file's content as a dict (``.safetensors``: the tensors themselves)."""
    path = Path(path)
    if path.suffix.lower() != ".safetensors":
        return read_checkpoint(path)
    if not path.is_file():
        raise GcpbenchError(f"weights file '{path}' does not exist")
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return dict(load_file(str(path), device="cpu"))
    except (SafetensorError, OSError, ValueError) as exc:
        raise GcpbenchError(f"cannot read weights '{path}': {first_line(exc)}") from None


def _is_state(obj: Any) -> bool:
    return isinstance(obj, Mapping) and bool(obj) and all(isinstance(v, Tensor) for v in obj.values())


def _strip(key: str) -> str:
    changed = True
    while changed:
        changed = False
        for prefix in _PREFIXES:
            if key.startswith(prefix):
                key, changed = key[len(prefix):], True
    return key


def state_dict_of(obj: Mapping[str, Any], source: str = "weights") -> dict[str, Tensor]:
    """The tensors of any accepted checkpoint form, DataParallel / compile prefixes dropped."""
    state = next((obj[k] for k in _STATE_KEYS if k in obj and _is_state(obj[k])), obj)
    if not _is_state(state):
        raise GcpbenchError(f"{source} holds no state dict of tensors (looked at the top level and "
                            f"{', '.join(_STATE_KEYS)})")
    return {_strip(k): v for k, v in state.items()}


@dataclass
class LoadReport:
    """What a weights file gave a model."""

    source: str
    loaded: list[str] = field(default_factory=list)
    initialised: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)

    def describe(self) -> str:
        """One line: counts, and which tensors were initialised or ignored."""
        line = f"loaded {len(self.loaded)} tensors from {self.source}"
        if self.initialised:
            line += f"; initialised {len(self.initialised)} ({short_list(self.initialised)})"
        if self.ignored:
            line += f"; ignored {len(self.ignored)} from the file ({short_list(self.ignored)})"
        return line

    def as_dict(self) -> dict[str, Any]:
        return {"source": self.source, "loaded": len(self.loaded), "initialised": self.initialised,
                "ignored": self.ignored}


def short_list(keys: list[str], limit: int = 6) -> str:
    return ", ".join(keys[:limit]) + (f", ... {len(keys) - limit} more" if len(keys) > limit else "")


def _head_key(model: ExternalModel, key: str) -> bool:
    """A tensor that may keep its initialisation: the classifier, or any part of a GCP head."""
    return key.startswith(model.classifier_prefix) or not key.startswith("backbone.")


def _target(model: ExternalModel, key: str, expected: Mapping[str, Tensor]) -> str | None:
    if key in expected:  # a gcpbench checkpoint of this very model, or a GCP-head tensor
        return key
    return f"backbone.{key}" if f"backbone.{key}" in expected else None


def _dropped(model: ExternalModel, key: str) -> bool:
    """A file tensor of a module the GCP head replaced (classifier, head norm)."""
    return any(key == p or key.startswith(p + ".") for p in model.pruned)


def load_external(model: ExternalModel, weights: str | os.PathLike | Mapping[str, Any]) -> LoadReport:
    """Load a weights file (or dict) into ``model``; see the module docstring for the rules."""
    source = f"'{weights}'" if isinstance(weights, (str, os.PathLike)) else "the given weights"
    obj = read_weights(weights) if isinstance(weights, (str, os.PathLike)) else weights
    state = state_dict_of(obj, f"weights {source}")
    expected = model.state_dict()
    report = LoadReport(source)
    chosen: dict[str, Tensor] = {}
    for key, tensor in state.items():
        target = _target(model, key, expected)
        if target is None:
            if _dropped(model, key):
                report.ignored.append(key)
                continue
            raise GcpbenchError(f"weights {source} do not fit '{model.zoo_name}': unexpected key '{key}' "
                                f"(is it a checkpoint of another architecture?)")
        if tuple(tensor.shape) != tuple(expected[target].shape):
            if _head_key(model, target):
                report.ignored.append(key)
                continue
            raise GcpbenchError(f"weights {source} do not fit '{model.zoo_name}': key '{key}' has shape "
                                f"{tuple(tensor.shape)}, the model expects {tuple(expected[target].shape)}")
        chosen[target] = tensor
    for key in expected:
        if key not in chosen and not key.endswith("num_batches_tracked"):  # often left out of files
            if not _head_key(model, key):
                raise GcpbenchError(f"weights {source} do not fit '{model.zoo_name}': missing key "
                                    f"'{key.removeprefix('backbone.')}' (is it a checkpoint of another architecture?)")
            report.initialised.append(key)
    model.load_state_dict(chosen, strict=False)
    report.loaded = list(chosen)
    return report
