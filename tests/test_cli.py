"""The CLI skeleton: help, zoo, convert, one-line errors (run as a real subprocess)."""
from __future__ import annotations

import subprocess
import sys

import torch

from gcpbench.models import build


def gcpbench(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gcpbench", *args], capture_output=True, text=True, timeout=300)


def test_help_lists_every_command() -> None:
    result = gcpbench("--help")
    assert result.returncode == 0
    for command in ("train", "finetune", "eval-imagenet", "eval-c", "eval-p", "detect", "landscape", "report", "data", "zoo",
                    "convert"):
        assert command in result.stdout


def test_zoo_csv_lists_models_with_params() -> None:
    models = ("resnet50_gcp", "resnet50_gap", "mobilenetv2_gcp128", "shufflenetv2_gap")
    result = gcpbench("zoo", "--format", "csv", *[arg for m in models for arg in ("--model", m)])
    assert result.returncode == 0, result.stderr
    rows = {line.split(",")[0]: line.split(",") for line in result.stdout.strip().splitlines()[1:]}
    assert rows["resnet50_gcp"][1] == "56929832" and rows["resnet50_gcp"][3] == "256"
    assert rows["mobilenetv2_gcp128"][3] == "128" and rows["shufflenetv2_gap"][3] == ""
    assert float(rows["resnet50_gap"][2]) == 4.089


def test_convert_and_unknown_model_errors_are_one_line(tmp_path) -> None:
    model = build("resnet18_gap", num_classes=3)
    src = tmp_path / "tv.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in model.state_dict().items()}}, src)
    ok = gcpbench("convert", str(src), "--model", "resnet18_gap", "--out", str(tmp_path / "out.pt"))
    assert ok.returncode == 0, ok.stderr
    assert (tmp_path / "out.pt").is_file()

    unknown = gcpbench("convert", str(src), "--model", "resnet81_gap", "--out", str(tmp_path / "x.pt"))
    assert unknown.returncode == 2
    assert unknown.stderr.strip().count("\n") == 0
    assert "did you mean 'resnet18_gap'" in unknown.stderr and "Traceback" not in unknown.stderr

    wrong = gcpbench("convert", str(src), "--model", "resnet34_gap", "--out", str(tmp_path / "y.pt"))
    assert wrong.returncode == 2 and "Traceback" not in wrong.stderr
    assert "resnet18_gap" in wrong.stderr and wrong.stderr.strip().count("\n") == 0


def test_tables_written_to_a_file_or_pipe_are_not_squeezed_to_80_columns(monkeypatch) -> None:
    from gcpbench.cli.ui import PIPED_WIDTH, stdout_console

    monkeypatch.delenv("COLUMNS", raising=False)
    monkeypatch.setattr(sys.stdout, "isatty", lambda: False)
    assert stdout_console().width == PIPED_WIDTH == 160
    monkeypatch.setenv("COLUMNS", "100")  # the user's choice wins
    assert stdout_console().width == 100
    monkeypatch.delenv("COLUMNS")
    from rich.table import Table

    table = Table()
    for i in range(10):
        table.add_column(f"column {i}")
    table.add_row(*["generated"] * 10)  # ~125 columns: folded into 'gener' / 'ated' at 80
    console = stdout_console(file=__import__("io").StringIO())
    console.print(table)
    assert max(line.count("generated") for line in console.file.getvalue().splitlines()) == 10
