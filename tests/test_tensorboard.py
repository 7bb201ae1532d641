"""TensorBoard scalars of `gcpbench train`, read back from the event files with tensorboard's own
reader and compared with metrics.jsonl and landscape.csv."""
from __future__ import annotations

import csv

import pytest

from gcpbench.data.synthetic import make_classification_set
from gcpbench.io import read_jsonl
from gcpbench.train import TrainOptions, train
from gcpbench.train.tensorboard import EPOCH_TAGS, EVERY, LANDSCAPE_TAGS

pytest.importorskip("tensorboard")


def scalars(folder) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(folder), size_guidance={"scalars": 0})
    events.Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


@pytest.mark.slow
def test_train_writes_scalars_that_read_back_as_the_metrics(tmp_path) -> None:
    data = make_classification_set(tmp_path / "data", num_classes=4, image_size=32, train_per_class=6,
                                   val_per_class=2, seed=0)
    run = train(TrainOptions(arch="resnet18", head="gcp", gcp_dim=128, data=str(data), out=str(tmp_path / "run"),
                             epochs=2, batch_size=8, workers=0, quiet=True, landscape_every=2, landscape_num_eta=3))
    found = scalars(run.path / "tensorboard")
    records = read_jsonl(run.metrics_jsonl)
    for key, tag in EPOCH_TAGS.items():  # float32 in the event file
        assert [s for s, _ in found[tag]] == [1, 2]
        assert [v for _, v in found[tag]] == pytest.approx([r[key] for r in records], rel=1e-6)
    assert [s for s, _ in found["train/loss_iter"]] == list(range(0, 6, EVERY))  # 3 iterations x 2 epochs
    with open(run.landscape) as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["step"]) for r in rows] == [0, 2, 4]
    for key in LANDSCAPE_TAGS:
        assert [s for s, _ in found[f"landscape/{key}"]] == [0, 2, 4]
        assert [v for _, v in found[f"landscape/{key}"]] == pytest.approx([float(r[key]) for r in rows], rel=1e-6)


@pytest.mark.slow
def test_no_tensorboard_writes_none(tmp_path, run_cli) -> None:
    data = make_classification_set(tmp_path / "data", num_classes=2, image_size=32, train_per_class=4,
                                   val_per_class=2, seed=0)
    code, out, err = run_cli("--quiet", "train", "resnet18", "--data", str(data), "--out", str(tmp_path / "run"),
                             "--epochs", "1", "--batch-size", "8", "--workers", "0", "--no-tensorboard")
    assert code == 0, err
    assert (tmp_path / "run" / "metrics.jsonl").is_file() and not (tmp_path / "run" / "tensorboard").exists()
