"""One registry for the model zoo: names, construction, CLI spelling and suggestions."""
from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Callable

from torch import nn

from gcpbench.errors import GcpbenchError
from gcpbench.models.heads import HeadSpec
from gcpbench.models.mobilenetv2 import MobileNetV2
from gcpbench.models.resnet import ResNet
from gcpbench.models.shufflenetv2 import ShuffleNetV2
from gcpbench.pooling.registry import DEFAULT_NORM, NORMS, method


@dataclass(frozen=True)
class ModelInfo:
    """What the registry knows about one zoo model."""

    name: str
    arch: str  # resnet18, ..., mobilenetv2, shufflenetv2
    family: str  # resnet | mobilenetv2 | shufflenetv2
    head: HeadSpec
    factory: Callable[[HeadSpec, int], nn.Module] = field(repr=False, compare=False)
    original_name: str | None = None  # the released iSQRT-COV checkpoint's model name
    classifier_key: str = "fc.weight"


def _resnet(depth: int) -> Callable[[HeadSpec, int], nn.Module]:
    return lambda head, num_classes: ResNet(depth, head, num_classes)


def _register() -> dict[str, ModelInfo]:
    models: dict[str, ModelInfo] = {}

    def add(arch: str, family: str, factory, heads: dict[str, HeadSpec], originals: dict[str, str], key: str) -> None:
        for suffix, head in heads.items():
            name = f"{arch}_{suffix}"
            models[name] = ModelInfo(name, arch, family, head, factory, originals.get(suffix), key)

    three = _heads((256, 128))
    for depth in (18, 34, 50, 101):
        arch = f"resnet{depth}"
        add(arch, "resnet", _resnet(depth), three,
            {"gcp": f"{arch}_mpncov", "gcp128": f"{arch}_mpncov_128"}, "fc.weight")
    add("mobilenetv2", "mobilenetv2", lambda h, n: MobileNetV2(h, n), three,
        {"gcp": "mobilenet_v2_mpncov", "gcp128": "mobilenet_v2_mpncov_128"}, "classifier.1.weight")
    add("shufflenetv2", "shufflenetv2", lambda h, n: ShuffleNetV2(h, n), _heads((256,)),
        {"gcp": "shufflenet_v2_mpncov_x1_0"}, "fc.weight")
    return models


def _heads(dims: tuple[int, ...]) -> dict[str, HeadSpec]:
    """GAP, then per GCP dimension every normalisation: ``gcp`` / ``gcp128`` (iSQRT-COV, the
    released models), ``gcp_mpn``, ``gcp128_log``, ... (:data:`gcpbench.pooling.registry.NORMS`)."""
    heads = {"gap": HeadSpec("gap")}
    for norm in NORMS:
        for dim in dims:
            head = HeadSpec("gcp", dim, norm=norm)
            heads[head.suffix[1:]] = head
    return heads


MODELS: dict[str, ModelInfo] = _register()
ARCHS: tuple[str, ...] = tuple(dict.fromkeys(info.arch for info in MODELS.values()))
ALIASES = {"mobilenet_v2": "mobilenetv2", "shufflenet_v2": "shufflenetv2", "shufflenetv2_x1_0": "shufflenetv2"}


def list_models() -> list[str]:
    """Every zoo model name, e.g. ``resnet50_gcp``."""
    return list(MODELS)


def closest(name: str, choices: list[str] | tuple[str, ...]) -> str:
    """A ' (did you mean X?)' hint, or '' when nothing is close."""
    match = difflib.get_close_matches(name.lower(), list(choices), n=1, cutoff=0.4)
    return f" (did you mean '{match[0]}'?)" if match else ""


def closest_model(name: str, choices: list[str] | tuple[str, ...]) -> str:
    """:func:`closest` among zoo ``choices``, else among timm / torchvision names."""
    from gcpbench.models.external import suggestion

    return closest(name, choices) or suggestion(name)


def model_info(name: str) -> ModelInfo:
    """The registry entry for ``name``; an unknown name raises with the closest valid one."""
    info = MODELS.get(name.lower())
    if info is None:
        raise GcpbenchError(f"unknown model '{name}'{closest_model(name, list_models())}; `gcpbench zoo` lists them all")
    return info


FAMILIES: tuple[str, ...] = ("resnet", "mobilenetv2", "shufflenetv2")


def family_of(name: str) -> str:
    """The family of a family name (``resnet``), an architecture (``resnet50``) or a zoo name
    (``resnet50_gcp``); an unknown name raises with the closest valid one."""
    lowered = name.lower()
    if lowered in FAMILIES:
        return lowered
    return model_info(model_name(lowered)).family


def model_name(arch: str, head: str = "gap", gcp_dim: int = 256, gcp_norm: str | None = None) -> str:
    """The zoo name for the CLI spelling ``ARCH --head H [--gcp-dim D] [--gcp-norm NAME]``; a
    full name (``resnet50_gcp_mpn``) comes back as it is, and ``gcp_norm`` must agree with it."""
    arch = ALIASES.get(arch.lower(), arch.lower())
    if arch not in ARCHS:
        if arch in MODELS:  # a full name such as resnet50_gcp was given
            return _agreeing_norm(MODELS[arch], gcp_norm)
        raise GcpbenchError(f"unknown architecture '{arch}'{closest_model(arch, ARCHS)}; choose from {', '.join(ARCHS)} "
                            "or a timm/<name>, torchvision/<name>")
    head = head.lower()
    if head not in ("gap", "gcp"):
        raise GcpbenchError(f"unknown head '{head}': use --head gap or --head gcp")
    if head == "gap":
        if gcp_norm is not None:
            raise GcpbenchError(f"--gcp-norm {gcp_norm} applies to GCP heads only: add --head gcp")
        return f"{arch}_gap"
    if gcp_dim not in (256, 128):
        raise GcpbenchError(f"--gcp-dim must be 256 or 128, got {gcp_dim}")
    name = arch + HeadSpec("gcp", gcp_dim, norm=method(gcp_norm or DEFAULT_NORM).name).suffix
    if name not in MODELS:
        raise GcpbenchError(f"{arch} has no GCP-{gcp_dim} variant; available: {', '.join(n for n in MODELS if n.startswith(arch))}")
    return name


def _agreeing_norm(info: ModelInfo, gcp_norm: str | None) -> str:
    """``info.name`` when ``gcp_norm`` is not given or is what the name says; else one line."""
    if gcp_norm is None:
        return info.name
    said = info.head.norm if info.head.is_gcp else None
    if said != method(gcp_norm).name:
        what = f"the {said} normalisation" if said else "a GAP head"
        raise GcpbenchError(f"'{info.name}' names {what} but --gcp-norm {gcp_norm} was given; drop one of them")
    return info.name


def build_architecture(name: str, num_classes: int = 1000, gcp_options: dict | None = None) -> nn.Module:
    """Construct ``name`` with freshly initialised weights; ``gcp_options`` are the GCP
    normalisation's options (``{"power": 0.25}`` for an ``_mpn`` model; checked)."""
    info = model_info(name)
    model = info.factory(info.head.with_options(gcp_options), num_classes)
    model.zoo_name = info.name
    return model
