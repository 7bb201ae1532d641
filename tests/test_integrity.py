"""Numbers that can be trusted under faults (issue: results filed under the wrong model, mixed
writers, torn lines, stale epochs, non-finite checkpoints, clean-error disagreement, Ctrl-C,
kills during checkpoint writes, a full disk). Each test reproduces the fault first."""
from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from gcpbench.errors import GcpbenchError
from gcpbench.identity import Producer, ResultIdentity
from gcpbench.io import load_jsonl, read_jsonl
from gcpbench.models import build, save_checkpoint
from gcpbench.models.weights import nonfinite_tensors, read_checkpoint
from gcpbench.robustness.imagenet_c import evaluate_c
from gcpbench.robustness.engine import ResumeLog
from gcpbench.runlock import writer_lock
from gcpbench.runs import RunDir
from robustness_tiny import checkpoint, clean_tree  # noqa: F401
from test_robustness_eval_c import c_tree, request  # noqa: F401

PYTHON_ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[1])}


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def other_checkpoint(path: Path, name: str = "resnet18_gap", seed: int = 1) -> Path:
    torch.manual_seed(seed)
    save_checkpoint(path, build(name, num_classes=3), name)
    return path


def gcpbench(*args: str, cwd: Path | None = None, env: dict | None = None, timeout: float = 600):
    return subprocess.run([sys.executable, "-m", "gcpbench", *args], capture_output=True, text=True, cwd=cwd,
                          env=env or PYTHON_ENV, timeout=timeout)


# ------------------------------------------------------------------ 1. results carry identity

def test_results_carry_identity_and_runs_refuse_other_models_and_checkpoints(checkpoint, c_tree, tmp_path):
    run_path = tmp_path / "run"
    summary, run = evaluate_c(request(checkpoint, c_tree), run_path)
    identity = summary["identity"]
    assert identity["model"] == "resnet18_gap" and identity["sha256"] == sha256(checkpoint)
    assert identity["checkpoint"] == str(Path(checkpoint).resolve())
    assert identity["data_root"] == str(c_tree.resolve()) and identity["options"]["subset"] is None
    before = {p: p.read_bytes() for p in run.path.rglob("*") if p.is_file()}

    gcp = other_checkpoint(tmp_path / "gcp.pt", "resnet18_gcp")
    with pytest.raises(GcpbenchError, match="holds results of resnet18_gap; ImageNet-C results of resnet18_gcp"):
        evaluate_c(request(gcp, c_tree), run_path)
    same_model = other_checkpoint(tmp_path / "other.pt")
    with pytest.raises(GcpbenchError, match=r"holds results of checkpoint .* cannot be filed there"):
        evaluate_c(request(same_model, c_tree), run_path)
    after = {p: p.read_bytes() for p in run.path.rglob("*") if p.is_file() and not p.name.startswith(".lock")}
    assert after == {p: b for p, b in before.items() if not p.name.startswith(".lock")}


def test_eval_imagenet_result_has_identity_and_refuses_a_training_run_of_another_model(checkpoint, clean_tree,
                                                                                       tmp_path):
    from gcpbench.evaluate import eval_imagenet

    result, path = eval_imagenet(checkpoint, clean_tree.parent, tmp_path / "ev", workers=0, quiet=True)
    assert result["identity"]["sha256"] == sha256(checkpoint) and json.loads(path.read_text()) == result
    train_run = RunDir(tmp_path / "train")
    train_run.write_config({"command": "train", "run_id": "abc", "model": "resnet18_gcp"})
    with pytest.raises(GcpbenchError, match="holds results of resnet18_gcp; ImageNet results of resnet18_gap"):
        eval_imagenet(checkpoint, clean_tree.parent, train_run.path, workers=0, quiet=True)
    train_run.write_config({"command": "train", "run_id": "abc", "model": "resnet18_gap"})
    with pytest.raises(GcpbenchError, match="is a training run and .* is not one of its checkpoints"):
        eval_imagenet(checkpoint, clean_tree.parent, train_run.path, workers=0, quiet=True)
    assert not (train_run.eval / "imagenet.json").exists()


def test_report_skips_a_result_of_another_model(tmp_path):
    from gcpbench.io import atomic_write_json
    from gcpbench.report.collect import collect

    run = RunDir(tmp_path / "r")
    run.write_config({"command": "eval-imagenet", "model": "resnet18_gcp", "checkpoint_sha256": "a" * 64})
    atomic_write_json(run.eval_file("imagenet.json"), {"model": "resnet18_gap", "top1": 50.0, "top5": 90.0})
    atomic_write_json(run.eval_file("imagenet_c_summary.json"), {
        "model": "resnet18_gcp", "mCE_pct": 70.0, "relative_mCE_pct": 90.0, "identity": {"sha256": "b" * 64}})
    collection = collect([run.path])
    assert collection.runs[0].imagenet is None and collection.runs[0].c_summary is None
    assert collection.warnings == [
        f"skipped file {run.eval / 'imagenet.json'}: results of resnet18_gap in a run of resnet18_gcp",
        f"skipped file {run.eval / 'imagenet_c_summary.json'}: results of checkpoint bbbbbbbbbbbb in a run of "
        "checkpoint aaaaaaaaaaaa"]


