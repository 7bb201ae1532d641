"""The fault suite: every command against bad input, run as a user runs it (`python -m gcpbench`).

Each row of ``FAULTS`` is one fault. For every row the real CLI runs in a subprocess inside a
fresh sandbox folder, and the suite asserts:

* the exit code (2 for an input error, 0 where the command goes on with a warning);
* stderr: exactly one ``error: ...`` line matching ``error`` (exit 2), and no other line except
  ``warning: ...`` lines (problems that did not stop the command; ``warning`` must match one);
* no ``Traceback`` on stdout or stderr;
* every file that existed before the command (the sandbox and the shared assets) is
  byte-identical afterwards (``may_change`` lists globs a fault is meant to rewrite).

Adding a fault: append a :class:`Fault`. ``args`` is the command line with ``{placeholders}``:
``{ckpt}`` (a tiny trained ResNet-18 GAP, 3 classes), ``{data}`` (ImageFolder root with train/
and val/, 3 classes x 4 images, 32 px), ``{c}`` (ImageNet-C tree: gaussian_noise, brightness,
severities 1-2), ``{coco}`` (the synthetic COCO-format set), ``{run}`` (a finished one-epoch
training run on ``{data}``; copy it before changing it, e.g. with ``training_run``), ``{tmp}``
(the sandbox) and whatever ``setup(sandbox)`` adds to ``sandbox.vars``. ``readonly`` names placeholders of folders
mounted read-only (``unshare -rm`` + ``mount --bind -o ro``: nothing stays mounted after a
failure; chmod does not stop root). ``run`` replaces the plain ``subprocess.run`` (e.g. to send
SIGINT). All selected rows run two at a time in a thread pool; each test checks its own row.
"""
from __future__ import annotations

import concurrent.futures
import hashlib
import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pytest

from malicious_pickle import write_raw, write_zip
from robustness_tiny import CLASSES, tiny_images, train_tiny_checkpoint, write_tree

REPO = Path(__file__).resolve().parents[1]
TIMEOUT_S = 300


@dataclass
class Sandbox:
    """One row's folder and the placeholders of its command line."""

    tmp: Path
    vars: dict[str, str] = field(default_factory=dict)

    def path(self, key: str) -> Path:
        return Path(self.vars[key])


@dataclass(frozen=True)
class Fault:
    """One bad input and what the user must see."""

    id: str
    args: str
    error: str | None = None  # regex the single `error:` line must match (exit code 2)
    code: int = 2
    warning: str | None = None  # regex one `warning:` line must match
    setup: Callable[[Sandbox], None] | None = None
    readonly: tuple[str, ...] = ()
    run: Callable[[list[str], Sandbox, dict[str, str]], subprocess.CompletedProcess] | None = None
    check: Callable[[Sandbox], None] | None = None  # further assertions after the command
    may_change: tuple[str, ...] = ()  # globs (relative to the sandbox) the fault may rewrite
    env: tuple[tuple[str, str], ...] = ()  # extra environment variables (values take placeholders)
    only_warnings: bool = False  # stderr holds `warning:` lines or nothing (no stray library output)


@dataclass
class Outcome:
    code: int
    stdout: str
    stderr: str
    changed: list[str]
    sandbox: Sandbox


# ----------------------------------------------------------------------------- fault makers

def write(key: str, relative: str, content: bytes | str) -> Callable[[Sandbox], None]:
    """Setup: write ``content`` to ``{tmp}/relative`` and name it ``{key}``."""

    def setup(sb: Sandbox) -> None:
        path = sb.tmp / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content.encode() if isinstance(content, str) else content)
        sb.vars[key] = str(path)

    return setup


