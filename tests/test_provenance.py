"""gcpbench.provenance: what code and stack made a run, checked against independent sources."""
from __future__ import annotations

import subprocess
from importlib.metadata import version
from pathlib import Path

import torch

import gcpbench
from gcpbench.provenance import command_argv, git_state, provenance
from gcpbench.records import EvalConfig, ImageNetResult
from gcpbench.runs import RunDir, write_eval_config

ROOT = Path(gcpbench.__file__).resolve().parent.parent


def git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()


def test_provenance_names_the_code_and_the_stack() -> None:
    facts = provenance(["/usr/bin/gcpbench", "train", "--arch", "resnet18", "--out", "a b"], device=torch.device("cpu"))
    assert facts["argv"] == ["gcpbench", "train", "--arch", "resnet18", "--out", "a b"]
    assert facts["command_line"] == "gcpbench train --arch resnet18 --out 'a b'"
    assert facts["gcpbench_version"] == gcpbench.__version__ and facts["device"] == "cpu"
    assert facts["torch"] == version("torch") and facts["torchvision"] == version("torchvision")
    assert facts["cuda"] == torch.version.cuda
    if (ROOT / ".git").exists():
        assert facts["git_commit"] == git("rev-parse", "HEAD")
        assert facts["git_dirty"] == bool(git("status", "--porcelain", "--untracked-files=no"))
    assert facts["hardware"] and facts["created"]


def test_outside_a_checkout_there_is_no_commit(tmp_path: Path) -> None:
    assert git_state(tmp_path) == (None, None)
    assert command_argv(["python", "-m", "x"]) == ["python", "-m", "x"]
    assert command_argv(["/x/gcpbench/__main__.py", "report"]) == ["gcpbench", "report"]


def test_eval_config_and_results_carry_it(tmp_path: Path) -> None:
    run = RunDir(tmp_path / "run")
    run.path.mkdir()
    write_eval_config(run, {"command": "eval-imagenet", "model": "resnet18_gcp", "device": "cpu"})
    config = EvalConfig.read(run.config)
    assert config.provenance["gcpbench_version"] == gcpbench.__version__ and config.provenance["device"] == "cpu"
    result = ImageNetResult(model="resnet18_gcp", top1=1.0, top5=2.0, provenance=provenance(device="cpu"))
    assert ImageNetResult.from_json(result.to_json()).provenance == result.provenance
    assert "provenance" not in ImageNetResult(model="m", top1=1.0, top5=2.0).to_json()  # older files stay as they were
