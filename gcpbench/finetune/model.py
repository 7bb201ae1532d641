"""The model a fine-tuning starts from: a checkpoint's network with a new classifier.

The source (``--ckpt`` or ``--model NAME --weights FILE``) is first loaded as it was saved
(:func:`gcpbench.models.resolve.resolve_model`: strict for zoo checkpoints, so a checkpoint of
another architecture stops here with one line). The target is the same model (``--head gcp``:
its GCP variant) with ``num_classes`` outputs; every target tensor is copied from the source
when the source has it with the same shape, except the classifier, which is re-initialised. A
GCP head the source already has is reused as it is (the covariance does not depend on the
spatial size, so a head trained at 224 works at 448); a GAP source asked for ``--head gcp`` gets
a freshly initialised reduction layer. Anything else that does not fit is an error.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from gcpbench.errors import GcpbenchError


@dataclass
class Transfer:
    """What the target took from the source."""

    target: str
    source_model: str
    source_path: Path
    checkpoint: dict[str, Any]  # the source file's dict ({} for a bare state dict)
    copied: list[str] = field(default_factory=list)
    initialised: list[str] = field(default_factory=list)  # classifier, new GCP head
    ignored: list[str] = field(default_factory=list)  # source tensors the target has no place for

    def describe(self) -> str:
        from gcpbench.models.external_weights import short_list

        line = f"{self.target} from {self.source_model} ('{self.source_path}'): copied {len(self.copied)} tensors"
        if self.initialised:
            line += f"; initialised {len(self.initialised)} ({short_list(self.initialised)})"
        if self.ignored:
            line += f"; left out {len(self.ignored)} of the source's ({short_list(self.ignored)})"
        return line


def classifier_prefix(model: nn.Module) -> str:
    """The state-dict prefix of ``model``'s classifier (``fc.``, ``classifier.1.``, ...)."""
    prefix = getattr(model, "classifier_prefix", None)
    if prefix is not None:
        return prefix
    from gcpbench.models.registry import model_info

    return model_info(model.zoo_name).classifier_key.rsplit(".", 1)[0] + "."


def target_name(source: str, head: str | None, gcp_dim: int | None) -> str:
    """The model to fine-tune: ``source``, or its GCP variant for ``head='gcp'``."""
    from gcpbench.models.external import is_external, parse_name
    from gcpbench.models.registry import model_identity
    from gcpbench.models.registry import model_name

    info = model_identity(source)
    wanted = (head or info.head.kind).lower()
    if wanted not in ("gap", "gcp"):
        raise GcpbenchError(f"unknown head '{head}': use --head gap or --head gcp")
    if info.head.is_gcp and wanted == "gap":
        raise GcpbenchError(f"{source} has a GCP head; fine-tuning keeps it (drop --head gap, or start from a GAP "
                            "checkpoint)")
    if info.head.is_gcp:
        if gcp_dim is not None and gcp_dim != info.head.dim:
            raise GcpbenchError(f"--gcp-dim {gcp_dim} differs from {source}'s GCP dimension {info.head.dim}; "
                                "its GCP head is reused as it is")
        return info.name
    if wanted == "gap":
        if gcp_dim is not None:
            raise GcpbenchError("--gcp-dim applies to a new GCP head: add --head gcp")
        return info.name
    if is_external(source):
        spec = parse_name(source)
        return parse_name(spec.base, "gcp", gcp_dim, spec.last_stride_one or None).name
    return model_name(info.arch, "gcp", gcp_dim or 256)


def _build_target(name: str, num_classes: int, source: nn.Module) -> nn.Module:
    from gcpbench.models.weights import build, gcp_options_of

    spec = getattr(source, "spec", None)
    kwargs = dict(spec.kwargs) if spec is not None else {}
    # a kept GCP head keeps its normalisation's options (e.g. the MPN power) too
    options = gcp_options_of(source) if name == source.zoo_name else {}
    return build(name, num_classes, gcp_options=options or None, **kwargs)


def transfer_state(source: nn.Module, target: nn.Module) -> tuple[list[str], list[str], list[str]]:
    """Copy ``source``'s tensors into ``target`` (see the module docstring); returns the copied,
    the initialised target keys and the source keys left out. Raises when a backbone tensor
    is missing from the source or has another shape."""
    have = source.state_dict()
    want = target.state_dict()
    head = classifier_prefix(target)
    copied: dict[str, Any] = {}
    initialised: list[str] = []
    for key, tensor in want.items():
        if key.startswith(head):
            initialised.append(key)
        elif key in have and tuple(have[key].shape) == tuple(tensor.shape):
            copied[key] = have[key]
        elif key in have:
            raise GcpbenchError(f"{source.zoo_name}'s '{key}' has shape {tuple(have[key].shape)}, {target.zoo_name} "
                                f"expects {tuple(tensor.shape)}: the checkpoint is of another architecture")
        elif _new_head_key(source, target, key):
            initialised.append(key)
        elif not key.endswith("num_batches_tracked"):
            raise GcpbenchError(f"{source.zoo_name} has no '{key}', which {target.zoo_name} needs: the checkpoint is "
                                "of another architecture")
    target.load_state_dict(copied, strict=False)
    ignored = [key for key in have if key not in want or key.startswith(classifier_prefix(source))]
    return list(copied), initialised, ignored


def _new_head_key(source: nn.Module, target: nn.Module, key: str) -> bool:
    """A tensor of a GCP head that the (GAP) source does not have."""
    from gcpbench.models.registry import model_identity

    new_head = model_identity(target.zoo_name).head.is_gcp and not model_identity(source.zoo_name).head.is_gcp
    return new_head and key.split(".", 1)[0] in ("layer_reduce", "layer_reduce_bn")


def finetune_model(ckpt: str | os.PathLike | None, model: str | None, weights: str | os.PathLike | None,
                   num_classes: int, head: str | None = None, gcp_dim: int | None = None) -> tuple[nn.Module, Transfer]:
    """The network to fine-tune and what it took from the source checkpoint."""
    from gcpbench.models.resolve import resolve_model
    from gcpbench.models.weights import require_finite

    resolved = resolve_model(ckpt, model, weights)
    source = resolved.model
    require_finite(source.state_dict(), f"checkpoint '{resolved.path}'")
    name = target_name(source.zoo_name, head, gcp_dim)
    target = _build_target(name, num_classes, source)
    copied, initialised, ignored = transfer_state(source, target)
    return target, Transfer(name, source.zoo_name, resolved.path, resolved.checkpoint, copied, initialised, ignored)


def parameter_groups(model: nn.Module, lr: float, factor: float, weight_decay: float,
                     head_weight_decay: float) -> list[dict[str, Any]]:
    """SGD groups: everything but the classifier at ``lr``, the classifier at ``lr * factor``;
    each group's ``lr_factor`` is read by the trainer when it sets the epoch's LR."""
    head = classifier_prefix(model)
    body, classifier = [], []
    for name, parameter in model.named_parameters():
        (classifier if name.startswith(head) else body).append(parameter)
    if not classifier:
        raise GcpbenchError(f"{model.zoo_name} has no parameters under '{head}' (its classifier)")
    return [{"params": body, "lr": lr, "lr_factor": 1.0, "weight_decay": weight_decay},
            {"params": classifier, "lr": lr * factor, "lr_factor": factor, "weight_decay": head_weight_decay}]
