"""The typed run records (gcpbench.records): JSON round trips, required keys, resume's value
comparison of two training configs, result ownership and the RunDir readers / writers."""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from gcpbench.errors import GcpbenchError
from gcpbench.identity import Producer, ResultIdentity
from gcpbench.records import (CorruptionResult, DetectionConfig, DetectionResult, EpochRecord, EvalConfig,
                              ImageNetResult, LandscapeRow, TrainConfig, UnreadableRecord, VariantResult,
                              run_config_from_json)
from gcpbench.runs import RunDir
from gcpbench.train.config import TrainOptions, requested_config, stored_config

IDENTITY = ResultIdentity(Producer("resnet18_gcp", "/runs/a/checkpoints/best.pt", "ab" * 32, "run-1"), "/data",
                          {"amp": False})


def full_config(**changes) -> TrainConfig:
    """A training config as `gcpbench train` writes it (every field)."""
    base = TrainConfig(run_id="run-1", model="resnet18_gcp", arch="resnet18", head="gcp", gcp_dim=256,
                       family="resnet", schedule="LRnorm", dataset="synthetic", data_root="/data", num_classes=4,
                       train_images=64, val_images=16, image_size=64, epochs=2, batch_size=8, base_lr=0.1,
                       lr_option=None, weight_decay=1e-4, momentum=0.9, seed=0, device="cpu", workers=0)
    return replace(base, **changes)


def test_a_result_round_trips_to_the_same_json_with_its_identity_and_undeclared_keys():
    stored = {"model": "resnet18_gcp", "checkpoint": "/runs/a/checkpoints/best.pt", "dataset": "imagenet",
              "subset": False, "identity": IDENTITY.as_dict(), "top1": 71.25, "top5": 90.5, "images": 50000,
              "loss": 1.2, "preprocessing": {"resize": 256, "crop": 224}, "unreadable": []}
    result = ImageNetResult.from_json(stored)
    assert result.top1 == 71.25 and result.identity == IDENTITY and result.identity.key == IDENTITY.key
    assert result.extra == {"preprocessing": {"resize": 256, "crop": 224}, "unreadable": []}
    assert result.to_json() == stored and json.loads(json.dumps(result.to_json())) == stored


def test_a_missing_required_key_is_named_and_optional_ones_read_as_defaults():
    with pytest.raises(UnreadableRecord, match="missing key top5"):
        ImageNetResult.from_json({"top1": 50.0})
    with pytest.raises(UnreadableRecord, match="missing key mCE_pct, relative_mCE_pct"):
        CorruptionResult.from_json({"CE": {}})
    with pytest.raises(UnreadableRecord, match="not a JSON object"):
        ImageNetResult.from_json([1, 2])
    # a summary of the layout before units were in the key names is refused, never read in the wrong unit
    with pytest.raises(UnreadableRecord, match=r"older layout without units in its keys \(mCE, relative_mCE\)"):
        CorruptionResult.from_json({"mCE": 70.0, "relative_mCE": 90.0, "CE": {}})
    old = ImageNetResult.from_json({"top1": 50.0, "top5": 80.0})  # a result of an older version
    assert old.identity is None and old.model is None and old.subset is False


def test_run_configs_are_typed_by_their_command():
    assert isinstance(run_config_from_json({"command": "train", "model": "resnet18_gap"}), TrainConfig)
    assert isinstance(run_config_from_json({"command": "detect", "framework": "mask_rcnn"}), DetectionConfig)
    evaluation = run_config_from_json({"command": "eval-c", "model": "resnet18_gap", "subset_per_class": 2})
    assert type(evaluation) is EvalConfig and evaluation.extra == {"subset_per_class": 2}
    config = full_config()
    assert run_config_from_json(json.loads(json.dumps(config.to_json()))) == config


def test_train_configs_compare_only_what_defines_the_run():
    config = full_config()
    assert config == full_config(device="cuda", workers=8, world_size=4, run_id="other", started="later")
    assert config != full_config(epochs=3)
    assert config.differences(full_config(epochs=3, seed=1)) == ["epochs", "seed"]
    # the fields resume compares are exactly the ones an option sets
    options = {f.metadata["option"] for f in TrainConfig.defining()}
    assert options <= set(TrainOptions.__dataclass_fields__)
    assert {f.name for f in TrainConfig.declared() if f.compare} == {"command"} | {f.name for f in TrainConfig.defining()}


