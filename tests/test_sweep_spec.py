"""Sweep specs: grid expansion, stable names, the paper's built-in grids, the plan file, bad input."""
from __future__ import annotations

import json
import re
import socket

import pytest

from gcpbench.errors import GcpbenchError
from gcpbench.report.paper import paper_detection, paper_imagenet, paper_robustness
from gcpbench.sweep import SweepDir, load_spec, paper_spec, parse_spec
from gcpbench.sweep.launchers import parse_time
from gcpbench.sweep.spec import Evaluation, run_name
from gcpbench.sweep.state import run_status
from gcpbench.sweep.sweep import parse_assignments, select_runs, with_overrides
from slurm_cluster import dead_pid

GRID = """
name = "study"
data = "imagenet"

[train]
epochs = 5
amp = true

[[grid]]
models = ["resnet18", "mobilenetv2"]
heads = ["gap", "gcp"]
gcp_dims = [256, 128]
schedules = ["LRnorm", "lradju"]
seeds = [0, 1]
evaluations = ["eval-c"]

[[grid]]
models = ["resnet50"]
heads = ["gcp"]
schedules = ["LRnorm"]
evaluations = ["eval-p", "detect:faster_rcnn:gcp_m"]
train = { batch_size = 128 }

[options.eval-c]
data = "/data/ImageNet-C"
subset = 10
"""


def test_grid_file_expands_to_the_product_with_stable_names(tmp_path) -> None:
    path = tmp_path / "grid.toml"
    path.write_text(GRID)
    spec = load_spec(path)
    names = [r.name for r in spec.runs]
    # 2 archs x (gap once + gcp 256 + gcp 128) x 2 schedules x 2 seeds, plus one resnet50 run
    assert len(names) == len(set(names)) == 2 * 3 * 2 * 2 + 1
    assert names[0] == "resnet18_gap_LRnorm_s0_e5_amp"
    assert "mobilenetv2_gcp128_LRadju_s1_e5_amp" in names
    assert names[-1] == "resnet50_gcp_LRnorm_s0_e5_b128_amp"
    run = spec.run("mobilenetv2_gcp128_LRadju_s1_e5_amp")
    assert run.train == {"arch": "mobilenetv2_gcp128", "schedule": "LRadju", "seed": 1, "epochs": 5, "amp": True,
                         "data": str((tmp_path / "imagenet").resolve())}  # relative to the spec file
    assert run.evaluations == ["eval-c"]
    assert spec.run(names[-1]).evaluations == ["eval-p", "detect:faster_rcnn:gcp_m"]
    assert spec.eval_options == {"eval-c": {"data": "/data/ImageNet-C", "subset": 10}}
    # the same settings give the same name whatever their order or spelling
    assert run_name({"schedule": "LRadju", "arch": "mobilenetv2_gcp128", "amp": True, "epochs": 5, "seed": 1}) == \
        "mobilenetv2_gcp128_LRadju_s1_e5_amp"
    options = run.options(tmp_path / "out")
    assert (options.arch, options.resume, options.out, options.epochs) == \
        ("mobilenetv2_gcp128", "auto", str(tmp_path / "out"), 5)


def test_yaml_spec_reads_like_toml(tmp_path) -> None:
    path = tmp_path / "grid.yaml"
    path.write_text("models: [shufflenetv2]\nheads: [gap, gcp]\nschedules: [LRfast]\ntrain: {epochs: 2}\n")
    assert [r.name for r in load_spec(path).runs] == ["shufflenetv2_gap_LRfast_s0_e2", "shufflenetv2_gcp_LRfast_s0_e2"]