# ------------------------------------------------------------------ 2. one writer, identity-keyed records

def test_a_second_writer_is_refused_with_the_holder_named(checkpoint, c_tree, tmp_path):
    out = tmp_path / "run"
    with writer_lock(out, "imagenet_c", command="gcpbench eval-c (test)"):
        done = gcpbench("eval-c", "--ckpt", str(checkpoint), "--data", str(c_tree), "--out", str(out),
                        "--corruptions", "gaussian_noise,brightness", "--severities", "1,2", "--workers", "0",
                        "--quiet")
        with pytest.raises(GcpbenchError, match="being written by"):
            evaluate_c(request(checkpoint, c_tree), out)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: '{out}' is being written by pid {os.getpid()} on ")
    assert "`gcpbench eval-c (test)`" in lines[0] and lines[0].endswith("write elsewhere with --out")
    assert not (out / "eval" / "imagenet_c_summary.json").exists()


def test_a_stale_lock_of_a_dead_process_is_taken_over(tmp_path, caplog):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / ".lock-imagenet_c").write_text(json.dumps({"pid": dead.pid, "host": os.uname().nodename,
                                                            "command": "gcpbench eval-c", "started": "then"}))
    with caplog.at_level(logging.WARNING, logger="gcpbench"):
        with writer_lock(tmp_path, "imagenet_c"):
            assert json.loads((tmp_path / ".lock-imagenet_c").read_text())["pid"] == os.getpid()
    assert f"took over the lock of imagenet_c in {tmp_path}: its holder, pid {dead.pid}" in caplog.text


def test_resume_records_of_another_identity_are_never_reused(checkpoint, tmp_path):
    one = ResultIdentity(Producer.of(checkpoint, "resnet18_gap"), "/data/c", {"subset": None})
    two = ResultIdentity(Producer("resnet18_gap", "/other.pt", "f" * 64), "/data/c", {"subset": None})
    path = tmp_path / "progress.jsonl"
    log = ResumeLog(path, one)
    log.add({"key": "fog/1", "error": 0.5})
    with open(path, "a") as handle:  # an interleaved record of another writer
        handle.write(json.dumps({"key": "fog/2", "error": 0.1, "id": two.key}) + "\n")
    again = ResumeLog(path, one)
    assert again.done("fog/1") and not again.done("fog/2")
    assert ResumeLog(path, two).records == {}  # another checkpoint starts afresh
    changed = ResultIdentity(one.producer, "/data/c", {"subset": 10})
    assert changed.key != one.key and ResumeLog(path, changed).records == {}


# ------------------------------------------------------------------ 3. torn progress line

def test_a_torn_progress_line_is_dropped_and_only_its_subset_recomputed(checkpoint, c_tree, tmp_path, caplog):
    summary, run = evaluate_c(request(checkpoint, c_tree), tmp_path / "run")
    progress = run.eval / "imagenet_c_progress.jsonl"
    complete = progress.read_bytes()
    progress.write_bytes(complete[:-25])  # the last record cut mid-line
    with caplog.at_level(logging.WARNING, logger="gcpbench"):
        resumed, _ = evaluate_c(request(checkpoint, c_tree), tmp_path / "run")
    assert "dropped a torn last record" in caplog.text
    per_subset = summary["images"] // 4
    assert resumed["resumed_images"] == 3 * per_subset  # 4 subsets, the torn one recomputed
    assert resumed["mCE_pct"] == summary["mCE_pct"] and resumed["severity_error_pct"] == summary["severity_error_pct"]
    assert len(read_jsonl(progress)) == 5 and load_jsonl(progress).torn_bytes == 0
    third, _ = evaluate_c(request(checkpoint, c_tree), tmp_path / "run")
    assert third["resumed_images"] == 4 * per_subset and len(progress.read_bytes().splitlines()) == 5


# ------------------------------------------------------------------ 4. report and a torn metrics line

