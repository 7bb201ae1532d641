"""Started by every Python process of a hang test (``tests/hang.py`` puts this folder first on
``PYTHONPATH``): with ``GCPBENCH_TEST_HANG_AT=EPOCH:ITERATION`` (1-based) the training loop, once
``gcpbench.train.trainer`` is imported, writes ``RUN/.hang`` (its pid) after that iteration and
blocks, once per run directory (a restarted or requeued process finds ``RUN/.hang`` and goes on).
"""
import os
import sys
import time

HANG_ENV = "GCPBENCH_TEST_HANG_AT"
TARGET = "gcpbench.train.trainer"


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
        if name != TARGET:
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
            _patch(module)

        spec.loader.exec_module = exec_and_patch
        return spec


if os.environ.get(HANG_ENV):
    sys.meta_path.insert(0, _PatchOnImport())
