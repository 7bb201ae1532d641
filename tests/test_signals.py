"""Ctrl-C and SIGTERM (issue 24, items 5 and 6): one line that says what was lost and the exact
command that continues, exit 130 / 143, and child processes that never outlive their parent.
SIGTERM in every command, as a subprocess: the ``sigterm/*`` rows of ``tests/test_faults.py``."""
from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import time

import pytest

from gcpbench.io import read_jsonl

TRAIN = ["--epochs", "3", "--batch-size", "4", "--workers", "0", "--quiet"]


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    from gcpbench.data.synthetic import make_classification_set

    return make_classification_set(tmp_path_factory.mktemp("data") / "set", num_classes=2, image_size=32,
                                   train_per_class=4, val_per_class=2, seed=0)


def stop_at_epoch(monkeypatch, epoch: int, signum: int) -> None:
    """The ``epoch``-th epoch (1-based) this process starts receives ``signum`` at its beginning."""
    from gcpbench.train import trainer

    real, calls = trainer.train_one_epoch, []

    def train_one_epoch(s, e):
        calls.append(e)
        if len(calls) == epoch:
            os.kill(os.getpid(), signum)
            time.sleep(5)  # the handler raises here
        return real(s, e)

    monkeypatch.setattr(trainer, "train_one_epoch", train_one_epoch)


def the_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    return lines[0]


def continue_command(line: str) -> list[str]:
    """The arguments of the `gcpbench ...` command the line names."""
    command = re.search(r"`gcpbench ([^`]*)`", line).group(1)
    return shlex.split(command)


def test_ctrl_c_names_the_command_that_continues_and_it_does(tiny_data, tmp_path, monkeypatch, run_cli):
    out = tmp_path / "run"
    stop_at_epoch(monkeypatch, 2, signal.SIGINT)
    code, _, err = run_cli("train", "resnet18", "--data", str(tiny_data), "--out", str(out), *TRAIN)
    line = the_line(err)
    assert code == 130
    assert line == (f"interrupted: epoch 2/3 was running and is lost; epoch 1 is saved ({out}/checkpoints/last.pt); "
                    f"continue with `gcpbench train --resume {out}` (it resumes at epoch 2)")
    # the interrupted --resume says the same kind of line, once, with the same command
    stop_at_epoch(monkeypatch, 1, signal.SIGTERM)
    code, _, err = run_cli(*continue_command(line), "--quiet")
    resumed_line = the_line(err)
    assert code == 143
    assert resumed_line == (f"terminated (SIGTERM): epoch 2/3 was running and is lost; epoch 1 is saved "
                            f"({out}/checkpoints/last.pt); continue with `gcpbench train --resume {out}` "
                            "(it resumes at epoch 2)")
    monkeypatch.undo()
    code, _, err = run_cli(*continue_command(resumed_line), "--quiet")
    assert code == 0, err
    assert [r["epoch"] for r in read_jsonl(out / "metrics.jsonl")] == [1, 2, 3]


def test_a_run_stopped_in_its_first_epoch_starts_again_with_the_same_command(tiny_data, tmp_path, monkeypatch,
                                                                             run_cli):
    out = tmp_path / "run"
    command = ["train", "resnet18", "--data", str(tiny_data), "--out", str(out), *TRAIN]
    stop_at_epoch(monkeypatch, 1, signal.SIGTERM)
    code, _, err = run_cli(*command)
    assert code == 143
    assert the_line(err) == (f"terminated (SIGTERM): epoch 1/3 was running and is lost; no epoch had finished; "
                             f"continue with `gcpbench train --resume {out}` (it starts epoch 1 again)")
    assert (out / "config.json").is_file() and not (out / "checkpoints" / "last.pt").exists()
    monkeypatch.undo()
    code, _, err = run_cli(*command)  # refused before: "already holds a run; continue it with --resume"
    assert code == 0, err
    assert [r["epoch"] for r in read_jsonl(out / "metrics.jsonl")] == [1, 2, 3]
    code, _, err = run_cli(*command[:-len(TRAIN)], "--epochs", "3", "--batch-size", "4", "--workers", "0",
                           "--quiet")  # with a finished epoch the same command is refused, naming --resume
    assert code == 2 and f"continue it with --resume {out}" in err


def test_a_stopped_run_with_other_options_is_still_refused(tiny_data, tmp_path, monkeypatch, run_cli):
    out = tmp_path / "run"
    stop_at_epoch(monkeypatch, 1, signal.SIGINT)
    code, _, _ = run_cli("train", "resnet18", "--data", str(tiny_data), "--out", str(out), *TRAIN)
    assert code == 130
    monkeypatch.undo()
    code, _, err = run_cli("train", "resnet18", "--head", "gcp", "--data", str(tiny_data), "--out", str(out), *TRAIN)
    assert code == 2 and "already holds a run" in err


CHILD = "import time, sys; from gcpbench.children import die_with_parent; die_with_parent(int(sys.argv[1])); " \
        "print('ready', flush=True); time.sleep(60)"


def test_a_child_dies_with_its_parent(tmp_path):
    """A grandchild asks for SIGTERM at its parent's death; the parent is SIGKILLed (no cleanup)."""
    parent = subprocess.Popen(
        [sys.executable, "-c", "import os, subprocess, sys; "
         f"c = subprocess.Popen([sys.executable, '-c', {CHILD!r}, str(os.getpid())], stdout=subprocess.PIPE, text=True); "
         "c.stdout.readline(); print(c.pid, flush=True); import time; time.sleep(60)"],
        stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": os.getcwd()})
    child = int(parent.stdout.readline())
    parent.kill()
    parent.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _alive(child):
        time.sleep(0.1)
    assert not _alive(child)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_stop_terminates_then_kills(tmp_path):
    from gcpbench.children import stop

    polite = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    assert stop(polite, grace_s=10) == -signal.SIGTERM
    stubborn = subprocess.Popen([sys.executable, "-c", "import signal, sys, time; "
                                 "signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready', flush=True); "
                                 "time.sleep(60)"], stdout=subprocess.PIPE, text=True)
    stubborn.stdout.readline()
    assert stop(stubborn, grace_s=0.5) == -signal.SIGKILL
