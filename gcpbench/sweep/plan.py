"""The sweep directory: the plan of its runs (``sweep.json``) and where everything goes.

::

    SWEEP/
      sweep.json            the runs (name, `gcpbench train` options, evaluations), eval options
      <run name>/           one gcpbench run directory per run (config, metrics, checkpoints, eval/)
        job.json            the sweep's record of the run: state, attempts, evaluations, last error
        submission.json     the Slurm job the sweep submitted for the run (slurm launcher)
        detect/<framework>_<method>/   detection fine-tunings of the run's checkpoint
      logs/<run name>.log   output of the local launcher's jobs
      submitit/             submitit's job pickles and logs (slurm, submitit-local)

Sweeping again into the same folder adds the new runs and evaluations to the plan; a run that
appears in both must have the same settings (its name says so).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from gcpbench.errors import GcpbenchError
from gcpbench.io import atomic_write_json
from gcpbench.runs import RunDir
from gcpbench.sweep.spec import SweepSpec, merge_runs

PLAN_FILE = "sweep.json"


@dataclass(frozen=True)
class SweepDir:
    """Paths of one sweep directory."""

    path: Path

    @property
    def plan(self) -> Path:
        return self.path / PLAN_FILE

    @property
    def logs(self) -> Path:
        return self.path / "logs"

    @property
    def submitit(self) -> Path:
        return self.path / "submitit"

    def run(self, name: str) -> RunDir:
        return RunDir(self.path / name)

    def log(self, name: str) -> Path:
        return self.logs / f"{name}.log"

    def read(self) -> SweepSpec:
        """The stored plan; a folder without one raises."""
        if not self.plan.is_file():
            raise GcpbenchError(f"'{self.path}' is not a sweep directory (no {PLAN_FILE}); start one with "
                                "`gcpbench sweep SPEC --out DIR`")
        try:
            return SweepSpec.from_json(json.loads(self.plan.read_text()))
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise GcpbenchError(f"'{self.plan}' is unreadable ({exc.__class__.__name__}); restore it or start "
                                "another sweep folder") from None

    def write(self, spec: SweepSpec) -> SweepSpec:
        """Store ``spec``, merged into the plan already there (runs, evaluation options, notes)."""
        if self.path.exists() and not self.path.is_dir():
            raise GcpbenchError(f"sweep folder '{self.path}' is a file; choose another --out")
        if self.plan.is_file():
            old = self.read()
            for command, options in spec.eval_options.items():
                if old.eval_options.get(command, options) != options:
                    raise GcpbenchError(f"the options of {command} differ from those stored in {self.plan}; "
                                        "use another sweep folder to evaluate differently")
            names = list(dict.fromkeys([*old.name.split("+"), spec.name]))
            spec = SweepSpec("+".join(names),
                             merge_runs([*old.runs, *spec.runs]), {**old.eval_options, **spec.eval_options},
                             list(dict.fromkeys([*old.notes, *spec.notes])))
        atomic_write_json(self.plan, spec.to_json())
        return spec
