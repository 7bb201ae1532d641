"""`gcpbench report`: run directories (built here in the shared formats) -> tables and files."""
from __future__ import annotations

import math
import sys
import types
from pathlib import Path

import pandas as pd
import pytest

from gcpbench.errors import GcpbenchError
from gcpbench.io import append_jsonl, atomic_write_json
from gcpbench.report import build_report
from gcpbench.report.collect import collect, is_imagenet, parse_model, read_metrics, training_frame, UnreadableFile
from gcpbench.report.paper import paper_architecture, paper_detection, paper_imagenet, paper_robustness
from gcpbench.report.render import EM_DASH, to_markdown
from gcpbench.report.tables import matching_epoch
from gcpbench.runs import RunDir

SYNTH = "synthetic"
GAP_TOP1 = [20.0, 35.0, 42.0, 50.0]  # GAP + LRnorm: final top-1 50.0
GCP_TOP1 = [25.0, 44.0, 51.0, 60.0]  # GCP + LRadju: first reaches 50.0 at epoch 3
CORRUPTIONS = ["gaussian_noise", "shot_noise", "defocus_blur"]


def write_train_run(path: Path, arch: str, head: str, schedule: str, dataset: str, top1: list[float],
                    gcp_dim: int | None = None) -> RunDir:
    """A training run as `gcpbench train` writes it: config.json + metrics.jsonl (+ .csv)."""
    run = RunDir(path)
    dim = gcp_dim if head == "gcp" else None
    model = f"{arch}_{head}" + ("128" if dim == 128 else "")
    run.write_config({"command": "train", "model": model, "arch": arch, "head": head, "gcp_dim": dim,
                      "schedule": schedule, "dataset": dataset, "data_root": "/data"})
    records = []
    for epoch, acc in enumerate(top1, 1):
        record = {"epoch": epoch, "lr": 0.1 / epoch, "train_loss": 2.0 / epoch, "train_top1": acc - 5,
                  "val_loss": 1.5 / epoch, "val_top1": acc, "val_top5": min(100.0, acc + 30),
                  "images_per_s": 100.0, "wall_time_s": 10.0 * epoch}
        append_jsonl(run.metrics_jsonl, record)
        records.append(record)
    pd.DataFrame(records).to_csv(run.metrics_csv, index=False)
    return run


def write_c_summary(run: RunDir, model: str, dataset: str, ce: list[float], subset: bool = False) -> None:
    """eval-c's outputs: eval/imagenet_c.csv and eval/imagenet_c_summary.json."""
    rows = [{"corruption": c, "severity": s, "error": 0.5, "images": 10} for c in CORRUPTIONS for s in range(1, 6)]
    pd.DataFrame(rows).to_csv(run.eval_file("imagenet_c.csv"), index=False)
    atomic_write_json(run.eval_file("imagenet_c_summary.json"), {
        "model": model, "dataset": dataset, "subset": subset, "clean_error": 0.3,
        "mCE": sum(ce) / len(ce), "relative_mCE": 110.0, "CE": dict(zip(CORRUPTIONS, ce)),
        "relative_CE": dict(zip(CORRUPTIONS, ce)), "extra_CE": {"speckle_noise": 88.0}, "unreadable": []})


def write_p_summary(run: RunDir, model: str, dataset: str, mfp: float, mt5d: float) -> None:
    """eval-p's outputs: eval/imagenet_p.csv and eval/imagenet_p_summary.json."""
    pd.DataFrame([{"perturbation": "gaussian_noise", "difficulty": 1, "FP": 0.1, "T5D": 1.0,
                   "FP_rel": mfp, "T5D_rel": mt5d}]).to_csv(run.eval_file("imagenet_p.csv"), index=False)
    atomic_write_json(run.eval_file("imagenet_p_summary.json"), {
        "model": model, "dataset": dataset, "difficulty": 1, "mFP": mfp, "mT5D": mt5d,
        "FP": {"gaussian_noise": mfp}, "T5D": {"gaussian_noise": mt5d}, "unreadable": []})


