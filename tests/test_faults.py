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
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pytest

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


# ----------------------------------------------------------------------------- the table

NOT_A_CKPT = r"cannot read checkpoint '.*': it is not a PyTorch checkpoint"
RO = r"cannot write the .*does not accept new files \(read-only file system\)"
EVAL_C = "eval-c --ckpt {ckpt} --corruptions gaussian_noise,brightness --severities 1,2 --clean-error 0.2 --workers 0 --batch-size 8 --device cpu --quiet"
TRAIN = "train resnet18 --epochs 1 --batch-size 4 --workers 0 --image-size 32 --device cpu --quiet"
DETECT = "detect --framework faster_rcnn --backbone resnet18_gap --device cpu --max-iters 1 --quiet"
HELLO = write("bad", "hello.pt", "hello world")

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
    # 7. Ctrl-C exits 130 (eval-c on a larger tree: tests/test_integrity.py)
    Fault("sigint/train", TRAIN.replace("--epochs 1", "--epochs 200") + " --data {data} --out {tmp}/out", code=130,
          run=interrupt_once("out/config.json")),
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
    elif fault.code == 130:
        assert others[-1].startswith("interrupted: finished results are kept"), shown
    else:
        assert len(others) == 1 and others[0].startswith("error: "), shown
        assert re.search(fault.error, others[0]), shown
        assert "weights_only" not in others[0], shown
    if fault.warning is not None:
        assert any(re.search(fault.warning, line) for line in warnings), shown
    assert out.changed == [], f"files changed by the command: {out.changed}"
    if fault.check is not None:
        fault.check(out.sandbox)
