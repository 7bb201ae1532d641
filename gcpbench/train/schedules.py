"""The paper's learning-rate schedules (docs/design.md section 5): LRnorm, LRfast and LRadju per family.

``e`` is the 0-based epoch. ResNet and MobileNetV2 change the LR once per epoch, ShuffleNetV2
once per iteration::

    resnet        LRnorm  0.1 * 0.1^(e // 30)          100 epochs, batch 256,  WD 1e-4
                  LRfast  0.1 * (1 - (e-1)/52)^11       30 epochs
                  LRadju  0.1 * (1 - (e-1)/49)^2        50 epochs
    mobilenetv2   LRnorm  0.045 * 0.98^e               400 epochs, batch 96,   WD 4e-5
                  LRfast  0.06 * 0.92^e                100 epochs, batch 96
                  LRadju  linear 0.06 -> 0.01 (e 0-50), 0.01 -> 0.001 (50-100),
                          0.001 -> 1e-5 (100-150)      150 epochs, batch 192
    shufflenetv2  all     0.5 * (1 - it / total_its)   240 / 60 / 100 epochs, batch 1024, WD 4e-5

The ResNet LRfast / LRadju formulas start above 0.1 at e = 0 (0.1234 and 0.1041), exactly as
the original code did; they are kept exact.

Two documented changes for short studies and other hardware:

* ``epochs=E`` stretches the curve to E epochs with the same shape: epoch ``e`` of the short run
  takes the LR of epoch ``e * E0 / E`` of the original ``E0``-epoch curve (ShuffleNetV2's
  per-iteration line simply runs over ``E`` epochs' iterations).
* ``batch_size=B`` applies the linear scaling rule: every LR is multiplied by ``B / B0`` (``B0``
  the paper's batch). An explicit ``lr`` replaces the base LR instead (the curve is scaled by
  ``lr / base``; no batch scaling on top of it).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from gcpbench.errors import GcpbenchError
from gcpbench.models.registry import family_of

SCHEDULES: tuple[str, ...] = ("LRnorm", "LRfast", "LRadju")
MOMENTUM = 0.9


@dataclass(frozen=True)
class ScheduleDefaults:
    """The paper's settings of one family x schedule."""

    base_lr: float
    batch_size: int
    weight_decay: float
    epochs: int


_DEFAULTS: dict[tuple[str, str], ScheduleDefaults] = {
    ("resnet", "LRnorm"): ScheduleDefaults(0.1, 256, 1e-4, 100),
    ("resnet", "LRfast"): ScheduleDefaults(0.1, 256, 1e-4, 30),
    ("resnet", "LRadju"): ScheduleDefaults(0.1, 256, 1e-4, 50),
    ("mobilenetv2", "LRnorm"): ScheduleDefaults(0.045, 96, 4e-5, 400),
    ("mobilenetv2", "LRfast"): ScheduleDefaults(0.06, 96, 4e-5, 100),
    ("mobilenetv2", "LRadju"): ScheduleDefaults(0.06, 192, 4e-5, 150),
    ("shufflenetv2", "LRnorm"): ScheduleDefaults(0.5, 1024, 4e-5, 240),
    ("shufflenetv2", "LRfast"): ScheduleDefaults(0.5, 1024, 4e-5, 60),
    ("shufflenetv2", "LRadju"): ScheduleDefaults(0.5, 1024, 4e-5, 100),
}

FORMULAS: dict[tuple[str, str], str] = {
    ("resnet", "LRnorm"): "0.1 * 0.1^(e // 30)",
    ("resnet", "LRfast"): "0.1 * (1 - (e-1)/52)^11",
    ("resnet", "LRadju"): "0.1 * (1 - (e-1)/49)^2",
    ("mobilenetv2", "LRnorm"): "0.045 * 0.98^e",
    ("mobilenetv2", "LRfast"): "0.06 * 0.92^e",
    ("mobilenetv2", "LRadju"): "linear 0.06->0.01 (e 0-50), 0.01->0.001 (50-100), 0.001->1e-5 (100-150)",
    ("shufflenetv2", "LRnorm"): "0.5 * (1 - it/total_its), per iteration",
    ("shufflenetv2", "LRfast"): "0.5 * (1 - it/total_its), per iteration",
    ("shufflenetv2", "LRadju"): "0.5 * (1 - it/total_its), per iteration",
}

# MobileNetV2 LRadju: (epoch, LR) corners of the piecewise-linear curve.
_MOBILENET_ADJU = ((0, 0.06), (50, 0.01), (100, 0.001), (150, 1e-5))


