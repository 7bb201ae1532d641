"""One registry for the model zoo: names, construction, CLI spelling and suggestions."""
from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from typing import Callable

from torch import nn

from gcpbench.errors import GcpbenchError, option
from gcpbench.models.external import is_external, parse_name, suggestion
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


def list_models(pattern: str | None = None) -> list[str]:
    """Every zoo model name (``resnet50_gcp``), or those matching the shell ``pattern``
    (``*_gcp*``, case-insensitive; as timm's ``list_models``). Any GCP size D also builds
    (``resnet50_gcp64``); the list holds the paper's 256 and 128."""
    import fnmatch

    names = list(MODELS)
    return [n for n in names if fnmatch.fnmatch(n, pattern.lower())] if pattern else names


def is_zoo_name(name: str) -> bool:
    """True for a full zoo name, any GCP size included (``resnet18_gcp``, ``resnet18_gcp48``)."""
    try:
        model_info(name)
    except GcpbenchError:
        return False
    return True


def closest(name: str, choices: list[str] | tuple[str, ...]) -> str:
    """A ' (did you mean X?)' hint, or '' when nothing is close."""
    match = difflib.get_close_matches(name.lower(), list(choices), n=1, cutoff=0.4)
    return f" (did you mean '{match[0]}'?)" if match else ""


def closest_model(name: str, choices: list[str] | tuple[str, ...]) -> str:
    """:func:`closest` among zoo ``choices``, else among timm / torchvision names."""
    return closest(name, choices) or suggestion(name)


_ANY_GCP = re.compile(r"^(?P<base>.+_gcp)(?P<dim>\d+)(?:_(?P<norm>" + "|".join(NORMS) + r"))?$")


def _any_gcp_size(name: str) -> ModelInfo | None:
    """``ARCH_gcpD`` for any D >= 2 (as timm / torchvision names take): the zoo's GCP model of
    ARCH with D channels in front of the covariance; None when ``name`` is not of that form."""
    match = _ANY_GCP.match(name)
    base = MODELS.get(match["base"]) if match else None
    if base is None or not base.head.is_gcp:
        return None
    dim = int(match["dim"])
    if dim < 2:
        raise GcpbenchError(f"'{name}': the GCP size must be at least 2 (its covariance is D x D), got {dim}")
    head = HeadSpec("gcp", dim, norm=match["norm"] or DEFAULT_NORM)
    return ModelInfo(name, base.arch, base.family, head, base.factory, None, base.classifier_key)


def model_info(name: str) -> ModelInfo:
    """The registry entry for ``name`` (any GCP size: ``resnet50_gcp64``); an unknown name raises
    with the closest valid one."""
    info = MODELS.get(name.lower()) or _any_gcp_size(name.lower())
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


def named_options(info: ModelInfo) -> dict[str, object]:
    """What a zoo name fixes: its head, GCP size and normalisation (``None``: the option does not apply)."""
    return {"head": info.head.kind, "gcp_dim": info.head.dim if info.head.is_gcp else None,
            "gcp_norm": info.head.norm if info.head.is_gcp else None}


def model_name(arch: str, head: str | None = None, gcp_dim: int | None = None, gcp_norm: str | None = None) -> str:
    """The zoo name for the CLI spelling ``ARCH [--head H] [--gcp-dim D] [--gcp-norm NAME]`` (None:
    not given; defaults GAP, 256, isqrt; a normalisation alone means a GCP head), or a full zoo
    name (``resnet50_gcp_mpn``), which the given options must agree with."""
    from gcpbench.models.options import check_agrees

    gcp_norm = method(gcp_norm).name if gcp_norm is not None else None
    arch = ALIASES.get(arch.lower(), arch.lower())
    if arch not in ARCHS:
        if arch in MODELS or _any_gcp_size(arch):  # a full name such as resnet50_gcp was given
            info = model_info(arch)

            def alternative(option: str, value: object) -> str | None:
                wanted = {**named_options(info), option: value}
                if wanted["head"] == "gap":
                    wanted["gcp_dim"] = wanted["gcp_norm"] = None
                try:
                    return model_name(info.arch, **wanted)
                except GcpbenchError:
                    return None

            check_agrees(arch, named_options(info), {"head": head, "gcp_dim": gcp_dim, "gcp_norm": gcp_norm},
                         alternative)
            return arch
        raise GcpbenchError(f"unknown architecture '{arch}'{closest_model(arch, ARCHS)}; choose from {', '.join(ARCHS)} "
                            "or a timm/<name>, torchvision/<name>")
    head = (head or ("gcp" if gcp_norm else "gap")).lower()
    if head not in ("gap", "gcp"):
        raise GcpbenchError(f"unknown head '{head}': use {option('head', 'gap')} or {option('head', 'gcp')}")
    if head == "gap":
        check_agrees(f"{arch}_gap", {"gcp_dim": None, "gcp_norm": None}, {"gcp_dim": gcp_dim, "gcp_norm": gcp_norm})
        return f"{arch}_gap"
    gcp_dim = 256 if gcp_dim is None else gcp_dim
    if gcp_dim < 2:
        raise GcpbenchError(f"{option('gcp_dim')} must be at least 2 (the covariance is D x D), got {gcp_dim}")
    name = arch + HeadSpec("gcp", gcp_dim, norm=gcp_norm or DEFAULT_NORM).suffix
    if model_info(name).head.dim != gcp_dim:
        raise AssertionError(f"{name} does not carry GCP size {gcp_dim}")
    return name


def build_architecture(name: str, num_classes: int = 1000, gcp_options: dict | None = None) -> nn.Module:
    """Construct ``name`` with freshly initialised weights; ``gcp_options`` are the GCP
    normalisation's options (``{"power": 0.25}`` for an ``_mpn`` model; checked)."""
    info = model_info(name)
    model = info.factory(info.head.with_options(gcp_options), num_classes)
    model.zoo_name = info.name
    return model


@dataclass(frozen=True)
class ModelIdentity:
    """What every command records about a model: name, architecture, family (None for
    timm/torchvision models) and head."""

    name: str
    arch: str
    family: str | None
    head: HeadSpec


def model_identity(name: str, gcp_options: dict | None = None) -> ModelIdentity:
    """The identity of a zoo name, an architecture (``resnet50``: GAP) or a timm/torchvision name;
    ``gcp_options`` (the GCP normalisation's options, checked) go into the head."""
    if is_external(name):
        spec = parse_name(name, gcp_options=gcp_options)
        return ModelIdentity(spec.name, spec.base, None, spec.head)
    info = model_info(model_name(name))
    return ModelIdentity(info.name, info.arch, info.family, info.head.with_options(gcp_options))