def test_report_uses_the_complete_metrics_file_and_says_so(tmp_path):
    from gcpbench.report.collect import collect
    from gcpbench.records import EpochRecord, TrainConfig
    from gcpbench.train.trainer import write_metrics

    run = RunDir(tmp_path / "run")
    config = TrainConfig(model="resnet18_gap", schedule="LRnorm", dataset="synthetic")
    run.write_config(config)
    records = [EpochRecord.from_json({k: float(e) if k != "epoch" else e for k in EpochRecord.COLUMNS}) for e in (1, 2, 3)]
    write_metrics(run, records, config)
    assert [r["epoch"] for r in read_jsonl(run.metrics_jsonl)] == [1, 2, 3]
    assert run.metrics_csv.read_text().count("\n") == 4
    text = run.metrics_jsonl.read_bytes()
    run.metrics_jsonl.write_bytes(text[:-20])
    collection = collect([run.path])
    assert collection.runs[0].metrics["epoch"].tolist() == [1, 2, 3]
    assert collection.warnings == [
        f"{run.metrics_jsonl}: left out a torn last record (an interrupted write)",
        f"run {run.path}: metrics.jsonl ends at epoch 2, metrics.csv ends at epoch 3; using metrics.csv"]


# ------------------------------------------------------------------ 5. non-finite checkpoints

@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    from gcpbench.data.synthetic import make_classification_set

    return make_classification_set(tmp_path_factory.mktemp("data") / "set", num_classes=4, image_size=32,
                                   train_per_class=6, val_per_class=2, seed=0)


TINY = dict(arch="resnet18", epochs=2, batch_size=8, workers=0, quiet=True)


def test_an_epoch_with_nonfinite_state_is_never_saved(tiny_data, tmp_path, monkeypatch):
    from gcpbench.train import TrainOptions, train
    from gcpbench.train import trainer

    real_validate = trainer.validate

    def diverging_validate(s):  # epoch 2 blows a BatchNorm variance up, as an LR of 8 did
        if s.run.last_checkpoint.is_file():
            s.net.bn1.running_var.fill_(float("inf"))
        return real_validate(s)

    monkeypatch.setattr(trainer, "validate", diverging_validate)
    out = tmp_path / "run"
    with pytest.raises(GcpbenchError, match=r"epoch 2 diverged with 1 non-finite tensor\(s\) \(first: 'bn1.running_var'\)"
                                            r"; it was not saved and the last finite checkpoint is epoch 1's"):
        train(TrainOptions(**TINY, data=str(tiny_data), out=str(out)))
    last = read_checkpoint(out / "checkpoints" / "last.pt")
    assert last["epoch"] == 1 and nonfinite_tensors(last["state_dict"]) == []
    assert nonfinite_tensors(read_checkpoint(out / "checkpoints" / "best.pt")["state_dict"]) == []
    assert [r["epoch"] for r in read_jsonl(out / "metrics.jsonl")] == [1]


def test_a_diverging_run_keeps_only_finite_checkpoints_and_eval_refuses_nonfinite(tiny_data, tmp_path):
    out = tmp_path / "lr8"
    done = gcpbench("train", "resnet18", "--data", str(tiny_data), "--out", str(out), "--epochs", "4",
                    "--batch-size", "8", "--lr", "30", "--workers", "0", "--quiet")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "diverged" in done.stderr or "loss became" in done.stderr
    for path in (out / "checkpoints").glob("*.pt"):
        assert nonfinite_tensors(read_checkpoint(path)["state_dict"]) == []
    broken = build("resnet18_gap", num_classes=4)
    broken.bn1.running_var.fill_(float("inf"))
    save_checkpoint(tmp_path / "inf.pt", broken, "resnet18_gap")
    refused = gcpbench("eval-imagenet", "--ckpt", str(tmp_path / "inf.pt"), "--data", str(tiny_data), "--out",
                       str(tmp_path / "ev"), "--quiet", "--workers", "0")
    assert refused.returncode == 2 and "NaN or infinite values in 1 tensor(s) (first: 'bn1.running_var')" in refused.stderr
    assert not (tmp_path / "ev" / "eval" / "imagenet.json").exists()


# ------------------------------------------------------------------ 6. one clean error

def test_eval_c_clean_error_equals_eval_imagenet_exactly(checkpoint, c_tree, clean_tree, tmp_path):
    from gcpbench.evaluate import eval_imagenet

    result, _ = eval_imagenet(checkpoint, clean_tree.parent, tmp_path / "imnet.json", workers=0, quiet=True)
    summary, _ = evaluate_c(request(checkpoint, c_tree, clean_data=clean_tree), tmp_path / "c")
    assert result["images"] == 12 and summary["clean_error_pct"] == 100 * (1 - result["top1"] / 100)


# ------------------------------------------------------------------ 7. Ctrl-C exits 130

def interrupt_when(path: Path, args: list[str], timeout: float = 300) -> subprocess.CompletedProcess:
    process = subprocess.Popen([sys.executable, "-m", "gcpbench", *args], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env=PYTHON_ENV)
    deadline = time.monotonic() + timeout
    while not path.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=120)
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


