"""The paper's learning-rate schedules (docs/design.md section 5) against hand-computed values.

Expected numbers were worked out with exact fractions (e.g. LRfast at e=0 is
0.1 * (53/52)^11), not with the code under test.
"""
from __future__ import annotations

import pytest

from gcpbench.errors import GcpbenchError
from gcpbench.train.schedules import defaults, learning_rate, make_schedule, schedule_defaults

CASES = [
    # arch, schedule, epoch, expected LR
    ("resnet18", "LRnorm", 0, 0.1), ("resnet18", "LRnorm", 29, 0.1), ("resnet18", "LRnorm", 30, 0.01),
    ("resnet50", "LRnorm", 60, 0.001), ("resnet101", "LRnorm", 99, 0.0001),
    ("resnet", "LRfast", 0, 0.12330985459087342),  # 0.1 (53/52)^11: starts above 0.1, as the paper's code
    ("resnet34", "LRfast", 1, 0.1), ("resnet34", "LRfast", 14, 0.0042235136032104494),  # 0.1 * 0.75^11
    ("resnet34", "LRfast", 29, 2.0243559516610424e-05),  # 0.1 (24/52)^11
    ("resnet", "LRadju", 0, 0.10412328196584757),  # 0.1 * 2500/2401
    ("resnet50", "LRadju", 1, 0.1), ("resnet50", "LRadju", 25, 0.026030820491461892),  # 0.1 * 625/2401
    ("resnet50", "LRadju", 49, 4.1649312786339026e-05),  # 0.1 / 2401
    ("mobilenetv2", "LRnorm", 0, 0.045), ("mobilenetv2", "LRnorm", 1, 0.0441), ("mobilenetv2", "LRnorm", 2, 0.043218),
    ("mobilenetv2", "LRnorm", 100, 0.0059678800152638935),  # 0.045 * 0.98^100
    ("mobilenetv2", "LRfast", 0, 0.06), ("mobilenetv2", "LRfast", 1, 0.0552), ("mobilenetv2", "LRfast", 2, 0.050784),
    ("mobilenetv2", "LRfast", 10, 0.02606330725341793),  # 0.06 * 0.92^10
    ("mobilenetv2", "LRadju", 0, 0.06), ("mobilenetv2", "LRadju", 25, 0.035), ("mobilenetv2", "LRadju", 50, 0.01),
    ("mobilenetv2", "LRadju", 75, 0.0055), ("mobilenetv2", "LRadju", 100, 0.001),
    ("mobilenetv2", "LRadju", 125, 0.000505), ("mobilenetv2", "LRadju", 149, 0.0000298),  # 0.001 - 0.00099 * 49/50
]


@pytest.mark.parametrize(("arch", "schedule", "epoch", "expected"), CASES)
def test_per_epoch_schedules_equal_the_formulas(arch: str, schedule: str, epoch: int, expected: float) -> None:
    assert learning_rate(arch, schedule, epoch) == pytest.approx(expected, rel=1e-12, abs=0)


@pytest.mark.parametrize(("schedule", "epochs", "epoch", "step", "expected"), [
    ("LRnorm", 240, 0, 0, 0.5),
    ("LRnorm", 240, 1, 50, 0.496875),  # it = 150 of 24000: 0.5 * (1 - 150/24000)
    ("LRnorm", 240, 120, 0, 0.25),
    ("LRfast", 60, 59, 99, 0.5 / 6000),  # the last of 6000 iterations
    ("LRadju", 100, 50, 0, 0.25),
])
def test_shufflenet_decays_linearly_per_iteration(schedule: str, epochs: int, epoch: int, step: int,
                                                 expected: float) -> None:
    assert schedule_defaults("shufflenetv2", schedule).epochs == epochs
    assert learning_rate("shufflenetv2_gcp", schedule, epoch, step, steps_per_epoch=100) == pytest.approx(expected, rel=1e-12)
    if step:  # ResNet and MobileNetV2 ignore the iteration inside an epoch
        assert learning_rate("resnet18", "LRnorm", 3, step, 100) == learning_rate("resnet18", "LRnorm", 3)


