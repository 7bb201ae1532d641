"""Run folders on shared storage (issue 24, items 7 and 8): every file follows the umask,
nothing is left beside an output (locks, temporary files), temporary files are never read as
data, and no output lands in a system folder or outside the runs folder."""
from __future__ import annotations

import fcntl
import os
import stat
import subprocess
from pathlib import Path

import pytest

from gcpbench.errors import GcpbenchError

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny_set(tmp_path_factory):
    from gcpbench.data.synthetic import make_classification_set

    return make_classification_set(tmp_path_factory.mktemp("data") / "set", num_classes=2, image_size=32,
                                   train_per_class=4, val_per_class=2, seed=0)


@pytest.fixture
def umask_002():
    """The umask of a group that shares its run folders."""
    previous = os.umask(0o002)
    yield
    os.umask(previous)


def wrong_modes(root: Path) -> dict[str, str]:
    """Files that are not 0664 and folders that are not 0775 below ``root`` (umask 002)."""
    wrong = {}
    for path in root.rglob("*"):
        mode = stat.S_IMODE(path.lstat().st_mode)
        if mode != (0o775 if path.is_dir() else 0o664):
            wrong[str(path.relative_to(root))] = oct(mode)
    return wrong


# ------------------------------------------------------------------ 7. files follow the umask

def test_every_file_a_command_writes_follows_the_umask(tmp_path, umask_002, run_cli):
    from gcpbench.data.synthetic import make_classification_set

    data = make_classification_set(tmp_path / "data", num_classes=2, image_size=32, train_per_class=4,
                                   val_per_class=2, seed=0)
    run, best = tmp_path / "run", tmp_path / "run" / "checkpoints" / "best.pt"
    steps = [
        ("train", "resnet18", "--data", str(data), "--out", str(run), "--epochs", "1", "--batch-size", "4",
         "--workers", "0", "--landscape-every", "1", "--landscape-num-eta", "2", "--quiet"),
        ("eval-imagenet", "--ckpt", str(best), "--data", str(data), "--out", str(tmp_path / "top1.json"),
         "--workers", "0", "--quiet"),
        ("eval-imagenet", "--ckpt", str(best), "--data", str(data), "--workers", "0", "--quiet"),
        ("convert", str(best), "--model", "resnet18_gap", "--out", str(tmp_path / "converted.pt")),
        ("landscape", str(run), "--out", str(tmp_path / "landscape.png"), "--quiet"),
        ("report", str(run), "--out", str(tmp_path / "report"), "--quiet"),
    ]
    for args in steps:
        code, _, err = run_cli(*args)
        assert code == 0, (args[0], err)
    assert {"config.json", "metrics.jsonl", "metrics.csv", "landscape.csv", "checkpoints", "plots", "eval",
            ".lock-train"} <= {p.name for p in run.iterdir()}
    assert (tmp_path / "report" / "report.md").is_file() and (tmp_path / "converted.pt").is_file()
    assert wrong_modes(tmp_path) == {}


def test_atomic_writes_and_the_synthetic_set_follow_any_umask(tmp_path, tiny_set):
    from gcpbench.data.synthetic import make_classification_set
    from gcpbench.io import atomic_write_text

    previous = os.umask(0o027)
    try:
        atomic_write_text(tmp_path / "a.txt", "x")
        made = make_classification_set(tmp_path / "set", num_classes=2, image_size=16, train_per_class=1,
                                       val_per_class=1, seed=0)
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "a.txt").stat().st_mode) == 0o640
    assert stat.S_IMODE(made.stat().st_mode) == 0o750


# ------------------------------------------------------------------ 8. leftovers

def test_a_plain_output_files_lock_is_removed_and_a_racing_writer_reopens(tmp_path, monkeypatch):
    from gcpbench import runlock

    with runlock.writer_lock(tmp_path, "x.json", remove=True) as lock:
        assert lock.is_file()
        with pytest.raises(GcpbenchError, match="is being written by pid"):
            with runlock.writer_lock(tmp_path, "x.json", remove=True):
                pass
    assert list(tmp_path.iterdir()) == []
    # a writer that opened the file just before its holder removed it must not hold a lock on
    # the removed file (a third writer would then lock a new one): it opens the new file
    real_flock, removed = fcntl.flock, []

    def flock_after_removal(fd, operation):
        if not removed:
            removed.append(True)
            os.unlink(runlock.lock_path(tmp_path, "x.json"))
        return real_flock(fd, operation)

    monkeypatch.setattr(runlock.fcntl, "flock", flock_after_removal)
    with runlock.writer_lock(tmp_path, "x.json", remove=True) as lock:
        held = os.stat(lock)
        assert lock.is_file() and removed
    assert held is not None and not lock.exists()