def canonical_schedule(schedule: str) -> str:
    """``LRnorm`` / ``LRfast`` / ``LRadju`` (any case); an unknown name raises with a suggestion."""
    for name in SCHEDULES:
        if schedule.lower() == name.lower():
            return name
    from gcpbench.models.registry import closest

    hint = closest(schedule, [s.lower() for s in SCHEDULES])
    for name in SCHEDULES:
        hint = hint.replace(f"'{name.lower()}'", f"'{name}'")
    raise GcpbenchError(f"unknown schedule '{schedule}'{hint}; choose from {', '.join(SCHEDULES)}")


def defaults(arch: str) -> dict[str, ScheduleDefaults]:
    """The paper's base LR, batch, weight decay and epochs of every schedule of ``arch``'s family."""
    family = family_of(arch)
    return {schedule: _DEFAULTS[family, schedule] for schedule in SCHEDULES}


def schedule_defaults(arch: str, schedule: str) -> ScheduleDefaults:
    """The paper's settings of ``arch``'s family under ``schedule``."""
    return _DEFAULTS[family_of(arch), canonical_schedule(schedule)]


def _mobilenet_adju(e: float) -> float:
    for (e0, lr0), (e1, lr1) in zip(_MOBILENET_ADJU, _MOBILENET_ADJU[1:]):
        if e < e1 or e1 == _MOBILENET_ADJU[-1][0]:
            return lr0 + (lr1 - lr0) * (e - e0) / (e1 - e0)
    raise AssertionError("unreachable")


def reference_lr(family: str, schedule: str, e: float, progress: float = 0.0) -> float:
    """The paper's LR at (possibly fractional) epoch ``e`` of the original curve.

    ``progress`` = it / total_its is used by ShuffleNetV2 only.
    """
    if family == "resnet":
        if schedule == "LRnorm":
            return 0.1 * 0.1 ** math.floor(e / 30)
        if schedule == "LRfast":
            return 0.1 * (1 - (e - 1) / 52) ** 11
        return 0.1 * (1 - (e - 1) / 49) ** 2
    if family == "mobilenetv2":
        if schedule == "LRnorm":
            return 0.045 * 0.98 ** e
        if schedule == "LRfast":
            return 0.06 * 0.92 ** e
        return _mobilenet_adju(e)
    return 0.5 * (1 - progress)