def test_paper_imagenet_grid_is_every_row_of_the_paper_table() -> None:
    spec = paper_spec(["imagenet"])
    table = paper_imagenet()
    assert len(spec.runs) == len(table) == 6 * 2 * 3 + 4  # 6 archs x GAP/GCP x 3 schedules + 128-d variants
    wanted = {(r.arch, r.head, 256 if r.head == "gap" or str(r.gcp_dim) == "<NA>" else int(r.gcp_dim), r.schedule)
              for r in table.itertuples()}
    got = set()
    for run in spec.runs:
        model = run.train["arch"]
        arch, head = model.split("_")
        got.add((arch, head[:3], 128 if head.endswith("128") else 256, run.train["schedule"]))
        assert run.evaluations == [] and run.name == f"{model}_{run.train['schedule']}_s0"
    assert got == wanted


def test_paper_evaluation_specs_follow_their_tables() -> None:
    robustness = paper_spec(["robustness"])
    assert {r.train["arch"] for r in robustness.runs} == {f"{a}_{h}" for a, h in
                                                          zip(paper_robustness()["arch"], paper_robustness()["head"])}
    assert all(r.train["schedule"] == "LRnorm" and r.evaluations == ["eval-c", "eval-p"] for r in robustness.runs)
    assert any("torchvision" in note for note in robustness.notes)

    detection = paper_spec(["detection"])
    evaluations = {(r.train["arch"].split("_")[0], e.split(":")[1], e.split(":")[2])
                   for r in detection.runs for e in r.evaluations}
    table = paper_detection()
    assert evaluations == set(zip(table["backbone"], table["framework"], table["method"]))
    for run in detection.runs:  # GAP trainings feed the gap method, GCP trainings gcp_d / gcp_m
        assert all((e.endswith(":gap")) == run.train["arch"].endswith("_gap") for e in run.evaluations)

    landscape = paper_spec(["landscape"])
    assert [r.name for r in landscape.runs] == ["resnet18_gap_LRnorm_s0_ls500", "resnet18_gcp_LRnorm_s0_ls500",
                                                "mobilenetv2_gap_LRnorm_s0_ls1000", "mobilenetv2_gcp_LRnorm_s0_ls1000"]
    # the trainings the evaluation tables need are the imagenet grid's runs (one folder shares them)
    imagenet = {r.name: r.train for r in paper_spec(["imagenet"]).runs}
    for run in robustness.runs + detection.runs:
        assert imagenet[run.name] == run.train


def test_command_line_overrides_rename_runs() -> None:
    spec = with_overrides(paper_spec(["detection"]), parse_assignments(["epochs=2", "amp=true", "lr=0.05"]),
                          "/data/imagenet", {"detect": "/data/coco", "eval-c": None})
    assert spec.runs[0].name == "resnet50_gap_LRnorm_s0_e2_lr0.05_amp"
    assert spec.runs[0].train["data"] == "/data/imagenet" and spec.runs[0].train["amp"] is True
    assert spec.eval_options == {"detect": {"data": "/data/coco"}}


@pytest.mark.parametrize("text, message", [
    ('models = ["resnet19"]', "unknown architecture 'resnet19'"),
    ('models = ["shufflenetv2"]\nheads = ["gcp"]\ngcp_dims = [1]', "must be at least 2"),
    ('models = ["resnet18"]\nschedule = ["LRnorm"]', "unknown key 'schedule' (did you mean 'schedules'?)"),
    ('models = ["resnet18"]\nevaluations = ["eval-x"]', "unknown evaluation 'eval-x'"),
    ('models = ["resnet18"]\nevaluations = ["detect:faster_rcnn:gcp_m"]', "does not fit resnet18_gap"),
    ('models = ["resnet18"]\n[train]\nepoch = 3', "unknown key 'epoch' (did you mean 'epochs'?)"),
    ('heads = ["gap"]', "no 'models'"),
    ('models = ["resnet18"]\n[options.eval-x]\ndata = "/x"', "options.eval-x names no evaluation command"),
    ('models = ["resnet18"]\nseeds = []', "'seeds' is empty"),
])
def test_bad_grid_files_name_the_problem(tmp_path, text, message) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(GcpbenchError, match=re.escape(message)):
        load_spec(path)


