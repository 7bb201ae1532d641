"""Training options for follow-up studies (--weight-decay, --momentum, --label-smoothing,
--warmup-epochs), --config FILE.toml and train --dry-run; the paper's defaults stay unchanged."""
from __future__ import annotations

import json

import pytest
import torch

from gcpbench.data.synthetic import make_classification_set
from gcpbench.errors import GcpbenchError
from gcpbench.models.weights import read_checkpoint
from gcpbench.train import TrainOptions, train
from gcpbench.train import trainer as trainer_module
from gcpbench.train.schedules import MOMENTUM, make_schedule


def test_warmup_is_linear_over_the_first_epochs_iterations() -> None:
    plain = make_schedule("resnet", "LRnorm", epochs=10, batch_size=256)
    warm = make_schedule("resnet", "LRnorm", epochs=10, batch_size=256, warmup_epochs=2)
    steps = 4  # 8 warm-up iterations: LR x (it + 1) / 8
    for epoch, step in [(0, 0), (0, 3), (1, 2), (1, 3), (2, 0), (5, 1)]:
        it = epoch * steps + step
        factor = (it + 1) / 8 if it < 8 else 1.0
        assert warm.lr(epoch, step, steps) == pytest.approx(plain.lr(epoch, step, steps) * factor, rel=1e-15)
    assert warm.lr(1, 3, steps) == pytest.approx(0.1, rel=1e-15)  # reaches the schedule's LR at its last iteration


def test_paper_defaults_unchanged_and_overrides_checked() -> None:
    paper = make_schedule("mobilenetv2", "LRnorm")
    assert (paper.weight_decay, paper.momentum, paper.warmup_epochs) == (4e-5, MOMENTUM, 0)
    changed = make_schedule("mobilenetv2", "LRnorm", weight_decay=1e-5, momentum=0.8)
    assert (changed.weight_decay, changed.momentum) == (1e-5, 0.8)
    assert any("--weight-decay 1e-05 (the paper's: 4e-05)" in line for line in changed.describe())
    for kwargs, message in [({"weight_decay": -1.0}, "--weight-decay"), ({"momentum": 1.0}, "--momentum"),
                            ({"warmup_epochs": 400}, "--warmup-epochs")]:
        with pytest.raises(GcpbenchError, match=message):
            make_schedule("mobilenetv2", "LRnorm", **kwargs)
    with pytest.raises(GcpbenchError, match="--label-smoothing"):
        TrainOptions(label_smoothing=1.0)


def test_dry_run_from_a_config_file_with_command_line_overrides(run_cli, tmp_path) -> None:
    study = tmp_path / "study.toml"
    study.write_text('arch = "resnet18"\nhead = "gcp"\nschedule = "LRfast"\nepochs = 4\nweight_decay = 5e-5\n'
                     '"warmup-epochs" = 1\nlabel_smoothing = 0.1\nmomentum = 0.85\n'
                     f'out = "{tmp_path / "never"}"\n')
    code, out, err = run_cli("train", "--config", str(study), "--momentum", "0.8", "--epochs", "3", "--dry-run", "--json")
    assert code == 0, err
    plan = json.loads(out)
    config = plan["config"]
    assert (config["model"], config["schedule"], config["epochs"]) == ("resnet18_gcp", "LRfast", 3)  # --epochs wins
    assert (config["weight_decay"], config["momentum"], config["label_smoothing"], config["warmup_epochs"]) == \
        (5e-5, 0.8, 0.1, 1)  # --momentum wins over the file
    expected = make_schedule("resnet", "LRfast", 3, weight_decay=5e-5, momentum=0.8, warmup_epochs=1)
    assert plan["lr_per_epoch"] == pytest.approx([expected.lr(e, 0, 10**6) for e in range(3)], rel=1e-12)
    assert plan["lr_per_epoch"][0] < 1e-6  # the warm-up starts from ~0
    assert not (tmp_path / "never").exists()  # nothing written

    code, out, err = run_cli("train", "resnet50", "--dry-run")
    assert code == 0 and "resnet50_gap" in out and "weight_decay: 0.0001" in out and "momentum: 0.9" in out


def test_config_file_unknown_key_is_one_line(run_cli, tmp_path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("weight_decy = 1e-4\n")
    code, out, err = run_cli("train", "--config", str(bad), "--dry-run")
    assert code == 2 and err.count("\n") == 1
    assert "unknown key 'weight_decy' (did you mean 'weight_decay'?)" in err
    code, out, err = run_cli("train", "--config", str(tmp_path / "missing.toml"), "--dry-run")
    assert code == 2 and "does not exist" in err


@pytest.mark.slow
def test_options_reach_the_optimizer_and_loss_and_resume_checks_them(tmp_path, monkeypatch) -> None:
    data = make_classification_set(tmp_path / "data", num_classes=4, image_size=32, train_per_class=4,
                                   val_per_class=2, seed=0)
    seen = []
    cross_entropy = trainer_module.F.cross_entropy

    def spy(*args, **kwargs):
        seen.append(kwargs.get("label_smoothing"))
        return cross_entropy(*args, **kwargs)

    monkeypatch.setattr(trainer_module.F, "cross_entropy", spy)
    out = tmp_path / "run"
    run = train(TrainOptions(arch="resnet18", data=str(data), out=str(out), epochs=2, batch_size=8, workers=0,
                             quiet=True, weight_decay=3e-4, momentum=0.7, label_smoothing=0.2, warmup_epochs=1))
    assert [v for v in seen if v is not None] == [0.2] * 4  # 2 epochs x 2 iterations; validation stays plain
    group = read_checkpoint(run.last_checkpoint)["optimizer"]["param_groups"][0]
    assert (group["weight_decay"], group["momentum"]) == (3e-4, 0.7)
    config = json.loads(run.config.read_text())
    assert (config["weight_decay"], config["momentum"], config["label_smoothing"], config["warmup_epochs"]) == \
        (3e-4, 0.7, 0.2, 1)
    # epoch 1 is the warm-up: its first iteration runs at 1/2 of the schedule's LR (2 iterations of 8 images)
    first = json.loads(run.metrics_jsonl.read_text().splitlines()[0])
    assert first["lr"] == pytest.approx(0.1 * 8 / 256 / 2, rel=1e-12)
    with pytest.raises(GcpbenchError, match=r"--weight-decay 0.0001 differs from the run's 0.0003"):
        train(TrainOptions(resume=str(out), weight_decay=1e-4, quiet=True))
    with pytest.raises(GcpbenchError, match=r"--label-smoothing 0.0 differs"):
        train(TrainOptions(resume=str(out), label_smoothing=0.0, quiet=True))
    assert torch.isfinite(torch.tensor(first["train_loss"]))
