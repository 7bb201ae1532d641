"""The published fine-tuning protocol of iSQRT-COV (fast-MPN-COV ``finetune/finetune.sh`` and
``imagepreprocess.py``), every value overridable.

Optimisation: SGD, momentum 0.9, batch 10, 100 epochs, LR 1.2e-3 for every layer but the
classifier, whose LR is 5x; weight decay 1e-3 (the authors drop it to 0 on a VGG classifier);
the "step" LR method with steps at epoch 100: x0.1 at each listed epoch below the run's length,
so the LR is constant over the 100 epochs. Nothing is frozen.

Images (``S`` = the crop, 448; other sizes scale every resize by S/448):

===========  =============================  =============================  ===========================
dataset      training                       per-epoch validation           final evaluation
===========  =============================  =============================  ===========================
CUB          Resize(448), CenterCrop, flip  Resize(448), CenterCrop        Resize(448), centre crop and
Aircraft     Resize((512,512)), CC, flip    Resize((512,512)), CenterCrop  its horizontal mirror, their
Cars         Resize((448,448)), CC, flip    Resize(448), CenterCrop        logits averaged
===========  =============================  =============================  ===========================

ImageFolder trees use CUB's. The authors pick the best epoch by the per-epoch validation on the
test split and report the two-crop evaluation of that checkpoint; ``select="last"`` evaluates
the last epoch's instead. Their evaluation averages the two crops' logits (``output.view(bs,
crops, -1).mean(dim=1)`` in ``main.py``), not probabilities; so does :mod:`.evaluation`.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from gcpbench.errors import GcpbenchError

PAPER_SIZE = 448
MOMENTUM = 0.9
SELECTIONS: tuple[str, ...] = ("best", "last")
# Resize argument per dataset at 448: an int resizes the shorter side, a pair to (h, w).
_TRAIN_RESIZE: dict[str, int | tuple[int, int]] = {"cub": 448, "aircraft": (512, 512), "cars": (448, 448),
                                                   "folder": 448}
_VAL_RESIZE: dict[str, int | tuple[int, int]] = {"cub": 448, "aircraft": (512, 512), "cars": 448, "folder": 448}
_EVAL_RESIZE = 448


@dataclass(frozen=True)
class Protocol:
    """One fine-tuning recipe; ``paper`` holds the published values it was derived from."""

    dataset: str
    epochs: int = 100
    batch_size: int = 10
    lr: float = 1.2e-3
    classifier_lr_factor: float = 5.0
    weight_decay: float = 1e-3
    classifier_weight_decay: float | None = None  # None: weight_decay (0 for VGG, as the authors)
    lr_steps: tuple[int, ...] = (100,)
    image_size: int = PAPER_SIZE
    two_crop: bool = True
    select: str = "best"
    momentum: float = MOMENTUM

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "image_size"):
            if getattr(self, name) < 1:
                raise GcpbenchError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        for name in ("lr", "classifier_lr_factor"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise GcpbenchError(f"--{name.replace('_', '-')} must be a positive number, got {value}")
        for name in ("weight_decay", "classifier_weight_decay"):
            value = getattr(self, name)
            if value is not None and not (math.isfinite(value) and value >= 0):
                raise GcpbenchError(f"--{name.replace('_', '-')} must be 0 or more, got {value}")
        if self.select not in SELECTIONS:
            raise GcpbenchError(f"--select must be best or last, got '{self.select}'")
        if any(step < 1 for step in self.lr_steps):
            raise GcpbenchError(f"--lr-steps must be epochs of 1 or more, got {list(self.lr_steps)}")

    # ---------------------------------------------------------------- sizes

    def _scaled(self, size: int | tuple[int, int]) -> int | tuple[int, int]:
        scale = self.image_size / PAPER_SIZE
        if isinstance(size, tuple):
            return tuple(max(self.image_size, round(s * scale)) for s in size)  # type: ignore[return-value]
        return max(self.image_size, round(size * scale))

    @property
    def train_resize(self) -> int | tuple[int, int]:
        return self._scaled(_TRAIN_RESIZE[self.dataset])

    @property
    def val_resize(self) -> int | tuple[int, int]:
        return self._scaled(_VAL_RESIZE[self.dataset])

    @property
    def eval_resize(self) -> int:
        return int(self._scaled(_EVAL_RESIZE))

    # ---------------------------------------------------------------- learning rate

    def lr_factor(self, epoch: int) -> float:
        """The step method's factor at 0-based ``epoch``: 0.1 per listed step reached (steps at or
        beyond the run's length never act, as in the authors' ``Learning_rate_generater``)."""
        return 0.1 ** sum(1 for step in self.lr_steps if step < self.epochs and epoch >= step)

    @property
    def head_weight_decay(self) -> float:
        return self.weight_decay if self.classifier_weight_decay is None else self.classifier_weight_decay

    def as_dict(self) -> dict[str, Any]:
        """Every value, as stored in config.json and in the result's identity."""
        data = asdict(self)
        data["lr_steps"] = list(self.lr_steps)
        data.update(train_resize=_json_size(self.train_resize), val_resize=_json_size(self.val_resize),
                    eval_resize=self.eval_resize)
        return data

    def describe(self) -> list[str]:
        """What the run does, and where it differs from the published protocol."""
        paper = published(self.dataset)
        steps = [s for s in self.lr_steps if s < self.epochs]
        lr_line = (f"LR {self.lr:g} constant" if not steps
                   else f"LR {self.lr:g}, x0.1 at epoch{'s' if len(steps) > 1 else ''} {', '.join(map(str, steps))}")
        lines = [f"protocol (fast-MPN-COV finetune.sh): {self.epochs} epochs, batch {self.batch_size}, SGD momentum "
                 f"{self.momentum}, {lr_line}; classifier LR x{self.classifier_lr_factor:g}, weight decay "
                 f"{self.weight_decay:g} (classifier {self.head_weight_decay:g})",
                 f"images: training Resize({_show(self.train_resize)}) + CenterCrop({self.image_size}) + horizontal "
                 f"flip; validation Resize({_show(self.val_resize)}) + CenterCrop({self.image_size}); result: the "
                 f"{self.select} epoch's checkpoint on "
                 + (f"Resize({self.eval_resize}) + the centre crop and its mirror, logits averaged"
                    if self.two_crop else f"Resize({self.eval_resize}) + the centre crop only")]
        changed = [f"{name} {getattr(self, name)} (published {getattr(paper, name)})"
                   for name in ("epochs", "batch_size", "lr", "classifier_lr_factor", "weight_decay", "image_size",
                                "two_crop", "select", "lr_steps")
                   if getattr(self, name) != getattr(paper, name)]
        if changed:
            lines.append("differs from the published protocol: " + "; ".join(changed))
        return lines