def test_bad_spec_files_and_values(tmp_path) -> None:
    broken = tmp_path / "broken.toml"
    broken.write_text("models = [resnet18")
    with pytest.raises(GcpbenchError, match="is not valid TOML"):
        load_spec(broken)
    broken_yaml = tmp_path / "broken.yaml"
    broken_yaml.write_text("models: [resnet18\n")
    with pytest.raises(GcpbenchError, match="is not valid YAML: while parsing a flow sequence"):
        load_spec(broken_yaml)
    with pytest.raises(GcpbenchError, match="must end in .toml, .yaml or .yml"):
        (tmp_path / "grid.json").write_text("{}")
        load_spec(tmp_path / "grid.json")
    with pytest.raises(GcpbenchError, match="does not exist"):
        load_spec(tmp_path / "missing.toml")
    with pytest.raises(GcpbenchError, match="KEY=VALUE"):
        parse_assignments(["epochs"])
    with pytest.raises(GcpbenchError, match=re.escape("--train, train table: epochs = 'five' must be of type int")):
        parse_assignments(["epochs=five"])
    with pytest.raises(GcpbenchError, match="amp = 1 must be of type bool"):
        parse_spec({"models": ["resnet18"], "train": {"amp": 1}}, "s")
    assert parse_assignments(["lr=1", "gcp-precision=tf32"]) == {"lr": 1, "gcp_precision": "tf32"}
    with pytest.raises(GcpbenchError, match="--paper cifar is not a paper table"):
        paper_spec(["cifar"])
    with pytest.raises(GcpbenchError, match="must read detect:"):
        Evaluation.parse("detect:yolo:gcp_m")
    # Slurm's time formats
    assert parse_time("72:00:00") == 4320 and parse_time("2-12:00:00") == 3600 and parse_time("90") == 90
    assert parse_time("2-12") == 3600 and parse_time("1-0:30") == 1470 and parse_time("1:30") == 2
    assert parse_time("45m") == 45 and parse_time("1.5h") == 90
    with pytest.raises(GcpbenchError, match="--time 'soon' is not a duration"):
        parse_time("soon")


def test_plan_merges_sweeps_into_one_folder(tmp_path) -> None:
    sweep = SweepDir(tmp_path / "sweep")
    sweep.write(paper_spec(["imagenet"]))
    merged = sweep.write(paper_spec(["detection"]))  # shares the four LRnorm ResNet-50/101 trainings
    assert merged.name == "paper-imagenet+paper-detection"
    assert len(merged.runs) == 40
    assert merged.run("resnet50_gcp_LRnorm_s0").evaluations[:1] == ["detect:faster_rcnn:gcp_d"]
    assert json.loads(sweep.plan.read_text())["runs"][0]["name"] == "mobilenetv2_gap_LRnorm_s0"
    # launching one spec launches its own runs, with what the folder's plan holds for them
    again = select_runs(sweep, paper_spec(["imagenet"]), only=["resnet50_gcp_LRnorm*"]).launch
    assert [(r.name, len(r.evaluations)) for r in again] == [("resnet50_gcp_LRnorm_s0", 4)]
    assert len(select_runs(sweep, paper_spec(["detection"])).launch) == 4
    # a run of the same name with other settings cannot join
    clash = parse_spec({"models": ["resnet18"], "schedules": ["LRnorm"]}, "other")
    clash.runs[0].train["lr"] = 0.5
    with pytest.raises(GcpbenchError, match="two runs are named 'resnet18_gap_LRnorm_s0' but differ in lr"):
        sweep.write(clash)
    with pytest.raises(GcpbenchError, match="is not a sweep directory"):
        SweepDir(tmp_path).read()


