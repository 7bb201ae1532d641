"""Image transforms of the paper: training augmentation per family, validation crop, plain normalisation."""
from __future__ import annotations

from torchvision import transforms as T

from gcpbench.errors import GcpbenchError, require_positive

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)

# The paper's training augmentation per model family (the zoo's FAMILIES): colour jitter for
# ShuffleNetV2 only. A model name maps to its family through gcpbench.models.registry.family_of.
COLOR_JITTER: dict[str, bool] = {"resnet": False, "mobilenetv2": False, "shufflenetv2": True}


def _color_jitter(family: str) -> bool:
    try:
        return COLOR_JITTER[family.lower()]
    except KeyError:
        raise GcpbenchError(f"unknown model family '{family}': use one of {', '.join(COLOR_JITTER)} "
                            "(gcpbench.models.registry.family_of names a model's family)") from None


def _normalize() -> list:
    return [T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)]


def train_transform(family: str, image_size: int = 224) -> T.Compose:
    """RandomResizedCrop + horizontal flip (+ ColorJitter(0.4, 0.4, 0.4) for ShuffleNetV2) + normalise."""
    require_positive("--image-size", image_size)
    steps: list = [T.RandomResizedCrop(image_size), T.RandomHorizontalFlip()]
    if _color_jitter(family):
        steps.append(T.ColorJitter(brightness=0.4, contrast=0.4, saturation=0.4))
    return T.Compose(steps + _normalize())


def eval_resize(image_size: int) -> int:
    """The short side before the centre crop: 256 for 224, the same 256/224 ratio for other sizes."""
    return round(image_size * 256 / 224)


def eval_transform(image_size: int = 224, resize: int | None = None) -> T.Compose:
    """Resize(short side) + CenterCrop(image_size) + normalise (Resize 256, crop 224 by default)."""
    require_positive("--image-size", image_size)
    resize = eval_resize(image_size) if resize is None else resize
    if resize < image_size:
        raise GcpbenchError(f"resize {resize} is smaller than the crop {image_size}")
    return T.Compose([T.Resize(resize), T.CenterCrop(image_size)] + _normalize())


def normalize_only() -> T.Compose:
    """ToTensor + ImageNet normalisation, no resizing (ImageNet-C/-P images are already 224 x 224)."""
    return T.Compose(_normalize())