def assert_interrupted(done: subprocess.CompletedProcess) -> None:
    """Exit 130 with the one ``interrupted`` line and no traceback; the stderr tail on failure."""
    report = f"exit {done.returncode}; stderr tail:\n{done.stderr[-3000:]}"
    assert done.returncode == 130, report
    assert "Traceback" not in done.stderr and "interrupted" in done.stderr, report


@pytest.mark.slow
def test_ctrl_c_exits_130_in_train_and_eval_c(tiny_data, checkpoint, c_tree, tmp_path):
    out = tmp_path / "train"
    done = interrupt_when(out / "config.json", ["train", "resnet18", "--data", str(tiny_data), "--out", str(out),
                                                "--epochs", "50", "--batch-size", "8", "--workers", "0", "--quiet"])
    assert_interrupted(done)
    for image in list(c_tree.rglob("*.JPEG")):  # enough images (9600) that the signal lands mid-work
        for copy in range(199):
            os.link(image, image.with_name(f"{image.stem}_{copy}.JPEG"))
    out = tmp_path / "c"
    done = interrupt_when(out / "config.json", ["eval-c", "--ckpt", str(checkpoint), "--data", str(c_tree), "--out",
                                                str(out), "--corruptions", "gaussian_noise,brightness",
                                                "--severities", "1,2", "--workers", "0", "--quiet"])
    assert_interrupted(done)


# ------------------------------------------------------------------ 8. killed while writing best.pt

def test_resume_after_a_kill_during_the_best_checkpoint_write(tiny_data, tmp_path, monkeypatch):
    from gcpbench.train import TrainOptions, train
    from gcpbench.train import trainer

    real_atomic_write = trainer.atomic_write

    def killed_mid_write(path, write, needed=None):  # what a SIGKILL leaves: a partial temp file, no rename
        if Path(path).name == "best.pt":
            (Path(path).parent / ".best.pt.abc123.tmp").write_bytes(b"partial")
            raise SystemExit(-9)
        return real_atomic_write(path, write, needed)

    out = tmp_path / "run"
    monkeypatch.setattr(trainer, "atomic_write", killed_mid_write)
    with pytest.raises(SystemExit):
        train(TrainOptions(**TINY, data=str(tiny_data), out=str(out)))
    (out / "checkpoints" / ".last.pt.def456.tmp").write_bytes(b"x" * 1000)
    (out / ".metrics.jsonl.ghi789.tmp").write_text("{")
    (out / "metrics.jsonl").unlink()  # what the old write order left: no metrics yet
    monkeypatch.setattr(trainer, "atomic_write", real_atomic_write)
    train(TrainOptions(resume=str(out), quiet=True, workers=0))
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["best.pt", "last.pt"]
    assert not list(out.glob(".*.tmp"))
    assert [r["epoch"] for r in read_jsonl(out / "metrics.jsonl")] == [1, 2]
    assert read_checkpoint(out / "checkpoints" / "last.pt")["epoch"] == 2


# ------------------------------------------------------------------ 12. a full disk

@pytest.mark.slow
def test_a_full_disk_gives_one_line_and_keeps_the_last_checkpoint(tiny_data, tmp_path):
    if shutil.which("unshare") is None:
        pytest.fail("util-linux's unshare is needed to mount a small private tmpfs")
    model = build("shufflenetv2_gap", num_classes=4)
    checkpoint_mib = 2 * sum(p.numel() for p in model.parameters()) * 4 / 2**20  # weights + momentum
    size_kib = int(checkpoint_mib * 2.5 * 1024)  # last.pt + best.pt fit, a third write does not
    disk = tmp_path / "disk"
    disk.mkdir()
    check = ("import json,sys; from gcpbench.models.weights import read_checkpoint, nonfinite_tensors; "
             "from gcpbench.io import read_jsonl; c = read_checkpoint(sys.argv[1] + '/checkpoints/last.pt'); "
             "print(json.dumps({'epoch': c['epoch'], 'finite': not nonfinite_tensors(c['state_dict']), "
             "'metrics': [r['epoch'] for r in read_jsonl(sys.argv[1] + '/metrics.jsonl')]}))")
    script = (f"mount -t tmpfs -o size={size_kib}k tmpfs {disk} && "
              f"{sys.executable} -m gcpbench train shufflenetv2 --data {tiny_data} --out {disk}/run --epochs 2 "
              f"--batch-size 8 --workers 0 --quiet; echo rc=$? >&2; {sys.executable} -c \"{check}\" {disk}/run")
    done = subprocess.run(["unshare", "-rm", "sh", "-c", script], capture_output=True, text=True, env=PYTHON_ENV,
                          timeout=600)
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert "rc=2" in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert len(errors) == 1 and "no space left to write" in errors[0] and "last.pt" in errors[0]
    assert "MiB free on that file system" in errors[0]
    state = json.loads(done.stdout.strip().splitlines()[-1])
    assert state == {"epoch": 1, "finite": True, "metrics": [1, 2]}