def write_detection(run: RunDir, framework: str, method: str, dataset: str, ap: float, segm: bool) -> None:
    """detect's output: eval/detection_<framework>.json."""
    values = {"AP": ap, "AP50": ap + 20, "AP75": ap + 2, "APs": ap / 2, "APm": ap + 3, "APl": ap + 10}
    result = {"framework": framework, "backbone": "resnet50", "method": method, "dataset": dataset, "bbox": values}
    if segm:
        result["segm"] = {k: v - 3 for k, v in values.items()}
    atomic_write_json(run.eval_file(f"detection_{framework}.json"), result)


def write_landscape(run: RunDir) -> None:
    """The probe's landscape.csv (two measurements)."""
    pd.DataFrame({"step": [0, 10], "epoch": [1, 2], "train_loss": [2.3, 1.9], "loss_min": [2.2, 1.8],
                  "loss_max": [2.6, 2.4], "grad_diff_min": [0.0, 0.0], "grad_diff_max": [0.5, 0.4],
                  "beta_smoothness": [3.0, 2.0], "eta_min": [0.1, 0.1], "eta_max": [75.0, 75.0],
                  "num_eta": [50, 50]}).to_csv(run.landscape, index=False)


@pytest.fixture(scope="module")
def runs_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two synthetic resnet18 runs (GAP LRnorm, GCP LRadju), one ImageNet run, evals, two bad runs.

    Shared by the module's tests, which only read it.
    """
    root = tmp_path_factory.mktemp("report") / "runs"
    write_train_run(root / "r18_gap_norm", "resnet18", "gap", "LRnorm", SYNTH, GAP_TOP1)
    gcp = write_train_run(root / "r18_gcp_adju", "resnet18", "gcp", "LRadju", SYNTH, GCP_TOP1, 256)
    for run in (RunDir(root / "r18_gap_norm"), gcp):
        write_landscape(run)
    write_c_summary(gcp, "resnet18_gcp", SYNTH, [80.0, 90.0, 70.0])
    write_p_summary(gcp, "resnet18_gcp", SYNTH, 60.0, 80.0)
    imnet = write_train_run(root / "r18_gcp_imagenet", "resnet18", "gcp", "LRnorm", "imagenet",
                            [60.0, 74.0], 256)
    atomic_write_json(imnet.eval_file("imagenet.json"), {
        "model": "resnet18_gcp", "checkpoint": str(imnet.best_checkpoint), "dataset": "imagenet",
        "top1": 75.5, "top5": 92.5, "images": 50000})
    write_c_summary(imnet, "resnet18_gcp", "imagenet-c", [70.0, 72.0, 74.0])
    det = RunDir(root / "det_r50")
    det.write_config({"command": "detect", "framework": "mask_rcnn", "backbone": "resnet50_gcp_m", "dataset": SYNTH})
    write_detection(det, "mask_rcnn", "gcp_m", SYNTH, 5.0, segm=True)
    write_detection(det, "faster_rcnn", "gcp_m", "coco", 37.6, segm=False)
    broken = RunDir(root / "broken")
    broken.write_config({"command": "train", "arch": "resnet18", "head": "gap", "schedule": "LRfast",
                         "dataset": SYNTH})
    broken.metrics_jsonl.write_text('{"epoch": 1, "val_top1": 10, "val_top5": 30}\n{"epoch": 2, "val_t\n'
                                    '{"epoch": 3, "val_top1": 12, "val_top5": 33}\n')
    partial = RunDir(root / "partial")
    partial.write_config({"command": "train", "arch": "resnet34", "head": "gap", "schedule": "LRnorm",
                          "dataset": SYNTH})
    append_jsonl(partial.metrics_jsonl, {"epoch": 1, "val_top1": 10.0})
    return root


@pytest.fixture(scope="module")
def report(runs_root: Path):
    """The report of ``runs_root``, written once beside it."""
    return build_report([runs_root], runs_root.parent / "report")


@pytest.fixture
def quick_figures(monkeypatch):
    """Skip the landscape and learning-rate figures (tested on their own) to keep a test fast."""
    from gcpbench.report import build
    from gcpbench.report.plots import Figure

    monkeypatch.setattr(build, "lr_figure", lambda out: Figure("lr", None, "skipped in this test"))
    monkeypatch.setattr(build, "landscape_figure", lambda runs, out: Figure("landscape", None, "skipped in this test"))


def row(frame: pd.DataFrame, **match) -> pd.Series:
    """The single row of ``frame`` whose columns equal ``match``."""
    mask = pd.Series(True, index=frame.index)
    for column, value in match.items():
        mask &= frame[column].astype(object).eq(value)
    assert mask.sum() == 1, f"{mask.sum()} rows match {match}:\n{frame}"
    return frame[mask].iloc[0]


def missing(value) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


# ---------------------------------------------------------------- paper data

def test_paper_values_come_from_the_package_csvs():
    imagenet = paper_imagenet()
    assert len(imagenet) == 40  # rows of paper_imagenet.csv
    r18 = imagenet[(imagenet["arch"] == "resnet18") & (imagenet["head"] == "gcp") & (imagenet["schedule"] == "LRnorm")]
    assert r18[["top1", "top5"]].values.tolist() == [[75.48, 92.23]]
    assert paper_robustness().set_index(["arch", "head"]).loc[("resnet50", "gap"), "mCE"] == 76.7
    assert len(paper_detection()) == 18
    assert [paper_architecture(a) for a in ("resnet18", "mobilenetv2", "shufflenetv2", "resnet101", "vgg16")] == \
        ["ResNet18", "MobileNetV2", "ShuffleNetV2", "ResNet101", None]


def test_helpers():
    assert (parse_model("resnet50_gcp128").arch, parse_model("resnet50_gcp128").gcp_dim) == ("resnet50", 128)
    assert parse_model("mobilenetv2_gcp").gcp_dim == 256 and parse_model("shufflenetv2_gap").gcp_dim is None
    assert is_imagenet("imagenet") and is_imagenet("ImageNet-1k") and is_imagenet("imagenet-c", suffix="c")
    assert not is_imagenet("synthetic") and not is_imagenet("imagenet", subset=True) and not is_imagenet(None)
    assert matching_epoch(50.0, [1, 2, 3, 4], GCP_TOP1) == 3
    assert matching_epoch(50.0, [4, 3, 2, 1], GCP_TOP1[::-1]) == 3  # order of records does not matter
    assert matching_epoch(61.0, [1, 2, 3, 4], GCP_TOP1) is None
    assert to_markdown(pd.DataFrame({"a": [1.0, float("nan")]})).count(EM_DASH) == 1


# ---------------------------------------------------------------- collection

def test_broken_and_partial_runs_are_named_and_skipped(runs_root: Path):
    collection = collect([runs_root])
    assert sorted(r.name for r in collection.runs) == ["det_r50", "r18_gap_norm", "r18_gcp_adju", "r18_gcp_imagenet"]
    assert len(collection.warnings) == 2
    broken = next(w for w in collection.warnings if "runs/broken:" in w)
    assert str(runs_root / "broken") in broken and "line 2 is not valid JSON" in broken
    partial = next(w for w in collection.warnings if "runs/partial:" in w)
    assert "lacks val_top5" in partial


def test_torn_last_line_is_ignored_and_bad_eval_file_skipped_alone(tmp_path: Path):
    run = write_train_run(tmp_path / "torn", "resnet18", "gap", "LRnorm", SYNTH, [10.0, 20.0])
    with open(run.metrics_jsonl, "a") as handle:
        handle.write('{"epoch": 3, "val_')  # a crash mid-write: no newline
    assert read_metrics(run.metrics_jsonl)["epoch"].tolist() == [1, 2]
    run.eval_file("imagenet_c_summary.json").write_text("{not json")
    collection = collect([run.path])
    assert len(collection.runs) == 1 and collection.runs[0].c_summary is None
    assert collection.warnings == [f"{run.metrics_jsonl}: left out a torn last record (an interrupted write)",
                                   f"skipped file {run.eval / 'imagenet_c_summary.json'}: bad JSON "
                                   "(Expecting property name enclosed in double quotes, line 1)"]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"epoch": 1, "val_top1": "high", "val_top5": 3}\n')
    with pytest.raises(UnreadableFile, match="non-numeric"):
        read_metrics(bad)


def test_no_runs_is_one_line_error(tmp_path: Path):
    with pytest.raises(GcpbenchError, match="no run directories"):
        collect([tmp_path])
    with pytest.raises(GcpbenchError, match="does not exist"):
        collect([tmp_path / "nope"])


def test_eval_run_of_a_checkpoint_feeds_its_training_run(tmp_path: Path):
    train = write_train_run(tmp_path / "train", "mobilenetv2", "gcp", "LRfast", SYNTH, [30.0, 40.0], 128)
    evaluation = RunDir(tmp_path / "eval_mnv2")
    evaluation.write_config({"command": "eval-imagenet", "model": "mobilenetv2_gcp128",
                             "checkpoint": str(train.best_checkpoint), "dataset": SYNTH})
    atomic_write_json(evaluation.eval_file("imagenet.json"), {
        "model": "mobilenetv2_gcp128", "checkpoint": str(train.best_checkpoint), "dataset": SYNTH,
        "top1": 41.0, "top5": 80.0, "images": 100})
    frame = training_frame(collect([tmp_path]))
    assert len(frame) == 1
    got = frame.iloc[0]
    assert (got["arch"], got["head"], got["gcp_dim"], got["schedule"]) == ("mobilenetv2", "gcp", 128, "LRfast")
    assert (got["top1"], got["top5"], got["epochs"]) == (41.0, 80.0, 2)
    assert got["source"] == "eval/imagenet.json of eval_mnv2"


# ---------------------------------------------------------------- tables

def test_imagenet_table(report):
    table = report.table("imagenet").frame
    assert list(table.columns) == [
        "architecture", "head", "GCP dim", "schedule", "dataset", "run", "epochs", "source", "status", "Top-1", "Top-5",
        "paper (ImageNet) Top-1", "paper (ImageNet) Top-5", "Δ Top-1", "Δ Top-5"]
    # the six ResNet18 paper rows; our three runs fill three of them
    assert len(table) == 6
    assert set(table["architecture"]) == {"ResNet-18"}
    gap = row(table, run="r18_gap_norm")
    assert (gap["head"], gap["schedule"], gap["dataset"], gap["epochs"]) == ("GAP", "LRnorm", SYNTH, 4)
    assert (gap["Top-1"], gap["Top-5"], gap["source"]) == (50.0, 80.0, "metrics.jsonl epoch 4")
    assert (gap["paper (ImageNet) Top-1"], gap["paper (ImageNet) Top-5"]) == (70.47, 89.59)
    assert missing(gap["Δ Top-1"]) and missing(gap["Δ Top-5"])  # synthetic: never compared
    gcp = row(table, run="r18_gcp_adju")
    assert (gcp["GCP dim"], gcp["Top-1"], gcp["paper (ImageNet) Top-1"]) == (256, 60.0, 74.86)
    assert missing(gcp["Δ Top-1"])
    imnet = row(table, run="r18_gcp_imagenet")
    assert (imnet["dataset"], imnet["source"], imnet["Top-1"]) == ("imagenet", "eval/imagenet.json", 75.5)
    assert imnet["Δ Top-1"] == pytest.approx(75.5 - 75.48) and imnet["Δ Top-5"] == pytest.approx(92.5 - 92.23)
    paper_only = row(table, head="GAP", schedule="LRfast")
    assert missing(paper_only["run"]) and missing(paper_only["Top-1"]) and paper_only["paper (ImageNet) Top-1"] == 66.02
    order = list(zip(table["head"], table["schedule"]))
    assert order == [("GAP", "LRnorm"), ("GAP", "LRfast"), ("GAP", "LRadju"),
                     ("GCP", "LRnorm"), ("GCP", "LRfast"), ("GCP", "LRadju")]


def test_matching_epoch_table(report):
    table = report.table("matching_epoch").frame
    assert len(table) == 1  # the ImageNet GCP run is LRnorm: no pair of its own
    got = table.iloc[0]
    assert (got["architecture"], got["dataset"], got["GAP+LRnorm run"], got["GCP+LRadju run"]) == \
        ("ResNet-18", SYNTH, "r18_gap_norm", "r18_gcp_adju")
    assert (got["GAP+LRnorm final Top-1"], got["matching epoch"], got["paper (ImageNet) matching epoch"]) == (50.0, 3, 32)


def test_robustness_tables(report):
    table = report.table("robustness").frame
    synth = row(table, run="r18_gcp_adju")
    assert (synth["dataset (C)"], synth["dataset (P)"], synth["schedule"]) == (SYNTH, SYNTH, "LRadju")
    assert (synth["mCE"], synth["relative mCE"], synth["mFP"], synth["mT5D"]) == (80.0, 110.0, 60.0, 80.0)
    assert (synth["paper (ImageNet) mCE"], synth["paper (ImageNet) relative mCE"],
            synth["paper (ImageNet) mFP"], synth["paper (ImageNet) mT5D"]) == (76.3, 101.3, 53.2, 77.1)
    assert all(missing(synth[f"Δ {m}"]) for m in ("mCE", "relative mCE", "mFP", "mT5D"))
    imnet = row(table, run="r18_gcp_imagenet")
    assert imnet["Δ mCE"] == pytest.approx(72.0 - 76.3) and imnet["Δ relative mCE"] == pytest.approx(110.0 - 101.3)
    assert missing(imnet["dataset (P)"]) and missing(imnet["mFP"]) and missing(imnet["Δ mFP"])
    gap_paper = row(table, head="GAP")
    assert missing(gap_paper["run"]) and gap_paper["paper (ImageNet) mCE"] == 84.7
    ce = report.table("corruption_ce").frame
    assert ce["corruption"].tolist() == CORRUPTIONS + ["speckle_noise (extra)", "mCE"]
    # synthetic data divided by AlexNet's ImageNet errors: labelled so, in the table and the figure
    assert list(ce.columns) == ["corruption", "ResNet-18 GCP (synthetic) [not ImageNet]", "ResNet-18 GCP (imagenet-c)"]
    assert ce["ResNet-18 GCP (synthetic) [not ImageNet]"].tolist() == [80.0, 90.0, 70.0, 88.0, 80.0]


def test_detection_table(report):
    table = report.table("detection").frame
    assert list(table.columns[:7]) == ["framework", "backbone", "method", "task", "source", "dataset", "run"]
    ours = table[table["source"] == "ours"]
    assert len(ours) == 3  # mask_rcnn bbox + segm, faster_rcnn bbox
    segm = row(table, framework="Mask R-CNN", task="segm", method="GCP_M", source="ours")
    assert (segm["dataset"], segm["AP"], segm["AP50"], segm["APs"], segm["APl"]) == (SYNTH, 2.0, 22.0, -0.5, 12.0)
    assert missing(segm["Δ AP"])
    paper_segm = row(table, framework="Mask R-CNN", task="segm", method="GCP_M", source="paper (COCO)")
    assert (paper_segm["AP"], paper_segm["APs"]) == (34.7, 16.4) and missing(paper_segm["run"])
    coco = row(table, framework="Faster R-CNN", method="GCP_M", source="ours")
    assert coco["Δ AP"] == pytest.approx(37.6 - 37.1)
    # paper rows only for the framework x backbone pairs we have: 2 x ResNet-50, all methods
    paper_rows = table[table["source"] == "paper (COCO)"]
    assert set(paper_rows["backbone"]) == {"ResNet-50"} and len(paper_rows) == 3 + 3 + 3


# ---------------------------------------------------------------- files

def test_every_output_file_exists(report, runs_root: Path):
    out = runs_root.parent / "report"
    for name in ("imagenet", "matching_epoch", "robustness", "corruption_ce", "detection"):
        for ext in ("md", "csv", "tex"):
            assert (out / f"{name}.{ext}").stat().st_size > 0, f"{name}.{ext}"
    assert (out / "convergence.png").stat().st_size > 0 and (out / "corruption_ce.png").stat().st_size > 0
    text = report.report.read_text()
    assert report.report == out / "report.md"
    assert "![" in text and "(convergence.png)" in text and "(corruption_ce.png)" in text
    for figure in report.figures:  # landscape / LR plots come from modules that may be absent
        assert (figure.path is not None and figure.path.is_file()) or (figure.note and figure.note in text)
    assert "broken" in text and "partial" in text  # the skipped runs are named
    imagenet_md = (out / "imagenet.md").read_text()
    gap_line = next(line for line in imagenet_md.splitlines() if "r18_gap_norm" in line)
    assert "| synthetic " in gap_line and gap_line.rstrip(" |").endswith(EM_DASH)
    assert "paper (ImageNet) Top-1" in imagenet_md and "75.48" in imagenet_md
    tex = (out / "imagenet.tex").read_text()
    assert "\\begin{table}" in tex and "r18\\_gap\\_norm" in tex and "---" in tex and "$\\Delta$" in tex
    csv = pd.read_csv(out / "imagenet.csv")
    assert csv.loc[csv["run"] == "r18_gcp_imagenet", "Δ Top-1"].iloc[0] == pytest.approx(0.02)


def test_cli_prints_summary_and_report_path(runs_root: Path, tmp_path: Path, quick_figures):
    from typer.testing import CliRunner

    from gcpbench.cli import app

    result = CliRunner().invoke(app, ["report", str(runs_root), "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert "skipped run" in result.output and "ImageNet classification" in result.output
    assert result.output.strip().splitlines()[-1] == f"report: {tmp_path / 'out' / 'report.md'}"


def test_subset_and_other_data_are_labelled_never_compared(tmp_path: Path, quick_figures):
    run = write_train_run(tmp_path / "sub", "resnet50", "gap", "LRfast", "imagenet", [70.0, 71.0])
    run.write_config({**run.read_config(), "subset": True})
    write_c_summary(run, "resnet50_gap", "imagenet-c", [76.7, 76.7, 76.7], subset=True)
    result = build_report([tmp_path], tmp_path / "out")
    got = row(result.table("imagenet").frame, run="sub")
    assert (got["dataset"], got["Top-1"], got["paper (ImageNet) Top-1"]) == ("imagenet (subset)", 71.0, 71.08)
    assert missing(got["Δ Top-1"])
    robust = row(result.table("robustness").frame, run="sub")
    assert robust["dataset (C)"] == "imagenet-c (subset)" and missing(robust["Δ mCE"])
    assert robust["paper (ImageNet) mCE"] == 76.7
    assert result.table("matching_epoch").frame.empty and "_no entries_" in (tmp_path / "out" / "matching_epoch.md").read_text()


def test_lr_figure_calls_learning_rate_per_family_and_schedule(monkeypatch, tmp_path: Path):
    from gcpbench.report import plots

    calls = []

    def learning_rate(arch, schedule, epoch, step=0, steps_per_epoch=1):
        calls.append((arch, schedule, epoch, step, steps_per_epoch))
        return 0.1 * 0.9 ** epoch

    fake = types.ModuleType("gcpbench.train.schedules")
    fake.learning_rate = learning_rate
    monkeypatch.setitem(sys.modules, "gcpbench.train.schedules", fake)
    figure = plots.lr_figure(tmp_path / "lr.png")
    assert figure.path == tmp_path / "lr.png" and figure.path.stat().st_size > 0
    expected = sum(sum(e.values()) for e in plots.PAPER_EPOCHS.values())
    assert len(calls) == expected == 100 + 30 + 50 + 400 + 100 + 150 + 240 + 60 + 100
    assert ("shufflenetv2", "LRadju", 99, 0, 1) in calls and ("mobilenetv2", "LRnorm", 399, 0, 1) in calls


def test_landscape_figure_without_runs_says_so(tmp_path: Path):
    from gcpbench.report import plots

    assert plots.landscape_figure([], tmp_path / "l.png").note.startswith("no run has a landscape.csv")


def test_cli_default_root_and_errors(tmp_path: Path, monkeypatch, quick_figures):
    from typer.testing import CliRunner

    from gcpbench.cli import app

    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["report", "--quiet"])
    assert isinstance(result.exception, GcpbenchError) and "runs" in str(result.exception)
    write_train_run(tmp_path / "runs" / "one", "shufflenetv2", "gcp", "LRnorm", SYNTH, [10.0], 256)
    result = CliRunner().invoke(app, ["report", "--quiet"])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == f"report: {Path('runs') / 'report' / 'report.md'}"
    assert (tmp_path / "runs" / "report" / "imagenet.csv").is_file()
