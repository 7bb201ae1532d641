"""Sweeps: the paper's experiment grid (or any grid file) as one command, on this machine or a
Slurm cluster, with restarts that need no human.

Modules: ``spec`` (grid files -> runs with stable names), ``paper`` (the paper's tables as
built-in specs), ``plan`` (the sweep directory and its ``sweep.json``), ``job`` (one run: train,
continue after a restart, evaluate), ``evaluations`` (the evaluation commands), ``launchers``
(local, Slurm and submitit's local executor), ``state`` (each run's state from its directory),
``slurm`` (what Slurm says about the jobs: squeue, sacct; waiting for them),
``sweep`` (the command's steps as library calls).
"""
from gcpbench.sweep.paper import PAPER_SPECS, paper_spec
from gcpbench.sweep.plan import SweepDir
from gcpbench.sweep.spec import Evaluation, RunSpec, SweepSpec, load_spec, parse_spec
from gcpbench.sweep.state import RunStatus, sweep_status

__all__ = ["PAPER_SPECS", "Evaluation", "RunSpec", "RunStatus", "SweepDir", "SweepSpec", "load_spec", "paper_spec",
           "parse_spec", "sweep_status"]