def test_epochs_stretch_the_curve_with_the_same_shape() -> None:
    # epoch e of a 10-epoch run takes the 100-epoch curve's LR at e * 10: decays at e = 3, 6, 9
    assert [learning_rate("resnet18", "LRnorm", e, epochs=10) for e in range(10)] == pytest.approx(
        [0.1, 0.1, 0.1, 0.01, 0.01, 0.01, 0.001, 0.001, 0.001, 0.0001], rel=1e-12)
    # 5 epochs of LRadju: e = 1 -> stretched e = 10: 0.1 (40/49)^2
    assert learning_rate("resnet18", "LRadju", 1, epochs=5) == pytest.approx(0.066638900458142442, rel=1e-12)
    # 15 epochs of MobileNetV2 LRadju: e = 5 -> 50, e = 12 -> 120: 0.001 - 0.00099 * 20/50
    assert learning_rate("mobilenetv2", "LRadju", 5, epochs=15) == pytest.approx(0.01, rel=1e-12)
    assert learning_rate("mobilenetv2", "LRadju", 12, epochs=15) == pytest.approx(0.000604, rel=1e-12)
    # ShuffleNetV2: the line runs over the 2 epochs' iterations
    assert learning_rate("shufflenetv2", "LRnorm", 1, 0, 10, epochs=2) == pytest.approx(0.25, rel=1e-12)
    lines = make_schedule("resnet18", "LRnorm", epochs=10).describe()
    assert any("stretched to 10 epochs" in line and "e * 100/10" in line for line in lines)


def test_batch_size_scales_lr_linearly_and_explicit_lr_replaces_it() -> None:
    assert learning_rate("resnet50", "LRnorm", 0, batch_size=64) == pytest.approx(0.025, rel=1e-12)
    assert learning_rate("resnet50", "LRnorm", 30, batch_size=512) == pytest.approx(0.02, rel=1e-12)
    assert learning_rate("mobilenetv2", "LRadju", 0, batch_size=96) == pytest.approx(0.03, rel=1e-12)
    assert learning_rate("resnet50", "LRnorm", 30, lr=0.2) == pytest.approx(0.02, rel=1e-12)
    assert learning_rate("resnet50", "LRnorm", 0, batch_size=64, lr=0.2) == pytest.approx(0.2, rel=1e-12)
    lines = make_schedule("resnet50", "LRnorm", batch_size=64).describe()
    assert any("linear scaling rule" in line and "64/256" in line and "0.025" in line for line in lines)


def test_defaults_per_family_and_name_forms() -> None:
    resnet = defaults("resnet50_gcp")
    assert {k: (v.base_lr, v.batch_size, v.weight_decay, v.epochs) for k, v in resnet.items()} == {
        "LRnorm": (0.1, 256, 1e-4, 100), "LRfast": (0.1, 256, 1e-4, 30), "LRadju": (0.1, 256, 1e-4, 50)}
    mobile = defaults("mobilenetv2")
    assert {k: (v.base_lr, v.batch_size, v.weight_decay, v.epochs) for k, v in mobile.items()} == {
        "LRnorm": (0.045, 96, 4e-5, 400), "LRfast": (0.06, 96, 4e-5, 100), "LRadju": (0.06, 192, 4e-5, 150)}
    shuffle = defaults("shufflenetv2")
    assert [(v.base_lr, v.batch_size, v.weight_decay, v.epochs) for v in shuffle.values()] == [
        (0.5, 1024, 4e-5, 240), (0.5, 1024, 4e-5, 60), (0.5, 1024, 4e-5, 100)]
    assert defaults("resnet") == defaults("resnet101") == defaults("RESNET18_gap")
    assert learning_rate("resnet18", "lrfast", 1) == 0.1  # schedule names in any case


def test_bad_inputs_are_one_line_errors() -> None:
    with pytest.raises(GcpbenchError, match=r"unknown schedule 'LRfats' \(did you mean 'LRfast'\?\); choose from") as info:
        learning_rate("resnet18", "LRfats", 0)
    assert "\n" not in str(info.value)
    with pytest.raises(GcpbenchError, match="unknown architecture 'resnet81'.*did you mean 'resnet18'"):
        learning_rate("resnet81", "LRnorm", 0)
    with pytest.raises(GcpbenchError, match="epoch 30 is outside the schedule's 0..29"):
        learning_rate("resnet18", "LRfast", 30)
    with pytest.raises(GcpbenchError, match="--epochs must be at least 1"):
        make_schedule("resnet18", "LRnorm", epochs=0)
    with pytest.raises(GcpbenchError, match="--lr must be a positive number"):
        make_schedule("resnet18", "LRnorm", lr=-1.0)
