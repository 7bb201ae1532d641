"""Installing like a library: the core without mmdetection, the `detect` extra, a wheel that works
outside the checkout (configs, manifests and reference data inside the package)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from gcpbench.extras import DETECT_MODULES, mmcv_ops_files, require_detect
from gcpbench.errors import GcpbenchError

REPO = Path(__file__).resolve().parents[1]
DETECTION_STACK = {"mmdet", "mmcv", "mmengine", "pycocotools"}


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("GCPBENCH_CONFIGS", "PYTHONPATH")}
    return {**env, "OMP_NUM_THREADS": "1", **extra}


def test_core_commands_never_import_the_detection_stack(tmp_path) -> None:
    tree = tmp_path / "c" / "gaussian_noise" / "1" / "n01440764"
    tree.mkdir(parents=True)
    (tree / "a.JPEG").write_bytes(b"")
    probe = (
        "import sys, json, importlib, pathlib\n"
        "import gcpbench, gcpbench.cli\n"
        "root = pathlib.Path(gcpbench.__file__).parent\n"
        "files = [p.relative_to(root.parent).with_suffix('') for p in sorted(root.rglob('*.py'))]\n"
        "names = ['.'.join(f.parts).removesuffix('.__init__') for f in files if f.parts[1] not in ('detection', 'configs', '__main__')]\n"
        "for name in names:\n    importlib.import_module(name)\n"
        "from gcpbench.cli import main\n"
        "codes = []\n"
        "for args in (['zoo', '-m', 'resnet18_gap'], ['data', 'check', 'imagenet-c', sys.argv[1], '--structure-only']):\n"
        "    sys.argv = ['gcpbench', *args]\n"
        "    try:\n        main(); codes.append(0)\n"
        "    except SystemExit as exc:\n        codes.append(exc.code or 0)\n"
        "print(json.dumps({'codes': codes, 'imported': names, 'modules': sorted({m.split('.')[0] for m in sys.modules})}))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe, str(tmp_path / "c")], capture_output=True, text=True,
                          cwd=REPO, env=_env(PYTHONPATH=str(REPO)), timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    record = json.loads(done.stdout.strip().splitlines()[-1])
    assert record["codes"] == [0, 0]
    assert {"gcpbench.report.build", "gcpbench.robustness.runner", "gcpbench.train.trainer", "gcpbench.doctor",
            "gcpbench.cli.detect"} <= set(record["imported"])  # every module but gcpbench.detection's
    assert "torch" in record["modules"]  # the commands really ran
    assert DETECTION_STACK.isdisjoint(record["modules"])


def test_detect_without_the_extra_says_in_one_line_what_to_install(run_cli, monkeypatch) -> None:
    for name in ("mmdet", "mmcv"):
        monkeypatch.setitem(sys.modules, name, None)  # how Python marks a module as not importable
    code, out, err = run_cli("detect", "--framework", "faster_rcnn", "--backbone", "resnet18_gap")
    assert code == 2 and out == ""
    line = err.strip()
    assert "\n" not in line
    assert "missing: mmcv, mmdet" in line and "gcpbench[detect]" in line
    assert f"VENV={sys.prefix} bash scripts/bootstrap.sh" in line


def test_the_synthetic_detection_set_without_pycocotools_says_what_to_install(tmp_path, monkeypatch) -> None:
    from gcpbench.data.synthetic_coco import make_detection_set

    monkeypatch.setitem(sys.modules, "pycocotools", None)
    with pytest.raises(GcpbenchError, match=r"the synthetic detection set needs the detect extra.*missing: pycocotools"):
        make_detection_set(tmp_path / "coco")
    assert not (tmp_path / "coco").exists()


def test_this_environment_has_the_extra_with_compiled_mmcv_ops() -> None:
    pytest.importorskip("mmcv")
    files = mmcv_ops_files()
    assert files and files[0].name.startswith("_ext")
    import mmcv

    assert files[0].parent == Path(mmcv.__file__).parent
    require_detect()  # passes here: every module of the extra is installed


def _source_copy(dst: Path) -> Path:
    """What a wheel is built from (the checkout without its venv, runs and caches)."""
    dst.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, dst / name)
    for name in ("gcpbench", "configs", "data_manifests"):
        shutil.copytree(REPO / name, dst / name, symlinks=True, ignore=shutil.ignore_patterns("__pycache__"))
    return dst


@pytest.mark.slow
@pytest.mark.mmdet
def test_the_wheel_works_outside_the_checkout(tmp_path) -> None:
    pytest.importorskip("mmdet")
    source = _source_copy(tmp_path / "src")
    dist, site, work = tmp_path / "dist", tmp_path / "site", tmp_path / "elsewhere"
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(dist),
                            str(source)], capture_output=True, text=True, env=_env(), timeout=300)
    assert build.returncode == 0, build.stderr[-2000:]
    (wheel,) = dist.glob("gcpbench-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        metadata = archive.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    assert {f"gcpbench/manifests/{m}.json" for m in ("coco", "imagenet", "imagenet_c", "imagenet_p")} <= names
    assert len([n for n in names if n.startswith("gcpbench/configs/detection/") and n.endswith(".py")]) == 12
    assert "gcpbench/reference_data/paper_imagenet.csv" in names
    requires = [line for line in metadata.splitlines() if line.startswith("Requires-Dist:")]
    stack = [line for line in requires if any(f" {m}" in line.split(";")[0] for m in DETECT_MODULES)]
    assert len(stack) == 4 and all('extra == "detect"' in line for line in stack), stack
    assert any(line.startswith("Requires-Dist: torch>=2.6") and "extra" not in line for line in requires)
    assert "Provides-Extra: detect" in metadata

    install = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site), str(wheel)],
                             capture_output=True, text=True, env=_env(), timeout=300)
    assert install.returncode == 0, install.stderr[-2000:]
    work.mkdir()
    env = _env(PYTHONPATH=str(site), GCPBENCH_CACHE=str(tmp_path / "cache"))

    def gcpbench(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "gcpbench", *args], capture_output=True, text=True, cwd=work, env=env,
                              timeout=600)

    where = subprocess.run([sys.executable, "-c", "import gcpbench; print(gcpbench.__file__)"], capture_output=True,
                           text=True, cwd=work, env=env)
    assert Path(where.stdout.strip()).is_relative_to(site)
    zoo = gcpbench("zoo", "-m", "resnet18_gcp")
    assert zoo.returncode == 0 and "resnet18_gcp" in zoo.stdout
    tree = work / "c" / "gaussian_noise" / "1" / "n01440764"
    tree.mkdir(parents=True)
    check = gcpbench("data", "check", "imagenet-c", str(work / "c"))  # the full manifest: 14 corruptions missing
    assert check.returncode == 2 and "data_manifests/imagenet_c.json" in check.stderr
    assert gcpbench("data", "check", "imagenet-c", str(work / "c"), "--structure-only").returncode == 0

    from gcpbench.data.synthetic_coco import make_detection_set

    coco = make_detection_set(tmp_path / "coco", num_train=2, num_val=1, image_size=64)
    detect = gcpbench("detect", "--framework", "faster_rcnn", "--backbone", "resnet18_gap", "--ckpt", "none",
                      "--data", str(coco), "--max-iters", "2", "--device", "cpu", "--work-dir", "det", "--quiet")
    assert detect.returncode == 0, detect.stderr[-3000:]
    config = json.loads((work / "det" / "config.json").read_text())
    assert Path(config["mmdet_config"]).is_relative_to(site / "gcpbench" / "configs" / "detection")
    result = json.loads((work / "det" / "eval" / "detection_faster_rcnn.json").read_text())
    assert set(result["bbox"]) == {"AP", "AP50", "AP75", "APs", "APm", "APl"}