@dataclass(frozen=True)
class Schedule:
    """One resolved schedule: the paper's curve, stretched to ``epochs`` and scaled by ``lr_scale``."""

    family: str
    name: str
    paper: ScheduleDefaults
    epochs: int
    batch_size: int
    base_lr: float  # the LR the curve starts from at this batch size (paper base * lr_scale)
    weight_decay_option: float | None = None  # --weight-decay (None: the paper's)
    momentum: float = MOMENTUM
    warmup_epochs: int = 0  # linear warm-up over the first K epochs' iterations (0: the paper's, none)

    @property
    def lr_scale(self) -> float:
        return self.base_lr / self.paper.base_lr

    @property
    def weight_decay(self) -> float:
        return self.paper.weight_decay if self.weight_decay_option is None else self.weight_decay_option

    def warmup_factor(self, epoch: int, step: int, steps_per_epoch: int) -> float:
        """``(it + 1) / warm-up iterations`` during the warm-up, else 1 (``it`` counts from 0)."""
        total = self.warmup_epochs * steps_per_epoch
        it = epoch * steps_per_epoch + step
        return (it + 1) / total if it < total else 1.0

    def lr(self, epoch: int, step: int = 0, steps_per_epoch: int = 1) -> float:
        """The LR of 0-based ``epoch`` (and iteration ``step`` of it, for ShuffleNetV2)."""
        if not 0 <= epoch < self.epochs:
            raise GcpbenchError(f"epoch {epoch} is outside the schedule's 0..{self.epochs - 1}")
        if steps_per_epoch < 1 or not 0 <= step < steps_per_epoch:
            raise GcpbenchError(f"iteration {step} is outside 0..{steps_per_epoch - 1}")
        if self.family == "resnet" and self.name == "LRnorm":
            # step decay on the stretched axis, in integers: floor(e * E0 / E / 30)
            value = 0.1 * 0.1 ** ((epoch * self.paper.epochs) // (30 * self.epochs))
        else:
            stretched = epoch * self.paper.epochs / self.epochs
            progress = (epoch * steps_per_epoch + step) / (self.epochs * steps_per_epoch)
            value = reference_lr(self.family, self.name, stretched, progress)
        return value * self.lr_scale * self.warmup_factor(epoch, step, steps_per_epoch)

    def describe(self) -> list[str]:
        """Lines that say what the schedule is and how it differs from the paper's."""
        p = self.paper
        lines = [f"schedule {self.name} ({self.family}): LR = {FORMULAS[self.family, self.name]}; "
                 f"paper: {p.epochs} epochs, batch {p.batch_size}, base LR {p.base_lr:g}, WD {p.weight_decay:g}, "
                 f"SGD momentum {MOMENTUM}"]
        if self.epochs != p.epochs:
            lines.append(f"--epochs {self.epochs}: the {p.epochs}-epoch curve is stretched to {self.epochs} epochs "
                         f"(same shape: epoch e uses the paper's LR at epoch e * {p.epochs}/{self.epochs})")
        if self.batch_size != p.batch_size and math.isclose(self.lr_scale, self.batch_size / p.batch_size):
            lines.append(f"--batch-size {self.batch_size}: linear scaling rule, every LR x {self.batch_size}/"
                         f"{p.batch_size} (base LR {p.base_lr:g} -> {self.base_lr:.6g})")
        elif not math.isclose(self.lr_scale, 1.0):
            lines.append(f"--lr {self.base_lr:g}: the curve is scaled by {self.base_lr:g}/{p.base_lr:g} "
                         "(no linear batch scaling on top of an explicit --lr)")
        if self.weight_decay_option is not None:
            lines.append(f"--weight-decay {self.weight_decay:g} (the paper's: {p.weight_decay:g})")
        if self.momentum != MOMENTUM:
            lines.append(f"--momentum {self.momentum:g} (the paper's: {MOMENTUM})")
        if self.warmup_epochs:
            lines.append(f"--warmup-epochs {self.warmup_epochs}: the LR rises linearly over the first "
                         f"{self.warmup_epochs} epoch(s)' iterations to the schedule's (the paper has no warm-up)")
        if self.family == "resnet" and self.name != "LRnorm":
            lines.append(f"note: the paper's {self.name} formula starts above the base LR at epoch 0 "
                         f"({self.lr(0):.6g}), as the original code did")
        return lines


def make_schedule(arch: str, schedule: str, epochs: int | None = None, batch_size: int | None = None,
                  lr: float | None = None, *, weight_decay: float | None = None, momentum: float | None = None,
                  warmup_epochs: int | None = None) -> Schedule:
    """Resolve ``schedule`` for ``arch`` with optional stretching, batch size and base LR, and the
    follow-up study's changes (weight decay, momentum, a linear warm-up); None keeps the paper's."""
    family, name = family_of(arch), canonical_schedule(schedule)
    paper = _DEFAULTS[family, name]
    epochs = paper.epochs if epochs is None else int(epochs)
    batch_size = paper.batch_size if batch_size is None else int(batch_size)
    if epochs < 1:
        raise GcpbenchError(f"--epochs must be at least 1, got {epochs}")
    if batch_size < 1:
        raise GcpbenchError(f"--batch-size must be at least 1, got {batch_size}")
    if lr is not None and not (math.isfinite(lr) and lr > 0):
        raise GcpbenchError(f"--lr must be a positive number, got {lr}")
    if weight_decay is not None and not (math.isfinite(weight_decay) and weight_decay >= 0):
        raise GcpbenchError(f"--weight-decay must be 0 or a positive number, got {weight_decay}")
    if momentum is not None and not (math.isfinite(momentum) and 0 <= momentum < 1):
        raise GcpbenchError(f"--momentum must be in [0, 1), got {momentum}")
    warmup = 0 if warmup_epochs is None else int(warmup_epochs)
    if not 0 <= warmup < epochs:
        raise GcpbenchError(f"--warmup-epochs must be between 0 and the {epochs} epochs - 1, got {warmup}")
    base_lr = float(lr) if lr is not None else paper.base_lr * batch_size / paper.batch_size
    return Schedule(family, name, paper, epochs, batch_size, base_lr, weight_decay,
                    MOMENTUM if momentum is None else float(momentum), warmup)


def learning_rate(arch: str, schedule: str, epoch: int, step: int = 0, steps_per_epoch: int = 1, *,
                  epochs: int | None = None, batch_size: int | None = None, lr: float | None = None) -> float:
    """The LR of 0-based ``epoch`` (iteration ``step`` of ``steps_per_epoch`` for ShuffleNetV2).

    ``arch`` is a family (``resnet``), architecture (``resnet50``) or zoo name; ``schedule`` one of
    LRnorm / LRfast / LRadju. ``epochs``, ``batch_size`` and ``lr`` as in :func:`make_schedule`.
    """
    return make_schedule(arch, schedule, epochs, batch_size, lr).lr(epoch, step, steps_per_epoch)