def truncated_checkpoint(key: str = "bad") -> Callable[[Sandbox], None]:
    """Setup: the first half of the tiny checkpoint (a download cut short)."""

    def setup(sb: Sandbox) -> None:
        data = Path(sb.vars["ckpt"]).read_bytes()
        write(key, "cut.pt", data[: len(data) // 2])(sb)

    return setup


def unknown_model_checkpoint(sb: Sandbox) -> None:
    """Setup: a valid torch file whose tensors fit no zoo model and that names none."""
    import torch

    torch.save({"state_dict": {"encoder.weight": torch.zeros(4, 4)}}, sb.tmp / "other.pt")
    sb.vars["bad"] = str(sb.tmp / "other.pt")


MARKER = "CODE_FROM_CHECKPOINT_RAN"


def malicious(key: str = "bad", name: str = "evil.pt", raw: bool = False) -> Callable[[Sandbox], None]:
    """Setup: ``{key}``, a checkpoint whose pickle runs code creating ``{tmp}/MARKER`` if executed."""

    def setup(sb: Sandbox) -> None:
        path = sb.tmp / name
        path.parent.mkdir(parents=True, exist_ok=True)
        (write_raw if raw else write_zip)(path, sb.tmp / MARKER)
        sb.vars[key] = str(path)

    return setup


def nothing_ran(sb: Sandbox) -> None:
    """Check: the checkpoint's code never ran."""
    assert not (sb.tmp / MARKER).exists(), "code from the checkpoint ran"


def malicious_last_checkpoint(sb: Sandbox) -> None:
    """Setup: the training run copy with ``checkpoints/last.pt`` replaced by the malicious file."""
    training_run(sb)
    last = sb.path("resume") / "checkpoints" / "last.pt"
    last.unlink()  # a hard link: never write through it into the shared run
    write_zip(last, sb.tmp / MARKER)


def malicious_detection_resume(sb: Sandbox) -> None:
    """Setup: ``{det}``, a detection work directory whose mmengine ``last_checkpoint`` names the malicious file."""
    malicious("bad", "det/iter_1.pth")(sb)
    (sb.tmp / "det" / "last_checkpoint").write_text(sb.vars["bad"])
    sb.vars["det"] = str(sb.tmp / "det")


def folder(key: str, relative: str) -> Callable[[Sandbox], None]:
    """Setup: an empty folder ``{tmp}/relative`` named ``{key}``."""

    def setup(sb: Sandbox) -> None:
        path = sb.tmp / relative
        path.mkdir(parents=True, exist_ok=True)
        sb.vars[key] = str(path)

    return setup


def training_run(sb: Sandbox) -> None:
    """Setup: ``{resume}``, a copy (hard links) of the finished one-epoch training run."""
    target = sb.tmp / "oldrun"
    shutil.copytree(sb.vars["run"], target, copy_function=os.link)
    sb.vars["resume"] = str(target)


def truncated_last_checkpoint(sb: Sandbox) -> None:
    """Setup: the training run copy with ``checkpoints/last.pt`` cut in half (a crash of an old version)."""
    training_run(sb)
    last = sb.path("resume") / "checkpoints" / "last.pt"
    data = last.read_bytes()
    last.unlink()  # a hard link: never write through it into the shared run
    last.write_bytes(data[: len(data) // 2])


def checkpoint_in_run(sb: Sandbox) -> None:
    """Setup: the tiny checkpoint as ``{tmp}/run/checkpoints/best.pt`` (a hard link), run dir ``{run}``."""
    target = sb.tmp / "run" / "checkpoints" / "best.pt"
    target.parent.mkdir(parents=True)
    os.link(sb.vars["ckpt"], target)
    (sb.tmp / "run" / "config.json").write_text(json.dumps({"command": "train", "model": "resnet18_gap"}))
    sb.vars.update(run=str(sb.tmp / "run"), run_ckpt=str(target))


def copy_tree(key: str, source: str) -> Callable[[Sandbox], None]:
    """Setup: a copy of the asset ``{source}`` in the sandbox, named ``{key}``."""

    def setup(sb: Sandbox) -> None:
        target = sb.tmp / key
        shutil.copytree(sb.vars[source], target)
        sb.vars[key] = str(target)

    return setup


def edit_coco(change: Callable[[str], str], split: str = "val") -> Callable[[Sandbox], None]:
    """Setup: a copy of the COCO-format set (``{bad_coco}``) with one annotation file rewritten."""

    def setup(sb: Sandbox) -> None:
        copy_tree("bad_coco", "coco")(sb)
        path = sb.path("bad_coco") / "annotations" / f"instances_{split}2017.json"
        path.write_text(change(path.read_text()))

    return setup


def json_edit(change: Callable[[dict], None]) -> Callable[[str], str]:
    def edit(text: str) -> str:
        data = json.loads(text)
        change(data)
        return json.dumps(data)

    return edit


def remove_first_val_image(sb: Sandbox) -> None:
    copy_tree("bad_coco", "coco")(sb)
    first = sorted((sb.path("bad_coco") / "val2017").iterdir())[0]
    first.unlink()
    sb.vars["missing_image"] = first.name


def corrupt_image(split: str) -> Callable[[Sandbox], None]:
    """Setup: a copy of the ImageFolder data (``{bad_data}``) with one corrupt JPEG in ``split``."""

    def setup(sb: Sandbox) -> None:
        copy_tree("bad_data", "data")(sb)
        bad = sb.path("bad_data") / split / CLASSES[1] / "broken.JPEG"
        bad.write_bytes(b"\xff\xd8\xff\xe0 this JPEG was cut short")
        sb.vars["bad_image"] = str(bad)

    return setup


def stray_folders(*extra: str, generated: bool = False) -> Callable[[Sandbox], None]:
    """Setup: a copy of the ImageNet-C tree (``{bad_c}``) with ``extra`` folders (copies of
    ``brightness/1``); ``generated`` marks it as made by ``data make-c`` (no manifest check)."""

    def setup(sb: Sandbox) -> None:
        copy_tree("bad_c", "c")(sb)
        root = sb.path("bad_c")
        for name in extra:
            shutil.copytree(root / "brightness" / "1", root / name)
        if generated:
            (root / "gcpbench_generated.json").write_text(json.dumps({"dataset": "synthetic"}))

    return setup


def eval_imagenet_json_lists(sb: Sandbox) -> None:
    """The result file counts and lists the skipped image; the readable ones were evaluated."""
    result = json.loads((sb.tmp / "out" / "eval" / "imagenet.json").read_text())
    assert result["unreadable_count"] == 1 and result["unreadable"] == [sb.vars["bad_image"]]
    assert result["images"] == len(CLASSES) * 4


def train_lists_unreadable(sb: Sandbox) -> None:
    listed = (sb.tmp / "out" / "unreadable_images.txt").read_text().split()
    assert listed == [sb.vars["bad_image"]]
    assert (sb.tmp / "out" / "checkpoints" / "last.pt").is_file()


def foreign_run(config: dict) -> Callable[[Sandbox], None]:
    """Setup: ``{owned}``, a run directory that already belongs to someone else (``config``)."""

    def setup(sb: Sandbox) -> None:
        path = sb.tmp / "owned"
        path.mkdir()
        (path / "config.json").write_text(json.dumps(config))
        sb.vars["owned"] = str(path)

    return setup


GCP_TRAINING = foreign_run({"command": "train", "run_id": "0123", "model": "resnet18_gcp"})
OTHER_CHECKPOINT = foreign_run({"command": "eval-c", "model": "resnet18_gap", "checkpoint_sha256": "0" * 64})


def nonfinite_checkpoint(sb: Sandbox) -> None:
    """Setup: ``{bad}``, the tiny checkpoint with one BatchNorm variance blown up to infinity."""
    from gcpbench.models.weights import read_checkpoint

    import torch

    checkpoint = read_checkpoint(sb.vars["ckpt"])
    checkpoint["state_dict"]["bn1.running_var"] = torch.full_like(checkpoint["state_dict"]["bn1.running_var"],
                                                                  float("inf"))
    torch.save(checkpoint, sb.tmp / "inf.pt")
    sb.vars["bad"] = str(sb.tmp / "inf.pt")


def torn_progress(sb: Sandbox) -> None:
    """Setup: ``{out}``, an eval-c run whose progress log ends in a torn line (a crash mid-write)."""
    from gcpbench.robustness.imagenet_c import CRequest, evaluate_c

    out = sb.tmp / "out"
    evaluate_c(CRequest(checkpoint=Path(sb.vars["ckpt"]), data=Path(sb.vars["c"]),
                        corruptions=("gaussian_noise", "brightness"), severities=(1, 2), clean_error=0.2,
                        batch_size=8, workers=0, device="cpu", quiet=True), out)
    progress = out / "eval" / "imagenet_c_progress.jsonl"
    progress.write_bytes(progress.read_bytes()[:-30])
    sb.vars["out"] = str(out)


def torn_metrics(sb: Sandbox) -> None:
    """Setup: the training run copy with its only metrics.jsonl record torn (metrics.csv intact)."""
    training_run(sb)
    metrics = sb.path("resume") / "metrics.jsonl"
    data = metrics.read_bytes()
    metrics.unlink()  # a hard link: never write through it into the shared run
    metrics.write_bytes(data[:-20])


def while_locked(key: str, result: str) -> Callable[[list[str], Sandbox, dict[str, str]], subprocess.CompletedProcess]:
    """Run: the command while this test process writes result ``result`` of ``{key}`` (another writer)."""

    def run(argv: list[str], sb: Sandbox, env: dict[str, str]) -> subprocess.CompletedProcess:
        from gcpbench.runlock import writer_lock

        with writer_lock(sb.path(key), result, command="gcpbench (another writer)"):
            return subprocess.run(argv, cwd=sb.tmp, env=env, capture_output=True, text=True, timeout=TIMEOUT_S)

    return run


def nothing_written(key: str) -> Callable[[Sandbox], None]:
    """Check: the refused command wrote nothing into ``{key}`` (only the other writer's lock file)."""

    def check(sb: Sandbox) -> None:
        assert sorted(p.name for p in sb.path(key).iterdir()) == [".lock-train"]

    return check


def interrupt_once(path: str) -> Callable[[list[str], Sandbox, dict[str, str]], subprocess.CompletedProcess]:
    """Run: send SIGINT (Ctrl-C) once ``{tmp}/path`` exists, i.e. while the command works."""

    def run(argv: list[str], sb: Sandbox, env: dict[str, str]) -> subprocess.CompletedProcess:
        import signal
        import time

        process = subprocess.Popen(argv, cwd=sb.tmp, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + TIMEOUT_S
        while not (sb.tmp / path).exists() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=TIMEOUT_S)
        return subprocess.CompletedProcess(argv, process.returncode, out, err)

    return run


def slurm_sweep(queue: str, started: bool = False) -> Callable[[Sandbox], None]:
    """Setup: stand-in Slurm commands in ``{tmp}/bin`` (tests/slurm_cluster.py) whose ``squeue``
    answers ``queue``, a grid ``{spec}`` of one run and the sweep folder ``{sweep}``; ``started``:
    Slurm job 4242 started the run on this machine and its process is gone (requeued)."""

    def setup(sb: Sandbox) -> None:
        from gcpbench.sweep import SweepDir, parse_spec
        from gcpbench.sweep.state import record_submission
        from slurm_cluster import dead_pid, fake_scheduler

        fake_scheduler(sb.tmp / "bin")
        (sb.tmp / "bin" / "queue").write_text(queue)
        (sb.tmp / "grid.toml").write_text('name = "s"\nmodels = ["resnet18"]\n')
        sweep = SweepDir(sb.tmp / "sweep")
        sb.vars.update(spec=str(sb.tmp / "grid.toml"), sweep=str(sweep.path))
        if started:
            run = sweep.run(sweep.write(parse_spec({"models": ["resnet18"]}, "s")).runs[0].name)
            record_submission(run, "4242")
            (run.path / "job.json").write_text(json.dumps({"state": "running", "attempts": 1, "pid": dead_pid(),
                                                           "host": socket.gethostname(), "job_id": "4242",
                                                           "scheduler": "slurm"}))

    return setup


def linked(source: str, link: str, target: str | None) -> Callable[[Sandbox], None]:
    """Setup: a copy of the asset tree ``{source}`` (``{bad_<source>}``) with the symbolic link
    ``link`` -> ``target`` inside it (``target`` None: ``link`` becomes a link to ``..``); an
    existing folder at ``link`` is replaced."""

    def setup(sb: Sandbox) -> None:
        copy_tree(f"bad_{source}", source)(sb)
        root = sb.path(f"bad_{source}")
        path = root / link
        if path.is_dir():
            shutil.rmtree(path)
        path.symlink_to(".." if target is None else root / target)

    return setup


def nothing_submitted(sb: Sandbox) -> None:
    """Check: the stand-in sbatch was not called."""
    assert not (sb.tmp / "bin" / "submitted.sh").exists()


SLURM_PATH = (("PATH", "{tmp}/bin:" + os.environ.get("PATH", "")),)


def removed(source: str, relative: str) -> Callable[[Sandbox], None]:
    """Setup: a copy of the asset tree ``{source}`` (``{bad_<source>}``) without the file ``relative``."""

    def setup(sb: Sandbox) -> None:
        copy_tree(f"bad_{source}", source)(sb)
        (sb.path(f"bad_{source}") / relative).unlink()

    return setup


def c_eval(out: str, corruptions: tuple[str, ...] = ("gaussian_noise", "brightness"), data: str = "c",
           **options) -> Callable[[Sandbox], None]:
    """Setup: an eval-c run of the tiny checkpoint on ``{data}`` in ``{tmp}/out`` (``{out}``)."""

    def setup(sb: Sandbox) -> None:
        from gcpbench.robustness.imagenet_c import CRequest, evaluate_c

        evaluate_c(CRequest(checkpoint=Path(sb.vars["ckpt"]), data=Path(sb.vars[data]), corruptions=corruptions,
                            severities=(1, 2), clean_error=0.2, batch_size=8, workers=0, device="cpu", quiet=True,
                            **options), sb.tmp / out)
        sb.vars[out] = str(sb.tmp / out)

    return setup


def regenerated_c_tree(sb: Sandbox) -> None:
    """Setup: eval-c of a copy of the ImageNet-C tree (``{bad_c}``) into ``{out}``, then the tree
    regenerated at the same path: the same names, other images (as `data make-c` after a delete)."""
    import numpy as np
    from PIL import Image

    copy_tree("bad_c", "c")(sb)
    c_eval("out", data="bad_c")(sb)
    rng = np.random.default_rng(7)
    for path in sorted(sb.path("bad_c").rglob("*.JPEG")):
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(path)


def nothing_resumed(sb: Sandbox) -> None:
    summary = json.loads((sb.path("out") / "eval" / "imagenet_c_summary.json").read_text())
    assert summary["resumed_images"] == 0 and summary["images"] == 2 * 2 * len(CLASSES) * 4


def stale_result(sb: Sandbox) -> None:
    """Setup: ``{stale}``, an eval-c run whose result names the tiny checkpoint with another
    fingerprint (the file was rewritten after the evaluation, as best.pt is by a training)."""
    from gcpbench.identity import Producer, ResultIdentity
    from gcpbench.records import CorruptionResult

    run = sb.tmp / "stale"
    (run / "eval").mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({"command": "eval-c", "model": "resnet18_gap"}))
    identity = ResultIdentity(Producer("resnet18_gap", sb.vars["ckpt"], "ab" * 32), "/data/c")
    result = CorruptionResult(model="resnet18_gap", dataset="imagenet-c", mCE=74.09, relative_mCE=None,
                              source_kind="imagenet-val", identity=identity)
    (run / "eval" / "imagenet_c_summary.json").write_text(json.dumps(result.to_json()))
    sb.vars["stale"] = str(run)


def marked_in_report(*marks: str) -> Callable[[Sandbox], None]:
    def check(sb: Sandbox) -> None:
        text = (sb.tmp / "report" / "robustness.md").read_text()
        assert all(mark in text for mark in marks), text

    return check


def session_processes(session: int) -> list[str]:
    """``pid name`` of every live process in session ``session`` (zombies left out)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        name, rest = stat[stat.index("(") + 1: stat.rindex(")")], stat[stat.rindex(")") + 2:].split()
        if rest[0] != "Z" and int(rest[3]) == session:
            found.append(f"{entry.name} {name}")
    return found


def terminate_when_paused(argv: list[str], sb: Sandbox, env: dict[str, str]) -> subprocess.CompletedProcess:
    """Run: start the command in its own session, send SIGTERM once it is paused mid-work (the
    hook of ``PAUSE``), then record in ``{leftover}`` every process of that session still alive
    10 s after it exited (workers, forkservers, children: none may outlive it)."""
    import signal
    import time

    marker = Path(env[PAUSE_MARKER])
    process = subprocess.Popen(argv, cwd=sb.tmp, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True)
    deadline = time.monotonic() + TIMEOUT_S
    while not marker.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    sb.vars["paused"] = str(marker.exists())
    process.send_signal(signal.SIGTERM)
    try:
        out, err = process.communicate(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:  # something holds its pipes (the bug this guards against)
        left = session_processes(process.pid)
        os.killpg(process.pid, signal.SIGKILL)
        out, err = process.communicate(timeout=TIMEOUT_S)
        sb.vars["leftover"] = f"still running {STOP_TIMEOUT_S} s after SIGTERM: " + ", ".join(left)
        return subprocess.CompletedProcess(argv, process.returncode, out, err)
    left = session_processes(process.pid)
    until = time.monotonic() + 10
    while left and time.monotonic() < until:
        time.sleep(0.2)
        left = session_processes(process.pid)
    for entry in left:  # never leave them running after the test
        os.kill(int(entry.split()[0]), signal.SIGKILL)
    sb.vars["leftover"] = ", ".join(left)
    return subprocess.CompletedProcess(argv, process.returncode, out, err)


PAUSE, PAUSE_MARKER = "GCPBENCH_TEST_PAUSE_IN", "GCPBENCH_TEST_PAUSE_MARKER"
STOP_TIMEOUT_S = 60  # a stopped command must be gone well before this
KEPT_LINE = r"finished results are kept; rerun the same command to resume$"


def paused_in(function: str) -> tuple[tuple[str, str], ...]:
    """Environment: pause the command at ``MODULE:FUNCTION[:N]`` (``tests/hang_hook``)."""
    return ((PAUSE, function), (PAUSE_MARKER, "{tmp}/paused"),
            ("PYTHONPATH", f"{REPO / 'tests' / 'hang_hook'}{os.pathsep}{REPO}"))


def stopped_cleanly(*gone: str) -> Callable[[Sandbox], None]:
    """Check: the command was stopped mid-work; no process of it is left, no temporary file
    anywhere in the sandbox, and none of ``gone`` (globs: e.g. a lock beside a plain output file)."""

    def check(sb: Sandbox) -> None:
        assert sb.vars["paused"] == "True", "the command never reached the point where it pauses"
        assert sb.vars["leftover"] == "", f"processes outlived the command: {sb.vars['leftover']}"
        temporaries = [str(p) for p in sb.tmp.rglob("*") if ".tmp" in p.name]
        assert temporaries == [], temporaries
        for pattern in gone:
            assert list(sb.tmp.glob(pattern)) == [], pattern

    return check


def p_tree(sb: Sandbox) -> None:
    """Setup: ``{p}``, a one-perturbation ImageNet-P tree made from the tiny val set."""
    from gcpbench.robustness.make_p import make_p

    make_p(Path(sb.vars["data"]) / "val", sb.tmp / "p", perturbations=("translate",), workers=0, quiet=True)
    sb.vars["p"] = str(sb.tmp / "p")


def cifar_tree(sb: Sandbox) -> None:
    """Setup: ``{cifar}``, a CIFAR-10-C tree holding fog only, and ``{cifar_ckpt}``, a 10-class model."""
    import numpy as np
    import torch

    from gcpbench.models import build, save_checkpoint
    from gcpbench.robustness.benchmarks import CIFAR10_CLASSES

    root = sb.tmp / "CIFAR-10-C"
    root.mkdir()
    rng = np.random.default_rng(0)
    np.save(root / "labels.npy", np.tile(np.arange(2), 5).astype(np.uint8))
    np.save(root / "fog.npy", rng.integers(0, 256, (10, 32, 32, 3), dtype=np.uint8))
    torch.manual_seed(0)
    save_checkpoint(sb.tmp / "cifar.pt", build("resnet18_gap", num_classes=10), "resnet18_gap",
                    classes=list(CIFAR10_CLASSES))
    sb.vars.update(cifar=str(root), cifar_ckpt=str(sb.tmp / "cifar.pt"))


def sweep_spec(sb: Sandbox) -> None:
    """Setup: ``{spec}``, a one-run sweep of a three-epoch tiny training."""
    spec = sb.tmp / "grid.toml"
    spec.write_text(f'models = ["resnet18"]\ndata = "{sb.vars["data"]}"\n[train]\nbatch_size = 4\nworkers = 0\n'
                    'epochs = 3\nimage_size = 32\ndevice = "cpu"\n')
    sb.vars["spec"] = str(spec)


def sigterm(command: str, args: str, pause: str, line: str = KEPT_LINE, setup: Callable[[Sandbox], None] | None = None,
            gone: tuple[str, ...] = ()) -> Fault:
    """A row: ``args`` stopped by SIGTERM while paused in ``pause``: exit 143, the one ``terminated``
    line (``line``), nothing left running, no temporary file."""
    return Fault(f"sigterm/{command}", args, r"^terminated \(SIGTERM\): " + line, code=143, setup=setup,
                 env=paused_in(pause), run=terminate_when_paused, check=stopped_cleanly(*gone))


def stale_temp_in_c(sb: Sandbox) -> None:
    """Setup: a copy of the ImageNet-C tree (``{bad_c}``) holding the half-written JPEG that a
    killed ``make-c`` leaves (``.<name>.<pid>.tmp.JPEG``)."""
    copy_tree("bad_c", "c")(sb)
    folder = sb.path("bad_c") / "brightness" / "1" / CLASSES[0]
    (folder / ".img_000.4242.tmp.JPEG").write_bytes(b"\xff\xd8\xff\xe0 half written")


def no_unreadable_image(sb: Sandbox) -> None:
    summary = json.loads((sb.tmp / "out" / "eval" / "imagenet_c_summary.json").read_text())
    assert summary["unreadable_count"] == 0 and summary["images"] == len(CLASSES) * 4 * 4


def escaping_spec(sb: Sandbox) -> None:
    """Setup: ``{spec}``, a sweep spec whose name climbs out of the runs folder."""
    spec = sb.tmp / "grid.toml"
    spec.write_text('name = "../../escape"\nmodels = ["resnet18"]\n')
    sb.vars["spec"] = str(spec)


def detector_resume(content: bytes | Callable[[Sandbox], bytes] | None) -> Callable[[Sandbox], None]:
    """Setup: ``{tmp}/det/last_checkpoint`` naming ``epoch_1.pth``, which holds ``content``
    (None: the file is missing; a function of the sandbox: bytes made from the assets)."""

    def setup(sb: Sandbox) -> None:
        work = sb.tmp / "det"
        work.mkdir()
        (work / "last_checkpoint").write_text(str(work / "epoch_1.pth"))
        if content is not None:
            (work / "epoch_1.pth").write_bytes(content(sb) if callable(content) else content)

    return setup


def half_checkpoint(sb: Sandbox) -> bytes:
    data = Path(sb.vars["ckpt"]).read_bytes()
    return data[: len(data) // 2]


def weights_only_checkpoint(sb: Sandbox) -> bytes:
    """A torch file with weights but none of the state mmengine resumes (meta, message hub)."""
    import io

    import torch

    buffer = io.BytesIO()
    torch.save({"state_dict": {"backbone.conv1.weight": torch.zeros(1)}}, buffer)
    return buffer.getvalue()


def summary_in_run(text: str) -> Callable[[Sandbox], None]:
    """Setup: the training run copy (``{resume}``) with ``eval/imagenet_c_summary.json`` holding ``text``."""

    def setup(sb: Sandbox) -> None:
        training_run(sb)
        (sb.path("resume") / "eval").mkdir(exist_ok=True)
        (sb.path("resume") / "eval" / "imagenet_c_summary.json").write_text(text)

    return setup


def empty_sequence(sb: Sandbox) -> None:
    """Setup: the ImageNet-P tree (``{p}``) with one sequence cut to zero bytes."""
    p_tree(sb)
    first = sorted((sb.path("p") / "translate").rglob("*.mp4"))[0]
    first.write_bytes(b"")


# ----------------------------------------------------------------------------- the table

NOT_A_CKPT = r"cannot read checkpoint '.*': it is not a PyTorch checkpoint"
RO = r"cannot write the .*does not accept new files \(read-only file system\)"
EVAL_C = "eval-c --ckpt {ckpt} --corruptions gaussian_noise,brightness --severities 1,2 --clean-error 0.2 --workers 0 --batch-size 8 --device cpu --quiet"
TRAIN = "train resnet18 --epochs 1 --batch-size 4 --workers 0 --image-size 32 --device cpu --quiet"
DETECT = "detect --framework faster_rcnn --backbone resnet18_gap --device cpu --max-iters 1 --quiet"
HELLO = write("bad", "hello.pt", "hello world")
PYTHON_OBJECTS = r"cannot read checkpoint '.*': it holds Python objects that gcpbench will not execute"

FINETUNE = ("finetune --dataset {dataset} --data {root} --ckpt {{ckpt}} --out {{tmp}}/out --epochs 1 --batch-size 4 "
            "--image-size 32 --workers 0 --quiet")


def fgvc_tree(name: str, drop: tuple[str, ...] = (), **options) -> Callable[[Sandbox], None]:
    """Setup: a tiny ``cub`` / ``aircraft`` / ``cars`` tree in its official layout (tests/fgvc_tiny.py)
    named ``{name}``, without the files ``drop`` lists."""
    import fgvc_tiny

    def setup(sb: Sandbox) -> None:
        make = {"cub": fgvc_tiny.make_cub, "aircraft": fgvc_tiny.make_aircraft, "cars": fgvc_tiny.make_cars}[name]
        root = make(sb.tmp / "fgvc", **options)
        for relative in drop:
            (root / relative).unlink()
        sb.vars[name] = str(root)

    return setup

LINK_CYCLE = r"links back to '.*' \(a link cycle\): its images would be counted again and again; remove the link"
REACHED_TWICE = r"are the same (file|folder) \(reached twice through a link\).*; remove the link"

RESUME_TRAIN = r"continue with `gcpbench train --resume .*out` \(it resumes at epoch 2\)$"

FAULTS: list[Fault] = [
    # 9. garbage checkpoints: one line, never torch's weights_only advice, no option the command lacks
    Fault("ckpt-text/eval-imagenet", "eval-imagenet --ckpt {bad} --data {data} --out {tmp}/out --quiet",
          NOT_A_CKPT + r" \(it holds text\)", setup=write("bad", "notes.pt", "my notes on the run\nsecond line\n")),
    Fault("ckpt-hello/eval-imagenet", "eval-imagenet --ckpt {bad} --data {data} --out {tmp}/out --quiet",
          NOT_A_CKPT, setup=HELLO),
    Fault("ckpt-random/eval-imagenet", "eval-imagenet --ckpt {bad} --data {data} --out {tmp}/out --quiet",
          NOT_A_CKPT + r";", setup=write("bad", "random.pt", bytes(range(7, 256)) * 40)),
    Fault("ckpt-truncated/eval-imagenet", "eval-imagenet --ckpt {bad} --data {data} --out {tmp}/out --quiet",
          r"'.*cut.pt': it is a damaged or truncated PyTorch checkpoint", setup=truncated_checkpoint()),
    Fault("ckpt-empty/eval-imagenet", "eval-imagenet --ckpt {bad} --data {data} --out {tmp}/out --quiet",
          r"the file is empty", setup=write("bad", "empty.pt", b"")),
    Fault("ckpt-unknown-model/eval-imagenet", "eval-imagenet --ckpt {bad} --data {data} --out {tmp}/out --quiet",
          r"cannot tell which zoo model .* `gcpbench convert .* --model NAME", setup=unknown_model_checkpoint),
    Fault("ckpt-text/eval-c", EVAL_C.replace("{ckpt}", "{bad}") + " --data {c} --out {tmp}/out",
          NOT_A_CKPT, setup=write("bad", "notes.pt", "notes\n")),
    Fault("ckpt-random/eval-p", "eval-p --ckpt {bad} --data {tmp} --out {tmp}/out --workers 0 --quiet",
          NOT_A_CKPT, setup=write("bad", "random.pt", bytes(range(7, 256)) * 40)),
    Fault("ckpt-truncated/convert", "convert {bad} --model resnet18_gap --out {tmp}/new.pt",
          r"damaged or truncated PyTorch checkpoint", setup=truncated_checkpoint()),
    Fault("ckpt-truncated/train-resume", "train --resume {resume} --quiet",
          r"checkpoints/last.pt': it is a damaged or truncated PyTorch checkpoint", setup=truncated_last_checkpoint),
    Fault("ckpt-hello/detect", DETECT + " --ckpt {bad} --data {coco} --work-dir {tmp}/det", NOT_A_CKPT, setup=HELLO),
    Fault("ckpt-text/detect-weights", DETECT.replace(" --max-iters 1", "") + " --eval-only --weights {bad} --data {coco} "
          "--work-dir {tmp}/det", NOT_A_CKPT + r" \(it holds text\)", setup=write("bad", "det.pth", "not weights\n")),

    # issue 23.1: a checkpoint whose pickle would run code: refused in one line by every command that reads one,
    # and nothing ran (the marker file its code would create is absent)
    *[Fault(f"ckpt-code/{cid}", args, PYTHON_OBJECTS, setup=setup, check=nothing_ran) for cid, args, setup in (
        ("eval-imagenet", "eval-imagenet --ckpt {bad} --data {data} --out {tmp}/out --quiet", malicious()),
        ("eval-imagenet-raw", "eval-imagenet --ckpt {bad} --data {data} --out {tmp}/out --quiet", malicious(raw=True)),
        ("eval-imagenet-weights", "eval-imagenet --model resnet18_gap --weights {bad} --data {data} --out {tmp}/out "
         "--quiet", malicious()),
        ("eval-imagenet-external-weights", "eval-imagenet --model torchvision/resnet18 --weights {bad} --data {data} "
         "--out {tmp}/out --quiet", malicious()),
        ("eval-c", EVAL_C.replace("{ckpt}", "{bad}") + " --data {c} --out {tmp}/out", malicious()),
        ("eval-p", "eval-p --ckpt {bad} --data {tmp} --out {tmp}/out --workers 0 --quiet", malicious()),
        ("convert", "convert {bad} --model resnet18_gap --out {tmp}/new.pt", malicious()),
        ("landscape", "landscape --ckpt {bad} --data {data} --out {tmp}/l.png --device cpu --quiet", malicious()),
        ("train-weights", TRAIN + " --weights {bad} --data {data} --out {tmp}/out", malicious()),
        ("train-resume", "train --resume {resume} --quiet", malicious_last_checkpoint),
        ("detect-ckpt", DETECT + " --ckpt {bad} --data {coco} --work-dir {tmp}/det", malicious()),
        ("detect-weights", DETECT + " --weights {bad} --data {coco} --work-dir {tmp}/det", malicious("bad", "det.pth")),
        ("detect-eval-only", DETECT.replace(" --max-iters 1", "") + " --eval-only --weights {bad} --data {coco} "
         "--work-dir {tmp}/det", malicious("bad", "det.pth")),
        ("detect-resume", DETECT + " --resume --ckpt none --data {coco} --work-dir {det}", malicious_detection_resume),
    )],

    # issue 23.8: an option that contradicts the model name is refused in one line, in every command taking a model
    Fault("contradiction/train-head", "train resnet34_gcp --head gap --epochs 1 --data {data} --out {tmp}/out --quiet",
          r"'resnet34_gcp' means --head gcp, but --head gap was given: drop --head, or name resnet34_gap"),
    Fault("contradiction/train-gcp-dim", "train resnet18_gcp128 --gcp-dim 256 --data {data} --out {tmp}/out --quiet",
          r"'resnet18_gcp128' means --gcp-dim 128, but --gcp-dim 256 was given"),
    Fault("contradiction/train-stride", "train torchvision/resnet18_gcp_s1 --no-last-stage-stride-1 --data {data} "
          "--out {tmp}/out --quiet", r"'torchvision/resnet18_gcp_s1' means --last-stage-stride-1, but "
          r"--no-last-stage-stride-1 was given"),
    Fault("contradiction/eval-imagenet-model", "eval-imagenet --model resnet18_gcp --weights {ckpt} --data {data} "
          "--out {tmp}/out --quiet", r"holds a resnet18_gap, but the model was given as resnet18_gcp"),
    Fault("contradiction/convert", "convert {ckpt} --model resnet18_gcp128 --out {tmp}/new.pt",
          r"holds a resnet18_gap, but the model was given as resnet18_gcp128"),
    Fault("contradiction/landscape-family", "landscape --ckpt {ckpt} --schedule-family mobilenetv2 --data {data} "
          "--out {tmp}/l.png --device cpu --quiet", r"resnet18_gap is a resnet model .* --schedule-family mobilenetv2 "
          r"contradicts it"),
    Fault("contradiction/sweep-spec", "sweep {spec} --out {tmp}/sweep --dry-run",
          r"'resnet34_gcp' means --head gcp, but --head gap was given",
          setup=write("spec", "grid.toml", 'models = ["resnet34_gcp"]\nheads = ["gap"]\n')),
    Fault("contradiction/detect-backbone", DETECT.replace("resnet18_gap", "resnet18_gcp_d") + " --ckpt {ckpt} "
          "--data {coco} --work-dir {tmp}/det", r"hold a 'resnet18_gap' \(GAP head\), but the backbone resnet18_gcp_d "
          r"reads GCP weights: pick --backbone resnet18_gap"),

    # 10. malformed COCO annotations: the file and the first problem, in data check and detect
    Fault("coco-truncated/data-check", "data check coco {bad_coco} --quiet",
          r"instances_val2017.json' is not valid JSON: .* \(the file ends early: truncated\?\)",
          setup=edit_coco(lambda text: text[: len(text) // 2])),
    Fault("coco-no-categories/data-check", "data check coco {bad_coco} --quiet",
          r"instances_val2017.json': no 'categories' list",
          setup=edit_coco(json_edit(lambda d: d.pop("categories")))),
    Fault("coco-bbox-string/data-check", "data check coco {bad_coco} --quiet",
          r"instances_train2017.json': annotations\[0\]: 'bbox' must be 4 numbers .*got a string",
          setup=edit_coco(json_edit(lambda d: d["annotations"][0].update(bbox="10,10,5,5")), split="train")),
    Fault("coco-top-level-list/data-check", "data check coco {bad_coco} --quiet",
          r"the top level must be an object .* got a list", setup=edit_coco(lambda text: "[]")),
    Fault("coco-unknown-category/data-check", "data check coco {bad_coco} --quiet",
          r"annotations\[1\] refers to category_id 99, which is not in 'categories'",
          setup=edit_coco(json_edit(lambda d: d["annotations"][1].update(category_id=99)))),
    Fault("coco-missing-image/data-check", "data check coco {bad_coco} --quiet",
          r"lists image '\d+.jpg', missing from '.*val2017'", setup=remove_first_val_image),
    Fault("coco-bbox-string/detect", DETECT + " --data {bad_coco} --work-dir {tmp}/det",
          r"annotation file '.*instances_val2017.json': annotations\[2\]: 'bbox' must be 4 numbers",
          setup=edit_coco(json_edit(lambda d: d["annotations"][2].update(bbox=[1, 2, 3])))),

    # 11. read-only output folders: checked up front by every writing command, one line
    Fault("readonly/train", TRAIN + " --data {data} --out {ro}/run", RO, setup=folder("ro", "ro"), readonly=("ro",)),
    Fault("readonly/train-resume", "train --resume {resume} --quiet", r"cannot write the run directory: .*read-only",
          setup=training_run, readonly=("resume",)),
    Fault("readonly/train-resume-auto-new", TRAIN + " --data {data} --resume auto --out {ro}/run", RO,
          setup=folder("ro", "ro"), readonly=("ro",)),
    Fault("readonly/train-resume-auto-existing", TRAIN + " --data {data} --resume auto --out {resume}",
          r"cannot write the run directory: .*read-only", setup=training_run, readonly=("resume",)),
    Fault("readonly/eval-imagenet", "eval-imagenet --ckpt {ckpt} --data {data} --out {ro} --quiet", RO,
          setup=folder("ro", "ro"), readonly=("ro",)),
    Fault("readonly/eval-imagenet-json", "eval-imagenet --ckpt {ckpt} --data {data} --out {ro}/top1.json --quiet", RO,
          setup=folder("ro", "ro"), readonly=("ro",)),
    Fault("readonly/eval-imagenet-checkpoint-run", "eval-imagenet --ckpt {run_ckpt} --data {data} --quiet",
          r"cannot write the checkpoint's run directory: .* \(read-only file system\); pass --out DIR",
          setup=checkpoint_in_run, readonly=("run",)),
    Fault("readonly/eval-c", EVAL_C + " --data {c} --out {ro}/run", RO, setup=folder("ro", "ro"), readonly=("ro",)),
    Fault("readonly/eval-p", "eval-p --ckpt {ckpt} --data {tmp} --out {ro} --workers 0 --quiet", RO,
          setup=folder("ro", "ro"), readonly=("ro",)),
    Fault("readonly/report", "report {tmp} --out {ro}/report --quiet", RO, setup=folder("ro", "ro"), readonly=("ro",)),
    Fault("readonly/make-c", "data make-c --src {data}/val --out {ro}/c --corruptions fog --severities 1 --workers 0 --quiet",
          RO, setup=folder("ro", "ro"), readonly=("ro",)),
    Fault("readonly/make-p", "data make-p --src {data}/val --out {ro}/p --perturbations translate --workers 0 --quiet",
          RO, setup=folder("ro", "ro"), readonly=("ro",)),
    Fault("readonly/detect", DETECT + " --data {coco} --work-dir {ro}/det", RO, setup=folder("ro", "ro"), readonly=("ro",)),
    Fault("readonly/landscape", "landscape {tmp} --out {ro}/landscape.png --quiet", RO, setup=folder("ro", "ro"),
          readonly=("ro",)),
    Fault("readonly/convert", "convert {ckpt} --model resnet18_gap --out {ro}/new.pt", RO, setup=folder("ro", "ro"),
          readonly=("ro",)),
    Fault("readonly-cache/eval-imagenet", "eval-imagenet --ckpt {ckpt} --out {tmp}/out --quiet",
          r"cannot write the synthetic-data cache: .*read-only file system\); set GCPBENCH_CACHE to a writable folder",
          setup=folder("ro", "ro"), readonly=("ro",), env=(("GCPBENCH_CACHE", "{ro}/cache"),)),
    Fault("run-dir-is-file/landscape", "landscape {file} --out {tmp}/l.png", r"run directory '.*notes.txt' is a file",
          setup=write("file", "notes.txt", "x\n")),
    Fault("readonly/data-synth", "data synth --out {ro}/synth --classes 2 --train-per-class 1 --val-per-class 1 --quiet",
          RO, setup=folder("ro", "ro"), readonly=("ro",)),

    # 13. silent acceptance: warned (results unchanged) or refused
    Fault("stray-folders/eval-c", EVAL_C + " --data {bad_c} --out {tmp}/out", code=0,
          warning=r"ImageNet-C tree '.*' holds folders that are not part of ImageNet-C and were ignored: "
                  r"stray_folder, brightness/6$", setup=stray_folders("stray_folder/1", "brightness/6", generated=True)),
    Fault("stray-top-folder/eval-c-downloaded", EVAL_C + " --data {bad_c} --out {tmp}/out", code=0,
          warning=r"ImageNet-C tree '.*' holds folders .* ignored: stray_folder$", setup=stray_folders("stray_folder/1")),
    Fault("stray-severity/eval-c-downloaded", EVAL_C + " --data {bad_c} --out {tmp}/out",
          r"ImageNet-C tree .*: extra folder 'brightness/6'", setup=stray_folders("brightness/6")),
    Fault("image-size-0/train", TRAIN.replace("--image-size 32", "--image-size 0") + " --data {data} --out {tmp}/out",
          r"--image-size must be a positive number, got 0"),
    Fault("image-size-0/eval-imagenet", "eval-imagenet --ckpt {ckpt} --data {data} --out {tmp}/out --image-size 0 --quiet",
          r"--image-size must be a positive number, got 0"),
    Fault("batch-size-0/detect", DETECT + " --data {coco} --work-dir {tmp}/det --batch-size 0",
          r"--batch-size must be a positive number, got 0"),
    Fault("gcp-dim-with-gap/train", TRAIN + " --head gap --gcp-dim 128 --data {data} --out {tmp}/out",
          r"--gcp-dim 128 applies to GCP heads only.*add --head gcp or drop --gcp-dim"),

    # 14. a --data file, eval-imagenet's val/-only message, corrupt images skipped and listed (or --strict)
    Fault("data-is-file/eval-imagenet", "eval-imagenet --ckpt {ckpt} --data {file} --out {tmp}/out --quiet",
          r"data root '.*notes.txt' is a file, not a folder: expected .*/val/<class>/<image>$",
          setup=write("file", "notes.txt", "not a dataset\n")),
    Fault("data-is-file/train", TRAIN + " --data {file} --out {tmp}/out", r"data root '.*notes.txt' is a file, not a folder",
          setup=write("file", "notes.txt", "not a dataset\n")),
    Fault("data-is-file/eval-c", EVAL_C + " --data {file} --out {tmp}/out", r"ImageNet-C folder '.*notes.txt' is a file",
          setup=write("file", "notes.txt", "not a dataset\n")),
    Fault("data-missing/eval-imagenet", "eval-imagenet --ckpt {ckpt} --data {tmp}/nowhere --out {tmp}/out --quiet",
          r"data root '.*nowhere' does not exist: expected .*nowhere/val/<class>/<image>$"),
    Fault("corrupt-jpeg/eval-imagenet", "eval-imagenet --ckpt {ckpt} --data {bad_data} --out {tmp}/out --workers 0 --quiet",
          code=0, warning=r"skipped 1 unreadable image \(listed in .*imagenet.json; first: .*broken.JPEG\).*--strict",
          setup=corrupt_image("val"), check=eval_imagenet_json_lists),
    Fault("corrupt-jpeg-strict/eval-imagenet",
          "eval-imagenet --ckpt {ckpt} --data {bad_data} --out {tmp}/out --workers 0 --quiet --strict",
          r"cannot read image '.*broken.JPEG'", setup=corrupt_image("val")),
    Fault("corrupt-jpeg/train", TRAIN + " --data {bad_data} --out {tmp}/out", code=0,
          warning=r"epoch 1: skipped 1 unreadable image \(listed in .*unreadable_images.txt; first: .*broken.JPEG\)",
          setup=corrupt_image("train"), check=train_lists_unreadable),
    Fault("corrupt-jpeg-strict/train", TRAIN + " --data {bad_data} --out {tmp}/out --strict",
          r"cannot read image '.*broken.JPEG'", setup=corrupt_image("train")),
    # option values outside their range: click's own check, one line like every other error
    Fault("batch-size-0/eval-c", EVAL_C.replace("--batch-size 8", "--batch-size 0") + " --data {c} --out {tmp}/out",
          r"Invalid value for '--batch-size': 0 is not in the range x>=1; see `.* eval-c --help`"),
    # 1. results filed under the wrong model or checkpoint
    Fault("wrong-model/eval-c", EVAL_C + " --data {c} --out {owned}",
          r"'.*owned' holds results of resnet18_gcp; ImageNet-C results of resnet18_gap", setup=GCP_TRAINING),
    Fault("wrong-model/eval-imagenet", "eval-imagenet --ckpt {ckpt} --data {data} --out {owned} --quiet",
          r"holds results of resnet18_gcp; ImageNet results of resnet18_gap", setup=GCP_TRAINING),
    Fault("wrong-model/detect", DETECT + " --ckpt {ckpt} --data {coco} --work-dir {owned}",
          r"holds a train run of resnet18_gcp; detection writes its own run directory", setup=GCP_TRAINING),
    Fault("other-checkpoint/eval-c", EVAL_C + " --data {c} --out {owned}",
          r"holds results of checkpoint 000000000000 .* cannot be filed there", setup=OTHER_CHECKPOINT),
    # 2. a second writer of the same result
    Fault("second-writer/eval-c", EVAL_C + " --data {c} --out {out}",
          r"'.*out' is being written by pid \d+ on .*gcpbench \(another writer\).*\(imagenet_c\)",
          setup=folder("out", "out"), run=while_locked("out", "imagenet_c")),
    Fault("second-writer/train", TRAIN + " --data {data} --out {out}",
          r"is being written by pid \d+ .*\(train\); wait for it to finish", setup=folder("out", "out"),
          run=while_locked("out", "train"), check=nothing_written("out")),
    # 3. a torn resume record: dropped, said, the rest resumed
    Fault("torn-progress/eval-c", EVAL_C + " --data {c} --out {out}", code=0,
          warning=r"imagenet_c_progress.jsonl: dropped a torn last record", setup=torn_progress,
          may_change=("out/eval/*",)),
    # 4. a torn metrics record: report uses the complete file and says so
    Fault("torn-metrics/report", "report {resume} --out {tmp}/report --quiet", code=0,
          warning=r"ignored metrics.jsonl unreadable or partial .*; using metrics.csv", setup=torn_metrics),
    # 5. a checkpoint holding NaN / inf is refused
    Fault("nonfinite-ckpt/eval-imagenet", "eval-imagenet --ckpt {bad} --data {data} --out {tmp}/out --quiet",
          r"holds NaN or infinite values in 1 tensor\(s\) \(first: 'bn1.running_var'\)", setup=nonfinite_checkpoint),
    Fault("nonfinite-ckpt/eval-c", EVAL_C.replace("{ckpt}", "{bad}") + " --data {c} --out {tmp}/out",
          r"holds NaN or infinite values", setup=nonfinite_checkpoint),
    # 10. fine-grained transfer: layouts, split files, labels, the checkpoint's architecture
    Fault("fgvc-wrong-layout/finetune", FINETUNE.format(dataset="cub", root="{aircraft}"),
          r"CUB-200-2011 root '.*fgvc-aircraft-2013b' has no images/ folder \(expected the official layout",
          setup=fgvc_tree("aircraft")),
    Fault("fgvc-missing-split/finetune", FINETUNE.format(dataset="aircraft", root="{aircraft}"),
          r"FGVC-Aircraft root '.*' has no data/images_variant_test.txt", setup=fgvc_tree("aircraft", drop=(
              "data/images_variant_test.txt",))),
    Fault("fgvc-label-out-of-range/finetune", FINETUNE.format(dataset="cars", root="{cars}"),
          r"Stanford Cars: cars_test_annos_withlabels.mat gives '00001.jpg' label 9, outside the 3 classes 1..3",
          setup=fgvc_tree("cars", bad_class=9)),
    Fault("fgvc-other-architecture/finetune",
          FINETUNE.format(dataset="cub", root="{cub}").replace("--ckpt {ckpt}", "--model resnet34 --weights {ckpt}"),
          r"does not fit 'resnet34_gap': .*; it looks like a 'resnet18_gap' checkpoint", setup=fgvc_tree("cub")),
    Fault("fgvc-wrong-layout/data-check", "data check cars {cub} --quiet",
          r"Stanford Cars root '.*CUB_200_2011' has no cars_train/ folder", setup=fgvc_tree("cub")),
    # issue 23, 2. link cycles and files reached twice: refused in one line by every walk
    Fault("link-cycle/eval-imagenet", "eval-imagenet --ckpt {ckpt} --data {bad_data} --out {tmp}/out --quiet",
          LINK_CYCLE, setup=linked("data", f"val/{CLASSES[1]}/loop", None)),
    Fault("link-cycle/data-check", "data check imagefolder {bad_data} --full --quiet", LINK_CYCLE,
          setup=linked("data", f"train/{CLASSES[0]}/loop", None)),
    Fault("link-cycle/make-c", "data make-c --src {bad_data}/val --out {tmp}/made --corruptions brightness "
          "--severities 1 --workers 0 --quiet", LINK_CYCLE, setup=linked("data", f"val/{CLASSES[2]}/loop", None)),
    Fault("link-cycle/eval-c", EVAL_C + " --data {bad_c} --out {tmp}/out", LINK_CYCLE,
          setup=linked("c", f"brightness/1/{CLASSES[0]}/loop", None)),
    Fault("folder-twice/eval-c", EVAL_C + " --data {bad_c} --out {tmp}/out", REACHED_TWICE,
          setup=linked("c", "brightness/2", "brightness/1")),
    Fault("file-twice/eval-imagenet", "eval-imagenet --ckpt {ckpt} --data {bad_data} --out {tmp}/out --quiet",
          REACHED_TWICE, setup=linked("data", f"val/{CLASSES[1]}/again.png", f"val/{CLASSES[0]}/img_000.png")),
    # issue 23, 3. a tree regenerated at the same path is other data: nothing of the old one is resumed
    Fault("regenerated-tree/eval-c", EVAL_C + " --data {bad_c} --out {out}", code=0, setup=regenerated_c_tree,
          check=nothing_resumed, may_change=("out/eval/*", "out/config.json")),
    # issue 23, 4. a result of a checkpoint that changed since: marked stale, with how to refresh it
    Fault("stale-result/report", "report {stale} --out {tmp}/report --quiet", code=0,
          warning=r"imagenet_c_summary.json: computed from checkpoint abababababab, but '.*tiny.pt' now holds "
                  r"[0-9a-f]{12}: its numbers are marked stale; refresh them with `gcpbench eval-c --ckpt",
          setup=stale_result, check=marked_in_report("74.09 [stale]")),
    # issue 23, 5 and 6. a partial mean, a tree missing images, data not made from ImageNet val: marked
    Fault("missing-image/eval-c", EVAL_C + " --data {bad_c} --out {tmp}/out", code=0,
          warning=r"ImageNet-C tree '.*' is missing 1 file\(s\): 'brightness/2' holds 11 of 12; .* marked incomplete",
          setup=removed(f"c", f"brightness/2/{CLASSES[2]}/img_003.JPEG")),
    Fault("partial-other-data/report", "report {run_c} --out {tmp}/report --quiet", code=0,
          setup=c_eval("run_c", corruptions=("brightness",)), check=marked_in_report("[partial, not ImageNet")),
    Fault("clean-error-at-chance/eval-c", EVAL_C.replace("--clean-error 0.2", "--clean-error 0.9")
          + " --data {c} --out {tmp}/out", code=0, warning=r"the clean error \(90.0 %\) is at chance for 3 classes"),
    # issue 23, 7. native size only for the built-in synthetic set, and only when asked
    Fault("native-size-with-src/make-c", "data make-c --src {data}/val --out {tmp}/made --native-size --workers 0 "
          "--quiet", r"--native-size applies to the built-in synthetic set only \(no --src, or the val/ folder of a set "
                     r"made by `gcpbench data synth`\), not '.*val'"),
    # 7. Ctrl-C exits 130 (eval-c on a larger tree: tests/test_integrity.py)
    # issue 24: Slurm's word on a run's job (stand-in squeue / sacct, as on a cluster without accounting)
    Fault("slurm-requeued/sweep", "sweep {spec} --launcher slurm --out {sweep}", code=0,
          setup=slurm_sweep("4242|PENDING|BeginTime\n", started=True), env=SLURM_PATH, check=nothing_submitted),
    Fault("slurm-cancelled-no-accounting/sweep-wait", "sweep {spec} --launcher slurm --out {sweep} --wait",
          error=r"1 run\(s\) failed \(resnet18_gap_LRnorm_s0\)", setup=slurm_sweep("4242|CANCELLED|None\n"),
          env=SLURM_PATH),
    Fault("short-time/sweep", "sweep {spec} --launcher slurm --out {sweep} --time 8", code=0,
          warning=r"--time 8 min leaves no room after the USR2 delay", setup=slurm_sweep(""), env=SLURM_PATH),
    Fault("sigint/train", TRAIN.replace("--epochs 1", "--epochs 200") + " --data {data} --out {tmp}/out", code=130,
          run=interrupt_once("out/config.json")),

    # 7. Ctrl-C exits 130 (eval-c on a larger tree: tests/test_integrity.py): one line, the command that continues
    Fault("sigint/train", TRAIN.replace("--epochs 1", "--epochs 200") + " --data {data} --out {tmp}/out",
          r"^interrupted: (epoch \d+/200 was running and is lost|no epoch had started); .*continue with "
          r"`gcpbench train --resume .*out`", code=130, run=interrupt_once("out/config.json")),
    # leftovers: a killed make-c's temporary file is no image; no output in a system folder or outside runs/
    Fault("stale-temp/eval-c", EVAL_C + " --data {bad_c} --out {tmp}/out", code=0, only_warnings=True,
          setup=stale_temp_in_c, check=no_unreadable_image),
    Fault("out-root/eval-imagenet", "eval-imagenet --ckpt {ckpt} --data {data} --out / --quiet",
          r"output folder '/' is the file system's root: .* choose another --out"),
    Fault("out-root/train", TRAIN + " --data {data} --out /", r"output folder '/' is the file system's root"),
    Fault("out-system/eval-c", EVAL_C + " --data {c} --out /etc", r"output folder '/etc' is a system folder"),
    Fault("work-dir-root/detect", DETECT + " --data {coco} --work-dir /",
          r"work directory '/' is the file system's root: .* choose another --work-dir"),
    Fault("escaping-name/sweep", "sweep {spec} --dry-run", r"spec: name '../../escape' must be a plain folder name",
          setup=escaping_spec),
    # tracebacks and stray library lines that used to reach the user: one line each
    Fault("resume-missing/detect", DETECT + " --data {coco} --work-dir {tmp}/det --resume",
          r"--resume: '.*det/last_checkpoint' names '.*epoch_1.pth', which does not exist; delete .* to start over",
          setup=detector_resume(None)),
    Fault("resume-damaged/detect", DETECT + " --data {coco} --work-dir {tmp}/det --resume",
          r"--resume: cannot read checkpoint '.*epoch_1.pth': it is a damaged or truncated PyTorch checkpoint.*"
          r"delete '.*last_checkpoint' to start over", setup=detector_resume(half_checkpoint)),
    Fault("resume-incomplete/detect", DETECT + " --data {coco} --work-dir {tmp}/det --resume",
          r"--resume: '.*epoch_1.pth' is not a complete mmengine checkpoint \(no meta, message_hub\)",
          setup=detector_resume(weights_only_checkpoint)),
    Fault("summary-wrong-types/report", "report {resume} --out {tmp}/report", code=0, only_warnings=True,
          warning=r"skipped file .*imagenet_c_summary.json: field 'CE' must be an object of numbers, got a list$",
          setup=summary_in_run('{"model": "resnet18_gap", "mCE": 80.0, "relative_mCE": 90.0, "CE": [1, 2, 3]}')),
    Fault("summary-string-number/report", "report {resume} --out {tmp}/report --quiet", code=0, only_warnings=True,
          warning=r"skipped file .*imagenet_c_summary.json: field 'mCE' must be a number, got a string$",
          setup=summary_in_run('{"model": "resnet18_gap", "mCE": "80.0", "relative_mCE": 90.0}')),
    Fault("summary-truncated/report", "report {resume} --out {tmp}/report", code=0, only_warnings=True,
          warning=r"skipped file .*imagenet_c_summary.json: bad JSON",
          setup=summary_in_run('{"model": "resnet18_gap", "mCE": 80.0, "relative_m')),
    Fault("empty-mp4/eval-p", "eval-p --ckpt {ckpt} --data {p} --perturbations translate --out {tmp}/out --workers 0 "
          "--quiet", code=0, only_warnings=True, setup=empty_sequence),
    Fault("readonly-home/report", "report {run} --out {tmp}/report --quiet", code=0, only_warnings=True,
          setup=folder("ro", "ro"), readonly=("ro",),
          env=(("HOME", "{ro}"), ("XDG_CONFIG_HOME", "{ro}/.config"), ("XDG_CACHE_HOME", "{ro}/.cache"),
               ("MPLCONFIGDIR", ""))),
    # SIGTERM (a scheduler, kill, a CI timeout) in every command: exit 143, one line, children and temporaries gone
    sigterm("train", TRAIN.replace("--epochs 1", "--epochs 3") + " --data {data} --out {tmp}/out",
            "gcpbench.train.trainer:train_one_epoch:2",
            r"epoch 2/3 was running and is lost; epoch 1 is saved \(.*last.pt\); " + RESUME_TRAIN),
    sigterm("eval-imagenet", "eval-imagenet --ckpt {ckpt} --data {data} --out {tmp}/top1.json --workers 0 --quiet",
            "gcpbench.evaluate:evaluate_val_folder", gone=(".lock-*", "top1.json")),
    sigterm("eval-c", EVAL_C + " --data {c} --out {tmp}/out", "gcpbench.robustness.runner:run_items"),
    sigterm("eval-p", "eval-p --ckpt {ckpt} --data {p} --perturbations translate --out {tmp}/out --workers 0 --quiet",
            "gcpbench.robustness.runner:run_items", setup=p_tree),
    sigterm("eval-cifar", "eval-cifar --benchmark cifar10-c --ckpt {cifar_ckpt} --data {cifar} --only fog "
            "--severities 1,2 --out {tmp}/out --workers 0 --device cpu --quiet", "gcpbench.robustness.runner:run_items",
            setup=cifar_tree),
    sigterm("landscape", "landscape {run} --out {tmp}/l.png --quiet", "gcpbench.landscape.plot:plot_landscape"),
    sigterm("make-c", "data make-c --src {data}/val --out {tmp}/c --corruptions fog,brightness --severities 1 "
            "--workers 2 --quiet", "gcpbench.robustness.make_c:_corrupt_source", gone=("c/.lock-*",)),
    sigterm("make-p", "data make-p --src {data}/val --out {tmp}/p --perturbations translate --workers 0 --quiet",
            "gcpbench.robustness.make_p:_perturb_source:2", gone=("p/.lock-*",)),
    sigterm("sweep", "sweep {spec} --out {tmp}/sweep", "gcpbench.train.trainer:train_one_epoch:2", setup=sweep_spec),
    sigterm("detect", DETECT.replace("--max-iters 1", "--max-iters 50") + " --data {coco} --work-dir {tmp}/det",
            "gcpbench.detection.runner:run_config",
            r"no detector checkpoint was written yet; rerun the same command to start again$"),
    sigterm("report", "report {run} --out {tmp}/report --quiet", "gcpbench.report.render:write_report"),
]


# ----------------------------------------------------------------------------- running

@pytest.fixture(scope="session")
def assets(tmp_path_factory) -> dict[str, str]:
    """The shared, valid inputs every row starts from (built once, never written by a row)."""
    import numpy as np

    from gcpbench.data.synthetic_coco import make_detection_set
    from gcpbench.train import TrainOptions, train

    root = tmp_path_factory.mktemp("fault-assets")
    for split, seed in (("train", 0), ("val", 1)):
        write_tree(root / "data" / split, tiny_images(seed))
    rng = np.random.default_rng(1)
    for corruption in ("gaussian_noise", "brightness"):
        for severity in (1, 2):
            noisy = {k: [np.clip(a + rng.normal(0, 8 * severity, a.shape), 0, 255).astype(np.uint8) for a in v]
                     for k, v in tiny_images().items()}
            write_tree(root / "c" / corruption / str(severity), noisy, ext="JPEG")
    make_detection_set(root / "coco", num_train=2, num_val=3, image_size=64)
    run = train(TrainOptions(arch="resnet18", data=str(root / "data"), out=str(root / "run"), epochs=1, batch_size=4,
                             workers=0, image_size=32, device="cpu", quiet=True))
    return {"ckpt": str(train_tiny_checkpoint(root / "tiny.pt")), "data": str(root / "data"), "c": str(root / "c"),
            "coco": str(root / "coco"), "run": str(run.path), "assets": str(root)}


def snapshot(*roots: Path) -> dict[str, str]:
    """Path -> SHA-256 of every file below ``roots``."""
    digests = {}
    for root in roots:
        for path in sorted(Path(root).rglob("*")):
            if path.is_file() and not path.is_symlink():
                digests[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return digests


def readonly_command(folders: list[str], argv: list[str]) -> list[str]:
    """``argv`` in a private mount namespace where ``folders`` are read-only bind mounts."""
    mounts = " && ".join(f"mount --bind -o ro {shlex.quote(f)} {shlex.quote(f)}" for f in folders)
    return ["unshare", "-rm", "sh", "-c", f'{mounts} && exec "$@"', "sh", *argv]


def run_fault(fault: Fault, tmp: Path, assets: dict[str, str]) -> Outcome:
    sb = Sandbox(tmp, {**assets, "tmp": str(tmp)})
    if fault.setup is not None:
        fault.setup(sb)
    argv = [sys.executable, "-m", "gcpbench", *shlex.split(fault.args.format(**sb.vars))]
    if fault.readonly:
        argv = readonly_command([sb.vars[key] for key in fault.readonly], argv)
    env = {**os.environ, "PYTHONPATH": str(REPO), "GCPBENCH_RUNS": str(tmp / "runs"),
           "GCPBENCH_CACHE": str(tmp / "cache"), "OMP_NUM_THREADS": "1", "COLUMNS": "200", "NO_COLOR": "1",
           **{key: value.format(**sb.vars) for key, value in fault.env}}
    before = snapshot(tmp, Path(assets["assets"]))
    if fault.run is not None:
        done = fault.run(argv, sb, env)
    else:
        done = subprocess.run(argv, cwd=tmp, env=env, capture_output=True, text=True, timeout=TIMEOUT_S)
    after = snapshot(tmp, Path(assets["assets"]))
    allowed = [p for pattern in fault.may_change for p in map(str, tmp.glob(pattern))]
    changed = sorted(p for p, digest in before.items() if after.get(p) != digest and p not in allowed)
    return Outcome(done.returncode, done.stdout, done.stderr, changed, sb)


@pytest.fixture(scope="session")
def outcomes(request, assets, tmp_path_factory) -> dict[str, Outcome]:
    """Run every selected row (two at a time: most of a row's time is Python starting up)."""
    selected = {item.callspec.params["fault"].id for item in request.session.items
                if hasattr(item, "callspec") and isinstance(item.callspec.params.get("fault"), Fault)}
    rows = [f for f in FAULTS if f.id in selected]
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        futures = {f.id: pool.submit(run_fault, f, tmp_path_factory.mktemp("fault"), assets) for f in rows}
        return {key: future.result() for key, future in futures.items()}


def test_fault_ids_are_unique():
    ids = [f.id for f in FAULTS]
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize("fault", FAULTS, ids=[f.id for f in FAULTS])
def test_fault(fault: Fault, outcomes: dict[str, Outcome]) -> None:
    out = outcomes[fault.id]
    shown = f"exit {out.code}\nstdout:\n{out.stdout[-2000:]}\nstderr:\n{out.stderr[-3000:]}"
    assert "Traceback" not in out.stdout + out.stderr, shown
    assert out.code == fault.code, shown
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    warnings = [line for line in lines if line.startswith("warning: ")]
    others = [line for line in lines if not line.startswith("warning: ")]
    if fault.code == 0:  # it went on: informational lines are fine, an error line is not
        assert not any(line.startswith("error: ") for line in others), shown
    elif fault.code in (130, 143):  # Ctrl-C, SIGTERM: one line, saying what continues
        assert len(others) == 1 and re.search(fault.error, others[0]), shown
    else:
        assert len(others) == 1 and others[0].startswith("error: "), shown
        assert re.search(fault.error, others[0]), shown
        assert "weights_only" not in others[0], shown
    if fault.warning is not None:
        assert any(re.search(fault.warning, line) for line in warnings), shown
    if fault.only_warnings:
        assert others == [], shown
    assert out.changed == [], f"files changed by the command: {out.changed}"
    if fault.check is not None:
        fault.check(out.sandbox)
