"""Any timm or torchvision classifier as a gcpbench model, with its own head (GAP) or a GCP head.

Names: ``timm/<name>`` (anything ``timm.create_model(name, pretrained=False)`` builds) and
``torchvision/<name>`` (any classification model of ``torchvision.models``). A GCP variant is
spelled like the zoo's: ``timm/convnext_atto_gcp`` (D = 256), ``timm/convnext_atto_gcp128``,
and ``_s1`` at the end keeps the paper's ResNet trick (the last stage's first block at stride
1), e.g. ``torchvision/resnet50_gcp_s1``.

:class:`ExternalModel` wraps the backbone (``backbone.*`` keys). With ``head="gcp"`` the
backbone's pooling and classifier are dropped and the zoo's GCP head (1x1 reduction to D, BN,
ReLU, iSQRT-COV, Linear on the D(D+1)/2 vector; :mod:`gcpbench.models.heads`) runs on the last
feature map: timm's ``forward_features`` (the patch tokens of token models such as ViT, prefix
tokens dropped, are the M positions), or for torchvision the input of the model's global
average pooling. Everything the feature path never runs (the original classifier, a head
norm) is removed, found by tracing one forward on the meta device: no per-model code.

The landscape probe cuts every model after its stem; for these models the stem is, generically,
the first module with parameters that runs (the first convolution or patch projection).
"""
from __future__ import annotations

import difflib
import fnmatch
import functools
import re
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from gcpbench.errors import GcpbenchError, option
from gcpbench.models.options import check_agrees
from gcpbench.models.heads import HeadSpec, make_gcp, reduction_block
from gcpbench.pooling.registry import DEFAULT_NORM, NORMS, method
from gcpbench.runtime import first_line

SOURCES: tuple[str, ...] = ("timm", "torchvision")
_NORMS = "|".join(n for n in NORMS if n != DEFAULT_NORM)
_NAME = re.compile(r"^(?P<source>timm|torchvision)/(?P<arch>.+?)(?:_gcp(?P<dim>\d+)?(?:_(?P<norm>" + _NORMS
                   + r"))?)?(?P<s1>_s1)?$")


def is_external(name: str | None) -> bool:
    """True for ``timm/...`` and ``torchvision/...`` names."""
    return bool(name) and name.split("/", 1)[0].lower() in SOURCES and "/" in name


@dataclass(frozen=True)
class ExternalSpec:
    """What to build: source, architecture, head, the ResNet stride trick and builder kwargs."""

    source: str
    arch: str
    head: HeadSpec = HeadSpec("gap")
    last_stride_one: bool = False
    kwargs: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)

    @property
    def base(self) -> str:
        """``timm/convnext_atto``: the backbone's name without head suffixes."""
        return f"{self.source}/{self.arch}"

    @property
    def name(self) -> str:
        """The full model name, e.g. ``timm/convnext_atto_gcp128_s1``, ``timm/convnext_tiny_gcp_dropcov``."""
        name = self.base
        if self.head.is_gcp:
            name += self.head.suffix
        return name + ("_s1" if self.last_stride_one else "")


def parse_name(name: str, head: str | None = None, gcp_dim: int | None = None, last_stride_one: bool | None = None,
               kwargs: dict[str, Any] | None = None, gcp_norm: str | None = None,
               gcp_options: dict[str, Any] | None = None) -> ExternalSpec:
    """The spec of an external name; ``head``/``gcp_dim``/``last_stride_one``/``gcp_norm`` add to
    (and must agree with) what the name's suffixes say; ``gcp_options`` are the normalisation's
    options. Unknown architectures raise with the closest name."""
    match = _NAME.match(name.strip())
    if match is None:
        raise GcpbenchError(f"'{name}' is not a timm/<name> or torchvision/<name> model name")
    source, arch = match["source"], match["arch"]
    named_gcp = "_gcp" in match.group(0)[match.end("arch"):]
    gcp_norm = method(gcp_norm).name if gcp_norm is not None else None
    implied: dict[str, Any] = {"head": "gcp"} if named_gcp else {}  # what the suffixes say
    if match["dim"]:
        implied["gcp_dim"] = int(match["dim"])
    if named_gcp:
        implied["gcp_norm"] = match["norm"] or DEFAULT_NORM
    if match["s1"]:
        implied["last_stride_one"] = True
    check_agrees(name, implied, {"head": head, "gcp_dim": gcp_dim, "gcp_norm": gcp_norm,
                                 "last_stride_one": last_stride_one})
    head = (head or ("gcp" if named_gcp or gcp_norm else "gap")).lower()
    if head not in ("gap", "gcp"):
        raise GcpbenchError(f"unknown head '{head}': use {option('head', 'gap')} or {option('head', 'gcp')}")
    if head == "gap":
        check_agrees(name, {"gcp_dim": None, "gcp_norm": None}, {"gcp_dim": gcp_dim, "gcp_norm": gcp_norm})
    dim = implied.get("gcp_dim") or gcp_dim or 256
    if dim < 2:
        raise GcpbenchError(f"{option('gcp_dim')} must be at least 2, got {dim}")
    stride_one = bool(match["s1"]) or bool(last_stride_one)
    if stride_one and head != "gcp":
        raise GcpbenchError(f"the last-stage stride-1 option belongs to GCP heads (the paper's ResNet trick); add "
                            f"{option('head', 'gcp')}")
    norm = match["norm"] or gcp_norm or DEFAULT_NORM
    check_arch(source, arch)
    spec = HeadSpec(head, dim, norm=norm).with_options(gcp_options) if head == "gcp" else HeadSpec("gap")
    return ExternalSpec(source, arch, spec, stride_one, dict(kwargs or {}))