def test_status_and_selection_from_run_directories(tmp_path) -> None:
    sweep = SweepDir(tmp_path / "sweep")
    spec = sweep.write(parse_spec({"models": ["resnet18"], "heads": ["gap", "gcp"], "evaluations": ["eval-c"]}, "s"))
    gap, gcp = spec.runs
    assert run_status(sweep, gap).state == "pending"
    run = sweep.run(gap.name)
    run.path.mkdir(parents=True)
    run.config.write_text(json.dumps({"command": "train", "epochs": 3}))
    run.metrics_jsonl.write_text('{"epoch": 1, "val_top1": 40.0}\n{"epoch": 2, "val_top1": 55.5}\n{"epo')
    (run.path / "job.json").write_text(json.dumps({"state": "failed", "error": "eval-c: error: no ImageNet-C",
                                                   "evaluations": {}}))
    status = run_status(sweep, gap)
    assert (status.state, status.epoch, status.epochs, status.best_top1, status.evaluations, status.note) == \
        ("failed", 2, 3, 55.5, "0/1", "eval-c: error: no ImageNet-C")
    (run.path / "job.json").write_text(json.dumps({"state": "done", "evaluations": {"eval-c": "done"}}))
    (sweep.run(gcp.name).path).mkdir()
    (sweep.run(gcp.name).path / "job.json").write_text(json.dumps({"state": "running", "attempts": 2}))
    assert [run_status(sweep, r).state for r in spec.runs] == ["done", "running"]
    selection = select_runs(sweep, spec)
    assert selection.launch == [] and [s[0] for s in selection.skipped] == [gap.name, gcp.name]
    assert [r.name for r in select_runs(sweep, spec, include_running=True).launch] == [gcp.name]
    with pytest.raises(GcpbenchError, match="matches none"):
        select_runs(sweep, spec, only=["mobilenet*"])
    # a job of this machine whose process is gone is failed (and launched again), not running forever
    (sweep.run(gcp.name).path / "job.json").write_text(json.dumps(
        {"state": "running", "host": socket.gethostname(), "pid": dead_pid()}))
    status = run_status(sweep, gcp)
    assert status.state == "failed" and "ended without a word" in status.note
    assert [r.name for r in select_runs(sweep, spec).launch] == [gcp.name]


def test_evaluation_command_lines(tmp_path) -> None:
    from gcpbench.sweep.evaluations import command, flags

    spec = parse_spec({"models": ["resnet50"], "heads": ["gcp"], "data": "/data/imagenet", "train": {"image_size": 160},
                       "evaluations": ["eval-imagenet", "eval-c", "detect:mask_rcnn:gcp_m"]}, "s").runs[0]
    run = SweepDir(tmp_path).run(spec.name)
    ckpt = str(run.best_checkpoint)
    assert command(run, spec, Evaluation.parse("eval-imagenet"), {"workers": 4}) == \
        ["eval-imagenet", "--ckpt", ckpt, "--out", str(run.path), "--quiet", "--data", "/data/imagenet",
         "--image-size", "160", "--workers", "4"]
    # ImageNet-C's clean error comes from the run's own validation tree unless given
    assert command(run, spec, Evaluation.parse("eval-c"), {"data": "/c", "extra": True}) == \
        ["eval-c", "--ckpt", ckpt, "--out", str(run.path), "--quiet", "--clean-data", "/data/imagenet/val",
         "--data", "/c", "--extra"]
    assert "--clean-data" not in command(run, spec, Evaluation.parse("eval-c"), {"clean_error": 0.23})
    detect = Evaluation.parse("detect:mask_rcnn:gcp_m")
    work_dir = run.path / "detect" / "mask_rcnn_gcp_m"
    expected = ["detect", "--framework", "mask_rcnn", "--backbone", "resnet50_gcp_m", "--ckpt", ckpt,
                "--work-dir", str(work_dir), "--quiet"]
    assert command(run, spec, detect, {}) == expected
    work_dir.mkdir(parents=True)
    (work_dir / "last_checkpoint").write_text("epoch_3.pth")  # an interrupted fine-tuning goes on
    assert command(run, spec, detect, {"data": "/coco"}) == [*expected, "--resume", "--data", "/coco"]
    assert flags({"corruptions": ["fog", "snow"], "subset": None, "extra": False}) == ["--corruptions", "fog,snow"]
