"""Every GCP normalisation through the command line on built-in data: train (with the landscape
probe), eval-c, eval-p, the one-off landscape probe, detection fine-tuning, and the report's
method comparison (one band per method). Tiny sizes: this checks the plumbing, not accuracy."""
from __future__ import annotations

import importlib.util
import json

import pytest

from gcpbench.data.synthetic import make_classification_set
from gcpbench.pooling import NORMS

pytestmark = pytest.mark.slow
HAS_MMDET = all(importlib.util.find_spec(m) is not None for m in ("mmdet", "mmcv", "pycocotools"))
# detection per method costs ~10 s: the backbone never holds the pooling layer, so it runs for the
# methods whose checkpoints differ in kind (eigendecomposition, C^2 classifier, sketch buffers, ECA
# weights); log / mpa / none checkpoints have mpn's keys, isqrt is tests/test_detection_e2e.py's
DETECTED = ("mpn", "bcnn", "cbp", "dropcov")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A 4-class 32 px set, a 1-corruption -C tree, a 1-perturbation -P tree and a tiny COCO set."""
    from gcpbench.cli import main  # noqa: F401  (commands registered)

    root = tmp_path_factory.mktemp("methods")
    data = make_classification_set(root / "data", num_classes=4, image_size=32, train_per_class=8, val_per_class=2,
                                   seed=0)
    return {"root": root, "data": data}


def cli(run_cli, *args: str) -> str:
    code, out, err = run_cli(*args)
    assert code == 0, f"gcpbench {' '.join(args)} -> {code}: {err}"
    return out


@pytest.fixture(scope="module")
def trees(world):
    import subprocess
    import sys

    root, data = world["root"], world["data"]
    for command, flag, name in (("make-c", "--corruptions", "gaussian_noise"), ("make-p", "--perturbations", "gaussian_noise")):
        args = [sys.executable, "-m", "gcpbench", "data", command, "--src", str(data / "val"), "--out",
                str(root / command), flag, name, "--per-class", "1", "--workers", "0", "--quiet"]
        if command == "make-c":
            args += ["--severities", "1"]
        done = subprocess.run(args, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
    coco = None
    if HAS_MMDET:
        from gcpbench.data.synthetic_coco import make_detection_set

        coco = make_detection_set(root / "coco", num_train=2, num_val=1, image_size=64)
    return {"c": root / "make-c", "p": root / "make-p", "coco": coco}


@pytest.mark.parametrize("norm", NORMS)
def test_each_method_trains_evaluates_probes_and_detects(norm, world, trees, run_cli) -> None:
    root, data = world["root"], world["data"]
    run = root / "runs" / norm
    extra = ["--cbp-dim", "256"] if norm == "cbp" else ["--gcp-power", "0.5"] if norm == "mpn" else []
    cli(run_cli, "train", "resnet18", "--head", "gcp", "--gcp-dim", "128", "--gcp-norm", norm, *extra,
        "--schedule", "LRfast", "--epochs", "1", "--batch-size", "16", "--workers", "0", "--data", str(data),
        "--out", str(run), "--landscape-every", "1", "--landscape-num-eta", "2", "--quiet")
    config = json.loads((run / "config.json").read_text())
    assert config["model"] == ("resnet18_gcp128" if norm == "isqrt" else f"resnet18_gcp128_{norm}")
    assert config["gcp_norm"] == norm and (config["gcp_options"].get("proj_dim") == 256 if norm == "cbp" else True)
    ckpt = str(run / "checkpoints" / "last.pt")
    cli(run_cli, "eval-c", "--ckpt", ckpt, "--data", str(trees["c"]), "--corruptions", "gaussian_noise",
        "--severities", "1", "--workers", "0", "--quiet", "--gcp-norm", norm)
    cli(run_cli, "eval-p", "--ckpt", ckpt, "--data", str(trees["p"]), "--perturbations", "gaussian_noise",
        "--workers", "0", "--quiet")
    summary = json.loads((run / "eval" / "imagenet_c_summary.json").read_text())
    identity = summary["identity"]
    assert identity["model"] == config["model"]
    assert (identity.get("gcp") or {}).get("norm", "isqrt") == norm  # non-default methods carry it
    cli(run_cli, "landscape", "--ckpt", ckpt, "--data", str(data), "--batch-size", "8", "--num-eta", "2",
        "--out", str(root / f"landscape_{norm}.png"), "--quiet")
    code, _, err = run_cli("eval-c", "--ckpt", ckpt, "--data", str(trees["c"]), "--gcp-norm",
                           "log" if norm != "log" else "mpn", "--quiet")
    assert code == 2 and "--gcp-norm" in err and "Traceback" not in err
    if trees["coco"] is not None and norm in DETECTED:
        work = root / "detect" / norm
        cli(run_cli, "detect", "--framework", "faster_rcnn", "--backbone", "resnet18_gcp_m", "--ckpt", ckpt,
            "--data", str(trees["coco"]), "--max-iters", "1", "--batch-size", "1", "--workers", "0",
            "--work-dir", str(work), "--device", "cpu", "--quiet", "--gcp-norm", norm)
        assert json.loads((work / "config.json").read_text())["gcp_norm"] == norm


def test_report_compares_the_methods(world, run_cli) -> None:
    runs = world["root"] / "runs"
    if not runs.is_dir() or len(list(runs.iterdir())) < 2:
        pytest.skip("needs the per-method runs above")
    out = world["root"] / "report"
    cli(run_cli, "report", str(world["root"]), "--out", str(out), "--quiet")
    import pandas as pd

    table = pd.read_csv(out / "methods.csv")
    assert set(table["method"]) >= {n for n in NORMS if (runs / n).is_dir()}
    assert table["beta_smoothness"].notna().all()  # CSV headers are snake_case (report.columns)
    assert (out / "landscape_methods.png").is_file()
    published = pd.read_csv(out / "methods_published.csv")
    assert 78.19 in set(published["published_top1_pct"])