def test_a_killed_generators_temporary_files_are_no_data_and_are_removed(tmp_path, tiny_set):
    from gcpbench.robustness.make_c import make_c
    from gcpbench.robustness.trees import files_in

    out = tmp_path / "c"
    make_c(tiny_set / "val", out, corruptions=("brightness",), severities=(1,), workers=0, quiet=True)
    folder = next((out / "brightness" / "1").iterdir())
    images = files_in(folder, {".jpeg"})
    stale = folder / f".{images[0].stem}.4242.tmp.JPEG"  # what a make-c killed mid-save leaves
    stale.write_bytes(b"\xff\xd8 half a JPEG")
    assert files_in(folder, {".jpeg"}) == images  # eval-c never reads it as an (unreadable) image
    make_c(tiny_set / "val", out, corruptions=("brightness",), severities=(1,), workers=0, quiet=True)
    assert not stale.exists() and not list(out.glob(".lock-*"))


def test_image_folders_skip_hidden_temporary_files(tmp_path, tiny_set):
    from gcpbench.data.folders import image_folder

    val = tmp_path / "val"
    import shutil

    shutil.copytree(tiny_set / "val", val)
    first = next(val.iterdir())
    (first / ".img.77.tmp.png").write_bytes(b"not yet an image")
    assert len(image_folder(val)) == len(image_folder(tiny_set / "val"))


@pytest.mark.parametrize("folder", ["/", "/etc", "/usr", "~"])
def test_system_folders_are_refused_as_outputs(folder):
    from gcpbench.paths import require_writable, require_writable_file

    with pytest.raises(GcpbenchError, match=r"is (the file system's root|a system folder|a home folder itself)"):
        require_writable(os.path.expanduser(folder))
    require_writable_file("/tmp/gcpbench-named-file.json")  # a file named by the user: its folder may be /tmp


@pytest.mark.parametrize("name", ["../escape", "a/b", "..", ".hidden"])
def test_a_sweep_name_that_leaves_the_runs_folder_is_refused(name):
    from gcpbench.sweep.spec import parse_spec

    with pytest.raises(GcpbenchError, match="must be a plain folder name"):
        parse_spec({"name": name, "models": ["resnet18"]}, "default")


def _prepare(out: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "-c", 'source scripts/demo_out.sh && prepare_demo_out "$1"', "bash", str(out)],
                          cwd=REPO, capture_output=True, text=True, timeout=60)


def test_the_demo_deletes_only_a_folder_it_made(tmp_path):
    runs = tmp_path / "runs"  # DEMO_OUT=runs: someone's runs
    (runs / "paper_run").mkdir(parents=True)
    (runs / "paper_run" / "last.pt").write_text("weeks of training")
    done = _prepare(runs)
    assert done.returncode == 2 and "holds files the demo did not make" in done.stderr
    assert (runs / "paper_run" / "last.pt").read_text() == "weeks of training"
    demo = tmp_path / "demo"
    assert _prepare(demo).returncode == 0 and (demo / ".gcpbench-demo").is_file()
    (demo / "report").mkdir()
    (demo / "mine.txt").write_text("added by the user")
    assert _prepare(demo).returncode == 0
    assert not (demo / "report").exists() and (demo / "mine.txt").is_file()


def test_the_demo_lists_every_entry_it_writes():
    import re

    script = (REPO / "scripts" / "demo.sh").read_text()
    entries = set(re.findall(r"\$OUT/([A-Za-z0-9_.-]+)", script))
    entries = {e for e in entries if not e.endswith("_")} | {"resnet18_gap", "resnet18_gcp"}
    listed = re.search(r"DEMO_ENTRIES=\(([^)]*)\)", (REPO / "scripts" / "demo_out.sh").read_text()).group(1).split()
    assert entries <= set(listed), entries - set(listed)
