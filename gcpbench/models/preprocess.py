"""Each model's own evaluation preprocessing: input size, resize, interpolation, mean / std.

Zoo models use the paper's (Resize 256, CenterCrop 224, bilinear, ImageNet mean/std); timm
models their ``pretrained_cfg`` (input size, interpolation, crop fraction, mean/std, as timm's
``resolve_data_config`` reads it); torchvision models their default weights' transforms.
"""
from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from torch import nn

from gcpbench.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from gcpbench.errors import GcpbenchError


class ModelSpec(Protocol):
    """What this module reads of :class:`gcpbench.models.external.ExternalSpec` (which imports
    this module: the dependency points from the model builder to its preprocessing)."""

    source: str
    arch: str
    kwargs: dict[str, Any]


# ImageNet-C / -P: the benchmark fixes the geometry; a model's preprocessing gives mean / std.
BENCHMARK_GEOMETRY = ("corrupted images / frames as stored (224 px), resized to the model's input size when it differs; "
                      "clean images: the model's resize + centre crop; images under 224 px kept; the model's mean/std")
PAPER_SOURCE = "gcpbench zoo: the paper's Resize 256, CenterCrop 224"


@dataclass(frozen=True)
class Preprocessing:
    """Resize the short side to ``resize``, centre-crop ``input_size``, normalise by mean / std."""

    input_size: int
    resize: int
    interpolation: str
    mean: tuple[float, ...]
    std: tuple[float, ...]
    source: str

    @property
    def crop_pct(self) -> float:
        return self.input_size / self.resize

    def at_size(self, size: int) -> Preprocessing:
        """The same recipe at crop ``size``: the resize keeps the crop fraction (timm's floor rule;
        the zoo keeps gcpbench's own rounding, :func:`gcpbench.data.transforms.eval_resize`)."""
        if size == self.input_size:
            return self
        from gcpbench.data.transforms import eval_resize

        resize = eval_resize(size) if self.source == PAPER_SOURCE else math.floor(size / self.crop_pct)
        return Preprocessing(size, max(size, resize), self.interpolation, self.mean, self.std, self.source)

    def transform(self):
        """The torchvision transform: Resize, CenterCrop, ToTensor, Normalize."""
        from torchvision import transforms as T

        mode = T.InterpolationMode(self.interpolation)
        return T.Compose([T.Resize(self.resize, interpolation=mode), T.CenterCrop(self.input_size), T.ToTensor(),
                          T.Normalize(self.mean, self.std)])

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "mean": list(self.mean), "std": list(self.std), "crop_pct": round(self.crop_pct, 6)}

    def describe(self) -> str:
        """One line for the console."""
        mean = ", ".join(f"{v:.3f}" for v in self.mean)
        std = ", ".join(f"{v:.3f}" for v in self.std)
        return (f"preprocessing ({self.source}): resize {self.resize} ({self.interpolation}), centre crop "
                f"{self.input_size} (crop fraction {self.crop_pct:.3f}), mean ({mean}), std ({std})")

    def describe_benchmark(self) -> str:
        """One line for ImageNet-C / -P / CIFAR .npy: what is done to their stored images (no resize
        + crop: the benchmark fixed the geometry when the images were made)."""
        mean = ", ".join(f"{v:.3f}" for v in self.mean)
        std = ", ".join(f"{v:.3f}" for v in self.std)
        return (f"preprocessing: the benchmark's stored images, no resize + crop (images under the model's "
                f"{self.input_size} px input are kept at their size, others resized to {self.input_size} px, "
                f"{self.interpolation}); mean ({mean}), std ({std}) of {self.source}")


PAPER = Preprocessing(224, 256, "bilinear", IMAGENET_MEAN, IMAGENET_STD, PAPER_SOURCE)


def _size(value: Any) -> int:
    """An int size from timm's ``img_size`` / ``input_size`` forms (int, (H, W), (C, H, W))."""
    if isinstance(value, (tuple, list)):
        if len(set(value[-2:])) != 1:
            raise GcpbenchError(f"non-square input size {tuple(value)} is not supported")
        return int(value[-1])
    return int(value)


def _timm(spec: ModelSpec, pretrained_cfg: dict[str, Any]) -> Preprocessing:
    from timm.data import resolve_data_config

    config = resolve_data_config({}, pretrained_cfg=pretrained_cfg)
    size = _size(spec.kwargs.get("img_size", config["input_size"]))
    tag = f".{pretrained_cfg['tag']}" if pretrained_cfg.get("tag") else ""
    return Preprocessing(size, math.floor(size / config["crop_pct"]), str(config["interpolation"]),
                         tuple(float(v) for v in config["mean"]), tuple(float(v) for v in config["std"]),
                         f"timm pretrained_cfg of {spec.arch.split('.')[0]}{tag}")


def _timm_cfg(spec: ModelSpec) -> dict[str, Any]:
    from timm.models import get_pretrained_cfg

    cfg = get_pretrained_cfg(spec.arch) or get_pretrained_cfg(spec.arch.split(".")[0])
    return cfg.to_dict() if cfg is not None else {}


def _torchvision(spec: ModelSpec) -> Preprocessing:
    import torchvision

    try:
        weights = torchvision.models.get_model_weights(spec.arch).DEFAULT
    except (ValueError, KeyError, AttributeError):
        return Preprocessing(224, 256, "bilinear", IMAGENET_MEAN, IMAGENET_STD,
                             f"no torchvision weights for {spec.arch}: ImageNet defaults")
    t = weights.transforms()
    size = _size(spec.kwargs.get("image_size", t.crop_size))
    return Preprocessing(size, int(_size(t.resize_size)), t.interpolation.value, tuple(t.mean), tuple(t.std),
                         f"torchvision weights {weights}")


def for_spec(spec: ModelSpec) -> Preprocessing:
    """The preprocessing of a timm / torchvision model spec."""
    if spec.source == "timm":
        return _timm(spec, _timm_cfg(spec))
    return _torchvision(spec)


def default_input_size(spec: ModelSpec) -> int:
    """The input size a model is built and traced at."""
    return for_spec(spec).input_size


def for_model(model: nn.Module) -> Preprocessing:
    """The evaluation preprocessing of any gcpbench model (zoo or timm / torchvision)."""
    spec = getattr(model, "spec", None)
    return PAPER if spec is None else for_spec(spec)


def pretrained_cfg(model: nn.Module, weights: Any = None) -> dict[str, Any]:
    """What a model needs to be fed, as timm's ``pretrained_cfg`` says it: input size, resize,
    interpolation, crop fraction, mean / std, where this recipe comes from and the weights
    (``None``: freshly initialised). :func:`gcpbench.build` attaches it as ``model.pretrained_cfg``."""
    prep = for_model(model)
    return {"input_size": (3, prep.input_size, prep.input_size), "resize": prep.resize,
            "interpolation": prep.interpolation, "crop_pct": round(prep.crop_pct, 6), "mean": prep.mean,
            "std": prep.std, "preprocessing_source": prep.source,
            "weights": None if weights is None else str(weights) if isinstance(weights, (str, os.PathLike)) else "state dict"}
