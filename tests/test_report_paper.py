"""The report a paper can use: provenance header and data banner, the paper's wide layouts, CSV
for scripts, report.json, LaTeX that drops into a two-column paper."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest

from gcpbench.provenance import provenance
from gcpbench.report import build_report
from gcpbench.report.latex import too_wide
from gcpbench.report.wide import imagenet_wide
from test_report import SYNTH, quick_figures, report, runs_root, write_train_run  # noqa: F401 (fixtures)

# The paper's Table 1 (ResNet-18 row) and robustness table, typed from the paper, not read from the package CSVs.
PAPER_R18 = {"LRnorm GAP Top-1": 70.47, "LRnorm GCP Top-1": 75.48, "LRfast GAP Top-1": 66.02,
             "LRadju GCP Top-5": 91.81}
PAPER_R18_GCP_MCE = 76.3


def wide_row(table, **labels) -> pd.Series:
    mask = pd.Series(True, index=table.labels.index)
    for column, value in labels.items():
        mask &= table.labels[column].astype(str) == str(value)
    assert mask.sum() == 1, f"{mask.sum()} rows match {labels}:\n{table.frame()}"
    return table.frame()[mask].iloc[0]


# ---------------------------------------------------------------- paper layout

def test_table1_is_architectures_by_schedule_and_head(report):
    table = report.wide_table("table1_imagenet")
    assert list(table.labels.columns) == ["architecture", "GCP dim", "source"]
    assert list(table.values.columns[:4]) == ["LRnorm GAP Top-1", "LRnorm GAP Top-5", "LRnorm GCP Top-1",
                                              "LRnorm GCP Top-5"]
    assert table.groups[:2] == [("LRnorm GAP", 2), ("LRnorm GCP", 2)]
    paper = wide_row(table, architecture="ResNet-18", source="paper (ImageNet)")
    assert {c: paper[c] for c in PAPER_R18} == PAPER_R18
    synthetic = wide_row(table, architecture="ResNet-18", source="ours (synthetic)")
    assert (synthetic["LRnorm GAP Top-1"], synthetic["LRadju GCP Top-1"]) == (50.0, 60.0)
    assert pd.isna(synthetic["LRnorm GCP Top-1"])
    imagenet = wide_row(table, architecture="ResNet-18", source="ours (imagenet)")
    delta = wide_row(table, architecture="ResNet-18", source="Δ (imagenet)")
    assert imagenet["LRnorm GCP Top-1"] == 75.5 and delta["LRnorm GCP Top-1"] == pytest.approx(75.5 - 75.48)
    assert not (table.labels["source"] == "Δ (synthetic)").any()  # never compared
    best = table.best()
    row = table.labels.index[table.labels["source"] == "paper (ImageNet)"][0]
    assert best.at[row, "LRnorm GCP Top-1"] and not best.at[row, "LRnorm GAP Top-1"]  # GCP beats GAP, bold


def test_robustness_table_is_methods_by_metrics(report):
    table = report.wide_table("table_robustness")
    assert list(table.values.columns) == ["mCE", "relative mCE", "mFP", "mT5D"]
    gcp = wide_row(table, architecture="ResNet-18", head="GCP", source="paper (ImageNet)")
    gap = wide_row(table, architecture="ResNet-18", head="GAP", source="paper (ImageNet)")
    assert gcp["mCE"] == PAPER_R18_GCP_MCE and gap["mCE"] == 84.7
    ours = wide_row(table, architecture="ResNet-18", head="GCP", source="ours (synthetic)")
    assert (ours["mCE"], ours["relative mCE"], ours["mFP"], ours["mT5D"]) == (80.0, 110.0, 60.0, 80.0)
    delta = wide_row(table, architecture="ResNet-18", head="GCP", source="Δ (imagenet-c)")
    assert delta["mCE"] == pytest.approx(72.0 - 76.3) and pd.isna(delta["mFP"])
    best = table.best()
    assert best.at[gcp.name, "mCE"] and not best.at[gap.name, "mCE"]  # lower is better
    synthetic = table.labels.index[table.labels["source"] == "ours (synthetic)"][0]
    assert table.marks.at[synthetic, "mCE"] == "†" and table.marks.at[synthetic, "mFP"] == "†"  # H2's status (C) / (P)


def test_detection_is_backbones_by_methods_per_framework(report):
    mask = report.wide_table("table_detection_mask_rcnn")
    assert mask.groups == [("box", 6), ("mask", 6)] and len(mask.values.columns) == 12
    ours = wide_row(mask, backbone="ResNet-50", method="GCP_M", source="ours (synthetic)")
    assert (ours["bbox AP"], ours["segm AP"]) == (5.0, 2.0)
    faster = report.wide_table("table_detection_faster_rcnn")
    delta = wide_row(faster, backbone="ResNet-50", method="GCP_M", source="Δ (coco)")
    assert delta["bbox AP"] == pytest.approx(37.6 - 37.1)


def test_status_marks_several_runs_and_methods_show_in_the_wide_table(report):
    long = report.table("imagenet").frame.copy()
    long["status"] = ["stale" if run == "r18_gap_norm" else "" for run in long["run"].astype(str)]
    long["gcp_norm"] = [None] * len(long)
    twin = long[long["run"] == "r18_gcp_adju"].assign(run="again", epochs=9, **{"Top-1": 61.0})
    table = imagenet_wide(pd.concat([long, twin], ignore_index=True))
    synthetic = table.labels.index[table.labels["source"] == "ours (synthetic)"][0]
    assert table.marks.at[synthetic, "LRnorm GAP Top-1"] == "†"  # H2's status column, as a footnote mark
    assert table.marks.at[synthetic, "LRadju GCP Top-1"] == "‡"  # two runs: the one with more epochs
    assert table.values.at[synthetic, "LRadju GCP Top-1"] == 61.0
    assert set(table.legend()) == {"†", "‡"}
    from gcpbench.report.html import wide_html
    from gcpbench.report.latex import wide_to_latex
    from gcpbench.report.render import wide_markdown

    tex, markdown, page = wide_to_latex(table), wide_markdown(table), wide_html(table)
    assert "50.00$^{\\dagger}$" in tex and "$^{\\dagger}$ not a plain number" in tex and "$^{\\ddagger}$" in tex
    assert "| 50.00† |" in markdown and "† not a plain number" in markdown
    assert "50.00<sup>†</sup>" in page and "<sup>‡</sup> several runs" in page
    assert "method" not in table.labels  # an empty method column is left out
    long["gcp_norm"] = ["svd" if run == "r18_gcp_adju" else None for run in long["run"].astype(str)]
    long["status"] = ""
    long["partial"] = [run == "r18_gcp_imagenet" for run in long["run"].astype(str)]  # a flag column marks too
    grouped = imagenet_wide(long)
    assert "svd" in set(grouped.labels["method"])
    imagenet = grouped.labels.index[grouped.labels["source"] == "ours (imagenet)"][0]
    assert grouped.marks.at[imagenet, "LRnorm GCP Top-1"] == "†" and not "".join(grouped.marks.iloc[0])


# ---------------------------------------------------------------- files for scripts and papers

def test_csv_headers_are_machine_readable(report, runs_root: Path):
    out = runs_root.parent / "report"
    imagenet = pd.read_csv(out / "imagenet.csv")
    assert list(imagenet.columns) == ["architecture", "head", "gcp_dim", "schedule", "dataset", "run", "epochs", "source",
                                      "status", "top1_pct", "top5_pct", "paper_top1_pct", "paper_top5_pct", "delta_top1_pct",
                                      "delta_top5_pct"]
    assert list(pd.read_csv(out / "robustness.csv").columns)[-4:] == ["delta_mce_pct", "delta_relative_mce_pct",
                                                                       "delta_mfp_pct", "delta_mt5d_pct"]
    for path in out.glob("*.csv"):
        header = path.read_text().splitlines()[0].split(",")
        assert all(re.fullmatch(r"[a-z0-9_]+", name) for name in header), (path.name, header)


def test_report_json_holds_everything(report, runs_root: Path):
    text = (runs_root.parent / "report" / "report.json").read_text()
    data = json.loads(text, parse_constant=lambda name: pytest.fail(f"{name} is not JSON"))
    assert data["schema"] == "gcpbench-report/1" and data["data_banner"].startswith("Not comparable")
    assert data["provenance"]["gcpbench_version"] and "torch" in data["provenance"]
    assert sorted(r["run"] for r in data["runs"]) == sorted(report.runs)
    imagenet = data["tables"]["imagenet"]
    assert imagenet["columns"][-1] == "delta_top5_pct" and len(imagenet["rows"]) == len(report.table("imagenet").frame)
    gap = next(r for r in imagenet["rows"] if r["run"] == "r18_gap_norm")
    assert gap["top1_pct"] == 50.0 and gap["delta_top1_pct"] is None
    table1 = data["paper_layout"]["table1_imagenet"]
    assert table1["kinds"] == report.wide_table("table1_imagenet").kinds
    assert {f["file"] for f in data["figures"] if f["file"]} >= {"convergence.png", "corruption_ce.png"}


def tabular_rows(tex: str) -> tuple[str, list[str]]:
    spec = re.search(r"\\begin\{tabular\}\{([lrc]+)\}", tex).group(1)
    body = tex.split(r"\midrule", 1)[1].split(r"\bottomrule")[0]
    return spec, [line for line in body.splitlines() if line.endswith(r"\\")]


def test_latex_drops_into_a_two_column_paper(report, runs_root: Path):
    out = runs_root.parent / "report"
    for path in out.glob("*.tex"):
        tex = path.read_text()
        assert tex.splitlines()[0].startswith("% requires \\usepackage{booktabs}")
        assert "\\toprule" in tex and "\\bottomrule" in tex and "\\hline" not in tex
        spec, rows = tabular_rows(tex)
        assert all(row.count(" & ") == len(spec) - 1 for row in rows), path.name
        if len(spec) > 6 or path.stem == "corruption_ce":  # many columns, or long model names: fit one column
            assert "\\resizebox{\\linewidth}{!}" in tex, path.name
    assert not too_wide(["model", "mCE"], [["ResNet-18", "76.30"]])  # a narrow table keeps its natural size
    assert too_wide(["corruption", "ResNet-101 GCP (imagenet-c)", "ResNet-101 GAP (imagenet-c)"], [["fog", "1.00", "2.00"]])
    imagenet = (out / "imagenet.tex").read_text()
    header = imagenet.split("\\toprule")[1].split("\\midrule")[0]
    assert "run" not in header.replace("\\multicolumn", "") and "source" not in header  # no internal columns
    spec, rows = tabular_rows(imagenet)
    assert spec == "llrllrlrrrrrr"  # numbers right-aligned, fixed decimals line up; text (the status) left
    table1 = (out / "table1_imagenet.tex").read_text()
    assert "\\textbf{75.48}" in table1 and "\\textbf{70.47}" not in table1  # the better of GAP / GCP is bold
    assert "\\cmidrule(lr){4-5}" in table1 and "\\multicolumn{2}{c}{LRnorm GAP}" in table1
    assert "+0.02" in table1 and "$\\Delta$ (imagenet)" in table1


# ---------------------------------------------------------------- header, banner, sections

def test_header_names_the_stack_and_each_runs_command_and_the_banner_the_data(tmp_path: Path, quick_figures):
    run = write_train_run(tmp_path / "runs" / "r18", "resnet18", "gcp", "LRnorm", "imagenet", [70.0, 75.0], 256)
    made = provenance(["gcpbench", "train", "--arch", "resnet18", "--head", "gcp"], device="cuda:0")
    resumed = provenance(["gcpbench", "train", "--resume", str(run.path)], device="cuda:0")
    run.write_config({**run.read_config(), "provenance": made, "resumed": [resumed]})
    result = build_report([tmp_path / "runs"], tmp_path / "out")
    text = result.report.read_text()
    head = text.split("## ")[0]
    for label in ("date", "gcpbench", "torch", "hardware", "command"):
        assert f"- **{label}**:" in head
    assert result.content.provenance["git_commit"] is None or result.content.provenance["git_commit"][:12] in head
    assert "gcpbench train --arch resnet18 --head gcp" in head and "cuda:0" in head
    assert f"gcpbench train --resume {run.path}" in head  # the continuation's command too
    assert result.content.banner is None and "Not comparable" not in text  # full ImageNet: no banner
    assert "## CIFAR" not in text and "_no entries_" not in text and "## Matching epoch" not in text  # empty: left out

    write_train_run(tmp_path / "runs" / "synthetic", "resnet18", "gap", "LRnorm", SYNTH, [10.0])
    sub = write_train_run(tmp_path / "runs" / "subset", "resnet18", "gap", "LRfast", "imagenet", [10.0])
    sub.write_config({**sub.read_config(), "subset": True})
    text = build_report([tmp_path / "runs"], tmp_path / "out2").report.read_text()
    banner = next(line for line in text.splitlines() if "Not comparable with the paper's numbers" in line)
    assert "synthetic" in banner and "imagenet (subset)" in banner and "r18" not in banner.split("runs:")[1]
