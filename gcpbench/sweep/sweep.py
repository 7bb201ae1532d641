"""`gcpbench sweep` as library calls: resolve the spec, store the plan, pick the runs to launch."""
from __future__ import annotations

import fnmatch
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gcpbench.errors import GcpbenchError
from gcpbench.runs import DEFAULT_ROOT
from gcpbench.sweep.paper import paper_spec
from gcpbench.sweep.plan import SweepDir
from gcpbench.sweep.spec import TRAIN_KEYS, RunSpec, SweepSpec, load_spec, merge_runs, run_name, train_table
from gcpbench.sweep.state import run_statuses


def parse_assignments(items: list[str] | None) -> dict[str, Any]:
    """``["epochs=30", "amp=true", "lr=0.05"]`` -> train options (TOML values; bare words are strings)."""
    import tomllib

    options: dict[str, Any] = {}
    for item in items or []:
        key, sep, text = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or key not in TRAIN_KEYS:
            raise GcpbenchError(f"--train '{item}' must read KEY=VALUE with KEY one of {', '.join(TRAIN_KEYS)}")
        try:
            options[key] = tomllib.loads(f"v = {text.strip()}")["v"]
        except ValueError:
            options[key] = text.strip()
    return train_table(options, "--train")


def with_overrides(spec: SweepSpec, train: dict[str, Any], data: str | None,
                   eval_data: dict[str, str | None], finetune_data: dict[str, str | None] | None = None) -> SweepSpec:
    """``spec`` with extra train options and data roots given on the command line (names follow);
    ``finetune_data``: the root of each fine-tuning dataset (``cub``, ``aircraft``, ``cars``)."""
    runs = []
    for run in spec.runs:
        settings = {**run.train, **train}
        if data is not None:
            settings["data"] = str(Path(data).resolve())
        runs.append(RunSpec(run_name(settings), settings, list(run.evaluations)))
    options = {k: dict(v) for k, v in spec.eval_options.items()}
    for command, root in eval_data.items():
        if root is not None:
            options.setdefault(command, {})["data"] = str(Path(root).resolve())
    for dataset, root in (finetune_data or {}).items():
        if root is not None:
            options.setdefault("finetune", {})[dataset] = str(Path(root).resolve())
    return SweepSpec(spec.name, merge_runs(runs), options, list(spec.notes))


def select_norms(spec: SweepSpec, norms: list[str] | None) -> SweepSpec:
    """``spec`` with only the GAP runs and the GCP runs of normalisations ``norms`` (all when None)."""
    if not norms:
        return spec
    from gcpbench.models.registry import model_identity
    from gcpbench.pooling.registry import method

    wanted = {method(n).name for n in norms}
    runs = [r for r in spec.runs if not model_identity(r.model).head.is_gcp or model_identity(r.model).head.norm in wanted]
    if not runs:
        raise GcpbenchError(f"no run of sweep '{spec.name}' uses --gcp-norm {', '.join(sorted(wanted))}")
    return SweepSpec(spec.name, runs, spec.eval_options, spec.notes)


def resolve_spec(spec_file: str | None, papers: list[str] | None) -> SweepSpec:
    """The spec of a file or of the paper's tables (exactly one of them)."""
    if bool(spec_file) == bool(papers):
        raise GcpbenchError("give a spec file (gcpbench sweep grid.toml) or --paper imagenet|robustness|detection|"
                            "landscape|fgvc, not both and not neither")
    return load_spec(spec_file) if spec_file else paper_spec(list(dict.fromkeys(papers or [])))


def sweep_dir(out: str | os.PathLike | None, spec: SweepSpec) -> SweepDir:
    """``--out``, else ``runs/<spec name>``: a stable folder, so rerunning the command continues it."""
    return SweepDir(Path(out) if out else DEFAULT_ROOT / spec.name)


@dataclass
class Selection:
    """The runs to launch now and those left alone (with why)."""

    launch: list[RunSpec]
    skipped: list[tuple[str, str]]


def select_runs(sweep: SweepDir, spec: SweepSpec, only: list[str] | None = None,
                include_running: bool = False) -> Selection:
    """The runs of ``spec`` matching ``only`` (shell patterns) that still have work to do, as the
    sweep folder's plan has them (with the evaluations other specs added).

    Finished runs are skipped; so are running ones (a second job would train the same folder)
    unless ``include_running`` (for jobs that died without a word, e.g. a lost node), and always
    those whose Slurm job is still queued, running or requeued.
    """
    plan = sweep.read()
    chosen = [plan.run(r.name) for r in spec.runs if not only or any(fnmatch.fnmatch(r.name, p) for p in only)]
    if only and not chosen:
        raise GcpbenchError(f"--only {' '.join(only)} matches none of the {len(spec.runs)} runs "
                            "(`gcpbench sweep ... --dry-run` lists their names)")
    launch, skipped = [], []
    for run, status in zip(chosen, run_statuses(sweep, chosen)):
        state = status.state
        if state == "done":
            skipped.append((run.name, "done"))
        elif status.held_by:
            skipped.append((run.name, f"{status.note} (scancel {status.held_by} to stop it)"))
        elif state == "running" and not include_running:
            skipped.append((run.name, "running (pass --include-running if its job is gone)"))
        else:
            launch.append(run)
    return Selection(launch, skipped)


def describe(run: RunSpec) -> dict[str, Any]:
    """One row of ``--dry-run``: name, model, schedule, epochs, global batch, data, evaluations."""
    from gcpbench.train.schedules import make_schedule

    train = run.train
    schedule = make_schedule(train["arch"], train["schedule"], train.get("epochs"), train.get("batch_size"),
                             train.get("lr"))
    extra = {k: v for k, v in train.items() if k not in ("arch", "schedule", "seed", "data", "epochs", "batch_size")}
    return {"run": run.name, "model": train["arch"], "schedule": train["schedule"], "seed": train.get("seed", 0),
            "epochs": schedule.epochs, "batch": schedule.batch_size, "data": train.get("data") or "synthetic",
            "options": " ".join(f"{k}={v}" for k, v in extra.items()), "evaluations": " ".join(run.evaluations)}
