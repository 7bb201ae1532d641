"""Shared test fixtures."""
from __future__ import annotations

import sys

import pytest
import torch


@pytest.fixture(autouse=True)
def one_thread():
    """One intra-op thread: faster on a shared 2-core machine, and reproducible."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def cli_logging():
    """Library log lines on stderr exactly as the command line shows them (``warning: ...``)."""
    from gcpbench.cli import install_logging

    install_logging()
    yield


@pytest.fixture
def run_cli(monkeypatch, capsys):
    """Run ``gcpbench ARGS...`` in-process; returns (exit code, stdout, stderr)."""

    def run(*args: str) -> tuple[int, str, str]:
        from gcpbench.cli import main

        monkeypatch.setattr(sys, "argv", ["gcpbench", *args])
        try:
            main()
            code = 0
        except SystemExit as exc:
            code = exc.code or 0
        out, err = capsys.readouterr()
        return code, out, err

    return run


@pytest.fixture(scope="session")
def slurm_cluster():
    """A real single-node Slurm for the session (tests/slurm_cluster.py): skipped where none can
    be started, saying why (a failure in CI on Debian as root); stopped after the last test."""
    from slurm_cluster import slurm_session

    yield from slurm_session()