def _json_size(size: int | tuple[int, int]) -> int | list[int]:
    return list(size) if isinstance(size, tuple) else size


def _show(size: int | tuple[int, int]) -> str:
    return f"({size[0]}, {size[1]})" if isinstance(size, tuple) else str(size)


def published(dataset: str) -> Protocol:
    """The authors' protocol for ``dataset`` (cub, aircraft, cars; folder uses CUB's)."""
    return Protocol(dataset)


def with_overrides(base: Protocol, **overrides: Any) -> Protocol:
    """``base`` with the given (non-None) values."""
    values = {k: v for k, v in overrides.items() if v is not None}
    if "lr_steps" in values:
        values["lr_steps"] = tuple(int(s) for s in values["lr_steps"])
    return replace(base, **values)


def make_protocol(dataset: str, *, vgg: bool = False, **overrides: Any) -> Protocol:
    """The published protocol with the given (non-None) overrides; a VGG classifier gets no
    weight decay unless ``classifier_weight_decay`` is given, as the authors' ``main.py`` does."""
    if vgg and overrides.get("classifier_weight_decay") is None:
        overrides["classifier_weight_decay"] = 0.0
    return with_overrides(published(dataset), **overrides)


@dataclass(frozen=True)
class FinetuneSchedule:
    """The protocol's LR curve in the trainer's schedule interface (``lr``, ``describe``, ...)."""

    protocol: Protocol
    name: str = "finetune"
    family: str = "finetune"
    notes: list[str] = field(default_factory=list, compare=False)

    @property
    def epochs(self) -> int:
        return self.protocol.epochs

    @property
    def batch_size(self) -> int:
        return self.protocol.batch_size

    @property
    def base_lr(self) -> float:
        return self.protocol.lr

    @property
    def weight_decay(self) -> float:
        return self.protocol.weight_decay

    @property
    def momentum(self) -> float:
        return self.protocol.momentum

    def lr(self, epoch: int, step: int = 0, steps_per_epoch: int = 1) -> float:
        """The backbone LR of 0-based ``epoch`` (constant within an epoch)."""
        if not 0 <= epoch < self.epochs:
            raise GcpbenchError(f"epoch {epoch} is outside the schedule's 0..{self.epochs - 1}")
        return self.protocol.lr * self.protocol.lr_factor(epoch)

    def describe(self) -> list[str]:
        return self.protocol.describe() + list(self.notes)
