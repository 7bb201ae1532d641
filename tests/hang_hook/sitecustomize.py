"""Started by every Python process of a hang test (``tests/hang.py`` puts this folder first on
``PYTHONPATH``): with ``GCPBENCH_TEST_HANG_AT=EPOCH:ITERATION`` (1-based) the training loop, once
``gcpbench.train.trainer`` is imported, writes ``RUN/.hang`` (its pid) after that iteration and
blocks, once per run directory (a restarted or requeued process finds ``RUN/.hang`` and goes on).

With ``GCPBENCH_TEST_PAUSE_IN=MODULE:FUNCTION[:N]`` and ``GCPBENCH_TEST_PAUSE_MARKER=PATH``, the
N-th call (default 1) of ``MODULE.FUNCTION`` in this process first writes PATH (its pid) and
sleeps for an hour: a command caught mid-work, for the signal tests (``tests/test_signals.py``).
"""
import functools
import os
import sys
import time

HANG_ENV = "GCPBENCH_TEST_HANG_AT"
TARGET = "gcpbench.train.trainer"
PAUSE_ENV = "GCPBENCH_TEST_PAUSE_IN"
PAUSE_MARKER_ENV = "GCPBENCH_TEST_PAUSE_MARKER"


def _pause_target() -> tuple[str, str, int] | None:
    spec = os.environ.get(PAUSE_ENV)
    if not spec:
        return None
    module, function, *count = spec.split(":")
    return module, function, int(count[0]) if count else 1


def _patch_pause(module) -> None:
    """Wrap the paused function: its N-th call writes the marker, then sleeps."""
    _, name, nth = _pause_target()
    original = getattr(module, name)
    calls = [0]

    @functools.wraps(original)  # pickled by name (a pool task): the worker's own patched copy runs
    def paused(*args, **kwargs):
        calls[0] += 1
        if calls[0] == nth:
            marker = os.environ[PAUSE_MARKER_ENV]
            with open(marker + ".part", "w") as handle:
                handle.write(str(os.getpid()))
            os.replace(marker + ".part", marker)
            time.sleep(3600)
        return original(*args, **kwargs)

    setattr(module, name, paused)


def _patch(trainer) -> None:
    """Wrap ``train_one_epoch`` so the session's reporter blocks after the chosen iteration."""
    hang_at = tuple(int(part) for part in os.environ[HANG_ENV].split(":"))
    original = trainer.train_one_epoch

    def train_one_epoch(s, epoch):
        step = s.reporter.step

        def step_then_hang(e, i, loss, lr):
            step(e, i, loss, lr)
            marker = s.run.path / ".hang"
            if (e + 1, i + 1) == hang_at and not marker.exists():
                marker.write_text(str(os.getpid()))
                time.sleep(3600)

        s.reporter.step = step_then_hang
        try:
            return original(s, epoch)
        finally:
            del s.reporter.step

    trainer.train_one_epoch = train_one_epoch


class _PatchOnImport:
    """A meta-path finder that lets the ordinary finders load the trainer, then patches it."""

    def find_spec(self, name, path, target=None):
        pause = _pause_target()
        patches = ([_patch] if name == TARGET and os.environ.get(HANG_ENV) else []) + \
                  ([_patch_pause] if pause is not None and name == pause[0] else [])
        if not patches:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None:
                break
        else:
            return None
        exec_module = spec.loader.exec_module

        def exec_and_patch(module):
            exec_module(module)
            for patch in patches:
                patch(module)

        spec.loader.exec_module = exec_and_patch
        return spec


if os.environ.get(HANG_ENV) or os.environ.get(PAUSE_ENV):
    sys.meta_path.insert(0, _PatchOnImport())