def test_resume_reads_options_as_config_values(tmp_path):
    config = full_config(init_weights=str((tmp_path / "w.pt").resolve()))
    same = requested_config(config, TrainOptions(arch="resnet18_gcp", head="GCP", schedule="lrnorm", gcp_dim=256,
                                                 weights=str(tmp_path / "." / "w.pt"), device="cuda", workers=3))
    assert same == config
    gap = full_config(model="resnet18_gap", head="gap", gcp_dim=None)
    assert requested_config(gap, TrainOptions(gcp_dim=128)) == gap  # a GAP run ignores --gcp-dim
    assert requested_config(config, TrainOptions(lr=0.05)).differences(config) == ["lr_option"]
    run = RunDir(tmp_path / "run")
    run.path.mkdir()
    run.write_config(config)
    with pytest.raises(GcpbenchError, match=r"^--lr 0.05 differs from the run's None; --resume continues"):
        stored_config(TrainOptions(resume=str(run.path), lr=0.05))
    with pytest.raises(GcpbenchError, match="model resnet18_gap differs from the run's resnet18_gcp"):
        stored_config(TrainOptions(resume=str(run.path), arch="resnet18_gap", head="gcp"))
    resumed_run, resumed = stored_config(TrainOptions(resume=str(run.path), epochs=2, device="cpu"))
    assert resumed == config and resumed_run.path == run.path


def test_a_result_knows_when_it_belongs_to_another_run():
    result = ImageNetResult(model="resnet18_gcp", top1=1.0, top5=2.0, identity=IDENTITY)
    assert result.foreign_to(None) is None
    assert result.foreign_to(full_config()) is None
    assert result.foreign_to(full_config(run_id="run-2")) == "results of a checkpoint of another training run (run-1)"
    assert result.foreign_to(full_config(model="resnet18_gap")) == "results of resnet18_gcp in a run of resnet18_gap"
    other = EvalConfig(command="eval-imagenet", model="resnet18_gcp", checkpoint_sha256="cd" * 32)
    assert result.foreign_to(other) == "results of checkpoint abababababab in a run of checkpoint cdcdcdcdcdcd"
    assert result.foreign_to(replace(other, checkpoint_sha256="ab" * 32)) is None


def test_rundir_writes_and_reads_typed_records(tmp_path):
    run = RunDir(tmp_path / "run")
    assert run.run_config() is None and run.read_result(ImageNetResult) is None
    run.write_config(full_config())
    assert run.run_config() == full_config() and json.loads(run.config.read_text())["lr_option"] is None
    variant = VariantResult(model="resnet18_gcp", variant="sketch", top1=10.0, top5=30.0, identity=IDENTITY)
    assert run.write_result(variant) == run.eval / "imagenet_sketch.json"
    assert run.read_result(VariantResult, "imagenet_sketch.json") == variant
    faster = DetectionResult(framework="faster_rcnn", backbone="resnet50", method="gcp_m", bbox={"AP": 1.0})
    assert "segm" not in json.loads(run.write_result(faster).read_text())  # Faster R-CNN has no masks
    (run.eval / "imagenet.json").write_text("{")
    with pytest.raises(UnreadableRecord, match=r"bad JSON \(Expecting property name"):
        run.read_result(ImageNetResult)


def test_epoch_records_write_the_same_table_to_jsonl_and_csv(tmp_path):
    import pandas as pd

    run = RunDir(tmp_path / "run")
    records = [EpochRecord(epoch=e, lr=0.1 / e, train_loss=1.0 / e, train_top1=10.0 * e, val_loss=2.0 / e,
                           val_top1=11.0 * e, val_top5=50.0 + e, images_per_s=100.0, wall_time_s=3.5 * e)
               for e in (1, 2)]
    run.write_epochs(records)
    from_jsonl = [EpochRecord.from_json(json.loads(line)) for line in run.metrics_jsonl.read_text().splitlines()]
    assert from_jsonl == records
    frame = pd.read_csv(run.metrics_csv)
    assert tuple(frame.columns) == EpochRecord.COLUMNS
    assert [EpochRecord.from_json(row) for row in frame.to_dict("records")] == records
    assert replace(records[0], val_loss=float("nan"), lr=float("inf")).nonfinite() == ["lr", "val_loss"]