# ------------------------------------------------------------------------------ names

@functools.lru_cache(maxsize=None)
def source_names(source: str) -> tuple[str, ...]:
    """Every architecture name ``source`` ('timm' or 'torchvision') can build."""
    if source == "timm":
        import timm

        return tuple(timm.list_models())
    if source == "torchvision":
        import torchvision

        return tuple(torchvision.models.list_models(module=torchvision.models))
    raise GcpbenchError(f"unknown model source '{source}': use zoo, timm or torchvision")


def list_external(source: str, pattern: str | None = None) -> list[str]:
    """``source/<name>`` for every name matching the shell pattern (``*convnext*``)."""
    names = source_names(source)
    if pattern:
        names = tuple(n for n in names if fnmatch.fnmatch(n, pattern))
    return [f"{source}/{n}" for n in names]


def suggestion(name: str) -> str:
    """' (did you mean X?)' over every timm and torchvision name, or ''."""
    lowered = name.lower()
    names = [*list_external("timm"), *list_external("torchvision")]
    # compare bare architecture names too, so 'convnext_atto' suggests 'timm/convnext_atto'
    bare = {n.split("/", 1)[-1]: n for n in reversed(names)}
    match = difflib.get_close_matches(lowered, names, n=1, cutoff=0.6) or [
        bare[m] for m in difflib.get_close_matches(lowered.split("/", 1)[-1], list(bare), n=1, cutoff=0.6)]
    return f" (did you mean '{match[0]}'?)" if match else ""


def check_arch(source: str, arch: str) -> None:
    """Raise with the closest name when ``source`` cannot build ``arch``."""
    if arch.split(".", 1)[0] not in source_names(source):  # timm names may carry a '.tag'
        raise GcpbenchError(f"unknown model '{source}/{arch}'{suggestion(f'{source}/{arch}')}; "
                            f"`gcpbench zoo --source {source}` lists them")


# ------------------------------------------------------------------------------ building

def make_backbone(spec: ExternalSpec, num_classes: int) -> nn.Module:
    """The source's own model, freshly initialised (never downloads weights)."""
    kwargs = dict(spec.kwargs)
    try:
        if spec.source == "timm":
            import timm

            return timm.create_model(spec.arch, pretrained=False, num_classes=num_classes, **kwargs)
        import torchvision

        return torchvision.models.get_model(spec.arch, weights=None, num_classes=num_classes, **kwargs)
    except (TypeError, ValueError, AssertionError, RuntimeError) as exc:
        raise GcpbenchError(f"cannot build '{spec.base}' with {kwargs or 'default arguments'}: {first_line(exc)}") from None


def set_last_stage_stride_one(backbone: nn.Module, name: str) -> None:
    """The paper's ResNet trick: the first block of ``layer4`` at stride 1 (convolutions and
    shortcut). Works for torchvision's and timm's ResNets; other backbones raise."""
    layer4 = getattr(backbone, "layer4", None)
    if not isinstance(layer4, nn.Sequential) or len(layer4) == 0:
        raise GcpbenchError(f"the last-stage stride-1 option needs a ResNet ('layer4' stage); '{name}' has none")
    changed = 0
    for module in layer4[0].modules():
        stride = getattr(module, "stride", None)
        if stride not in (2, (2, 2)):
            continue
        if isinstance(module, nn.Conv2d):
            module.stride = (1, 1)
            changed += 1
        elif isinstance(module, nn.Module) and type(module).__module__.startswith("torch.nn"):
            raise GcpbenchError(f"'{name}' down-samples layer4 with a {type(module).__name__}; the stride-1 "
                                "option supports convolution strides only")
        else:
            module.stride = 1  # a block's own record of its stride (torchvision's BasicBlock)
    if changed == 0:
        raise GcpbenchError(f"layer4 of '{name}' has no stride-2 convolution to set to stride 1")


