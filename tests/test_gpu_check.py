"""`make gpu-check`'s script: one line without CUDA, and its CPU smoke mode runs every step."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "gpu_check.py"


def _run(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=900,
                          env={**os.environ, "OMP_NUM_THREADS": "1", **env})


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_without_cuda_it_says_so_in_one_line(tmp_path) -> None:
    done = _run("--out", str(tmp_path / "out"))
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.strip() == (f"gpu-check: no CUDA GPU visible (torch {torch.__version__}, CUDA build "
                                   f"{torch.version.cuda or 'none'}); run it on a CUDA machine, or pass --cpu-smoke to "
                                   "check the script on the CPU")
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
@pytest.mark.mmdet
def test_cpu_smoke_runs_every_step_and_writes_one_summary(tmp_path) -> None:
    pytest.importorskip("mmdet")
    done = _run("--cpu-smoke", "--out", str(tmp_path / "out"), CUDA_VISIBLE_DEVICES="")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    summary = json.loads((tmp_path / "out" / "gpu_check.json").read_text())
    steps = summary["steps"]
    assert list(steps) == ["layer", "train_step", "train", "eval_c", "eval_p", "detect_mask_rcnn", "ddp"]
    assert all(step["ok"] for step in steps.values()), {k: v.get("error") for k, v in steps.items()}
    assert summary["mode"] == "cpu-smoke" and summary["torch"] == torch.__version__
    assert summary["doctor"]["summary"].startswith("gcpbench ") and summary["doctor"]["core_ok"]

    layer = steps["layer"]["result"]
    assert {(c["batch"], c["precision"]) for c in layer["configs"]} == {(2, "float32"), (2, "tf32")}
    b2 = layer["summary"]["B2"]
    assert b2["tf32_emulated"] is True and b2["tf32_speedup"] is None  # no tensor cores on a CPU: nothing timed
    assert 1e-5 < b2["tf32_rel_error_vs_float32"] < 1e-2  # TF32's 10-bit mantissa, emulated
    step = steps["train_step"]["result"]
    assert (step["baseline"], step["candidate"]) == ("resnet18_gap", "resnet18_gcp") and "amp bf16" in step["setting"]
    assert step["ratio"] == pytest.approx(step["candidate_images_per_s"] / step["baseline_images_per_s"])
    assert steps["train"]["result"]["epochs"] == 1
    assert 0 <= steps["eval_c"]["result"]["mCE_pct"] and 0 <= steps["eval_p"]["result"]["mFP_pct"]
    detect = steps["detect_mask_rcnn"]["result"]
    assert detect["iterations"] == 1 and set(detect["result"]) >= {"bbox", "segm"}
    assert steps["ddp"]["result"] | {"loss": None, "step_seconds": None} == {
        "backend": "gloo", "world_size": 2, "device": "cpu", "batch_per_rank": 4, "image": 32, "loss": None,
        "step_seconds": None, "in_sync": True, "all_reduce_ok": True}


def test_an_unknown_step_is_one_line_naming_the_steps(tmp_path) -> None:
    done = _run("--cpu-smoke", "--steps", "layer,detect", "--out", str(tmp_path / "out"), CUDA_VISIBLE_DEVICES="")
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.strip() == ("gpu-check: unknown step detect; the steps are layer, train_step, train, eval_c, "
                                   "eval_p, detect_mask_rcnn, ddp")
    assert not (tmp_path / "out").exists()


def test_steps_runs_only_those_and_keeps_the_earlier_records(tmp_path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    earlier = {"ok": True, "result": {"from": "an earlier run"}, "seconds": 1.0}
    (out / "gpu_check.json").write_text(json.dumps({"mode": "cpu-smoke", "steps": {"ddp": earlier}}))
    done = _run("--cpu-smoke", "--steps", "layer", "--out", str(out), CUDA_VISIBLE_DEVICES="")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "[gpu-check] 1/1 steps passed" in done.stdout
    steps = json.loads((out / "gpu_check.json").read_text())["steps"]
    assert list(steps) == ["ddp", "layer"] and steps["ddp"] == earlier and steps["layer"]["ok"]


def test_an_earlier_summary_of_another_mode_is_not_merged(tmp_path) -> None:
    sys.path.insert(0, str(SCRIPT.parent))
    from gpu_check import earlier_steps, select_steps

    path = tmp_path / "gpu_check.json"
    path.write_text(json.dumps({"mode": "cuda", "steps": {"ddp": {"ok": True}}}))
    assert earlier_steps(path, "cpu-smoke") == {} and earlier_steps(path, "cuda") == {"ddp": {"ok": True}}
    assert earlier_steps(tmp_path / "missing.json", "cuda") == {}
    assert list(select_steps({"a": 1, "b": 2, "c": 3}, "c, a")) == ["a", "c"]
    assert select_steps({"a": 1}, None) == {"a": 1}