def test_landscape_rows_own_the_csv_header():
    from gcpbench.landscape.recorder import COLUMNS

    assert COLUMNS == LandscapeRow.columns() and COLUMNS[:3] == ("step", "epoch", "train_loss")
    probe = {name: float(i) for i, name in enumerate(COLUMNS)} | {"num_eta": 5}
    row = LandscapeRow.measured(7, 2, 0.5, probe)
    assert (row.step, row.epoch, row.train_loss, row.beta_smoothness, row.num_eta) == (7, 2, 0.5, 7.0, 5)


def test_report_reads_model_identity_from_the_registry_not_by_pattern():
    from gcpbench.report.collect import model_id, parse_model

    assert parse_model("resnet50_gcp128") == parse_model("RESNET50_GCP128")
    assert tuple(vars(parse_model("timm/convnext_atto_gcp16")).values()) == ("timm/convnext_atto", "gcp", 16)
    assert tuple(vars(parse_model("not_a_model_gap")).values()) == (None, None, None)
    ident = model_id(EvalConfig(command="eval-c"), "shufflenetv2_gcp")
    assert (ident.arch, ident.head, ident.gcp_dim) == ("shufflenetv2", "gcp", 256)


def test_evaluations_without_data_use_the_library_default(monkeypatch, tmp_path: Path):
    from gcpbench.robustness import defaults
    from gcpbench.robustness.imagenet_c import CRequest, with_default_data

    monkeypatch.setattr(defaults, "ensure_synthetic_c", lambda corruptions, severities, quiet: tmp_path / "c")
    monkeypatch.setattr(defaults, "synthetic_val_root", lambda quiet: tmp_path / "val")
    chosen = with_default_data(CRequest(checkpoint=Path("x.pt")))
    assert (chosen.data, chosen.clean_data) == (tmp_path / "c", tmp_path / "val")
    given = with_default_data(CRequest(checkpoint=Path("x.pt"), clean_error=0.25))
    assert (given.data, given.clean_data, given.clean_error) == (tmp_path / "c", None, 0.25)
    explicit = CRequest(checkpoint=Path("x.pt"), data=tmp_path / "mine")
    assert with_default_data(explicit) is explicit


def test_report_links_an_evaluation_to_its_training_run_by_the_run_id(tmp_path):
    from gcpbench.io import append_jsonl
    from gcpbench.report.collect import collect

    train = RunDir(tmp_path / "train")
    train.write_config(full_config())
    append_jsonl(train.metrics_jsonl, {"epoch": 1, "val_top1": 40.0, "val_top5": 80.0})
    moved = RunDir(tmp_path / "eval_of_a_copy")  # the checkpoint was copied away from its run
    moved.write_config(EvalConfig(command="eval-imagenet", model="resnet18_gcp", checkpoint="/copies/best.pt",
                                  checkpoint_sha256="ab" * 32))
    moved.write_result(ImageNetResult(model="resnet18_gcp", checkpoint="/copies/best.pt", top1=41.0, top5=81.0,
                                      identity=IDENTITY))
    stranger = RunDir(tmp_path / "eval_of_another")
    stranger.write_config(EvalConfig(command="eval-imagenet", model="resnet18_gcp", checkpoint="/copies/x.pt"))
    stranger.write_result(ImageNetResult(model="resnet18_gcp", checkpoint="/copies/x.pt", top1=1.0, top5=2.0))
    runs = {r.path.name: r for r in collect([tmp_path]).runs}
    assert runs["eval_of_a_copy"].owner is runs["train"] and runs["eval_of_another"].owner is None


def test_a_run_directory_may_be_named_by_a_string(tmp_path):
    run = RunDir(str(tmp_path / "run"))
    run.write_config(full_config())
    assert run.path == tmp_path / "run" and run.run_config() == full_config()