def _global_pool(backbone: nn.Module) -> str | None:
    """Name of the module that pools the last feature map to 1x1 (torchvision), or None."""
    pools = [n for n, m in backbone.named_modules()
             if isinstance(m, nn.AdaptiveAvgPool2d) and m.output_size in (1, (1, 1))]
    return pools[-1] if pools else None


def _has_own_parameters(module: nn.Module) -> bool:
    return next(module.parameters(recurse=False), None) is not None


class _Stop(Exception):
    """Raised by a hook to leave a forward pass early, carrying a tensor."""

    def __init__(self, tensor: Tensor) -> None:
        super().__init__()
        self.tensor = tensor


def _stop_before(module: nn.Module):
    """Leave the forward pass with ``module``'s input."""
    def hook(_module, args):
        raise _Stop(args[0])
    return module.register_forward_pre_hook(hook)


def _stop_after(module: nn.Module):
    """Leave the forward pass with ``module``'s output."""
    def hook(_module, _args, output):
        raise _Stop(output)
    return module.register_forward_hook(hook)


class ExternalModel(nn.Module):
    """A timm / torchvision backbone with its own head (GAP) or the zoo's GCP head.

    Follows the zoo's contract where the tools need it: ``zoo_name``, ``forward_stem`` and
    ``forward_from_stem`` (the landscape probe), ``num_classes``.
    """

    def __init__(self, spec: ExternalSpec, num_classes: int = 1000, input_size: int = 224) -> None:
        super().__init__()
        self.spec = spec
        self.zoo_name = spec.name
        self.num_classes = num_classes
        self.input_shape: tuple[int, ...] = (3, input_size, input_size)
        self.pool_name = None
        self.backbone = make_backbone(spec, num_classes)
        if spec.last_stride_one:
            set_last_stage_stride_one(self.backbone, spec.base)
        if spec.head.is_gcp and spec.source == "torchvision":
            self.pool_name = _global_pool(self.backbone)
            if self.pool_name is None:
                raise GcpbenchError(f"'{spec.base}' pools without an nn.AdaptiveAvgPool2d module, so its last feature "
                                    f"map cannot be found generically; try timm/{spec.arch} for a GCP head")
        order, features = self._trace(input_size)
        self.stem_name = next((n for n in order if _has_own_parameters(self.backbone.get_submodule(n))), None)
        self.pruned: list[str] = []
        if spec.head.is_gcp:
            self.token_prefix, channels = self._feature_layout(features)
            self.pruned = self._prune(set(order))
            reduce = reduction_block(channels, spec.head.dim, nn.ReLU)
            self.layer_reduce, self.layer_reduce_bn, self.layer_reduce_relu = reduce
            self.gcp = make_gcp(spec.head)
            self.fc = nn.Linear(spec.head.pooled_features, num_classes)
            self.classifier_prefix = "fc."
        else:
            last = [n for n in order if _has_own_parameters(self.backbone.get_submodule(n))]
            self.classifier_prefix = f"backbone.{last[-1]}." if last else "fc."

    # ---- construction helpers
    def _trace(self, size: int) -> tuple[list[str], tuple[int, ...]]:
        """Run the feature path (GCP) or the whole model (GAP) once on a meta copy: which modules
        run, in order, and the shape of what comes out."""
        with torch.device("meta"):
            meta = make_backbone(self.spec, self.num_classes)
            if self.spec.last_stride_one:
                set_last_stage_stride_one(meta, self.spec.base)
            x = torch.empty(1, *self.input_shape)
        order: list[str] = []
        handles = [m.register_forward_pre_hook(lambda _m, _a, n=n: order.append(n))
                   for n, m in meta.named_modules() if n]
        try:
            meta.eval()
            out = self._features_of(meta, x) if self.spec.head.is_gcp else meta(x)
        except GcpbenchError:
            raise
        except Exception as exc:
            raise GcpbenchError(f"'{self.spec.base}' does not run on {size}x{size} inputs: {first_line(exc)}") from None
        finally:
            for handle in handles:
                handle.remove()
        return list(dict.fromkeys(order)), tuple(out.shape)

    def _features_of(self, backbone: nn.Module, x: Tensor) -> Tensor:
        """The backbone's last feature map as it comes out (tokens, NHWC or NCHW)."""
        if self.spec.source == "timm":
            return backbone.forward_features(x)
        handle = _stop_before(backbone.get_submodule(self.pool_name))
        try:
            backbone(x)
        except _Stop as stop:
            return stop.tensor
        finally:
            handle.remove()
        raise GcpbenchError(f"'{self.spec.base}' never reached its global pooling '{self.pool_name}'")

    def _feature_layout(self, shape: tuple[int, ...]) -> tuple[int | None, int]:
        """(prefix tokens to drop, or None for a spatial map; channels) of the feature output."""
        if len(shape) == 3:
            return int(getattr(self.backbone, "num_prefix_tokens", 0)), shape[-1]
        if len(shape) == 4:
            return None, shape[-1] if self._nhwc else shape[1]
        raise GcpbenchError(f"'{self.spec.base}' gives features of shape {shape}, neither a feature map nor tokens")

    @property
    def _nhwc(self) -> bool:
        return str(getattr(self.backbone, "output_fmt", "NCHW")) == "NHWC"

    def _prune(self, ran: set[str]) -> list[str]:
        """Replace every module with parameters that the feature path never runs (the original
        classifier, head norms) by nn.Identity; returns their names."""
        pruned = []
        for name, module in list(self.backbone.named_modules()):
            if not name or name in ran or any(name.startswith(p + ".") for p in pruned):
                continue
            parent = name.rsplit(".", 1)[0] if "." in name else ""
            if (parent == "" or parent in ran) and next(module.parameters(), None) is not None:
                owner = self.backbone.get_submodule(parent) if parent else self.backbone
                setattr(owner, name.rsplit(".", 1)[-1], nn.Identity())
                pruned.append(name)
        return pruned

    # ---- forward
    def features(self, x: Tensor) -> Tensor:
        """The last feature map as (B, C, H, W); tokens become (B, C, M, 1), prefix tokens dropped."""
        f = self._features_of(self.backbone, x)
        if f.dim() == 3:
            f = f[:, self.token_prefix:].transpose(1, 2).unsqueeze(-1)
        elif self._nhwc:
            f = f.permute(0, 3, 1, 2)
        if f.shape[2] * f.shape[3] < 2:
            raise GcpbenchError(f"{self.zoo_name}: the last feature map has a single position at {tuple(x.shape[2:])} "
                                "inputs, so its covariance is zero; use larger images (--image-size)")
        return f

    def forward(self, x: Tensor) -> Tensor:
        if not self.spec.head.is_gcp:
            return self.backbone(x)
        x = self.layer_reduce_relu(self.layer_reduce_bn(self.layer_reduce(self.features(x))))
        return self.fc(self.gcp(x))

    def _stem(self) -> nn.Module:
        if self.stem_name is None:
            raise GcpbenchError(f"'{self.zoo_name}' runs no module with parameters: it has no stem to cut after")
        return self.backbone.get_submodule(self.stem_name)

    def forward_stem(self, x: Tensor) -> Tensor:
        """The output of the stem (the first module with parameters that runs)."""
        self.input_shape = tuple(x.shape[1:])
        handle = _stop_after(self._stem())
        try:
            self.forward(x)
        except _Stop as stop:
            return stop.tensor
        finally:
            handle.remove()
        raise GcpbenchError(f"the stem '{self.stem_name}' of '{self.zoo_name}' did not run")

    def forward_from_stem(self, y: Tensor) -> Tensor:
        """Logits from the stem's output ``y``: the forward pass with the stem's output replaced
        by ``y`` (the stem itself runs on a zero image of the last input's shape, unused)."""
        handle = self._stem().register_forward_hook(lambda _m, _a, _out: y)
        try:
            return self.forward(y.new_zeros(y.shape[0], *self.input_shape))
        finally:
            handle.remove()

    def extra_repr(self) -> str:
        return f"name={self.zoo_name}, stem={self.stem_name}, pruned={self.pruned}"


def build_external(spec: ExternalSpec, num_classes: int = 1000) -> ExternalModel:
    """Build ``spec`` with freshly initialised weights at its preprocessing's input size."""
    from gcpbench.models.preprocess import default_input_size

    return ExternalModel(spec, num_classes, default_input_size(spec))
