"""`gcpbench sweep SPEC` / `gcpbench sweep --paper ...` and `gcpbench sweep status DIR`."""
from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer
from typer.core import TyperGroup

from gcpbench.cli import app
from gcpbench.cli.choices import DATA, MODEL, OUTPUT, RUNTIME, SWEEP_LAUNCHERS, choice, examples
from gcpbench.errors import GcpbenchError

SLURM = "Slurm"


class _RunByDefault(TyperGroup):
    """`gcpbench sweep ARGS` means `gcpbench sweep run ARGS` unless ARGS start with a subcommand."""

    def parse_args(self, ctx, args):  # type: ignore[override]
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = ["run", *args]
        elif not args:
            args = ["run", "--help"]
        return super().parse_args(ctx, args)


sweep_app = typer.Typer(cls=_RunByDefault, help="The paper's experiment grid (or any grid file) as one command: "
                        "local, Slurm (submitit), requeued on preemption; `sweep status DIR` shows each run.")
app.add_typer(sweep_app, name="sweep")

EPILOG = examples(
    "gcpbench sweep --paper imagenet --data /data/imagenet --launcher slurm --partition gpu --gpus-per-node 8 "
    "--time 72:00:00 --out runs/paper",
    "gcpbench sweep grid.toml --dry-run",
    "gcpbench sweep grid.toml --only 'resnet50_*' --gpus 4",
)
STATUS_EPILOG = examples("gcpbench sweep status runs/paper", "gcpbench sweep status runs/paper --json")


@sweep_app.command("run", epilog=EPILOG)
def run(
    spec: Optional[Path] = typer.Argument(None, help="grid file (.toml, .yaml): models, heads, gcp_dims, schedules, seeds, data, evaluations"),
    paper: Optional[List[str]] = typer.Option(None, "--paper", help="built-in spec of the paper's tables: imagenet, robustness, detection, landscape, fgvc, normalisations (GAP and every GCP normalisation) (repeatable)", rich_help_panel=MODEL),
    out: Optional[Path] = typer.Option(None, "--out", help="sweep directory [default: runs/<spec name>]; rerunning continues it", rich_help_panel=OUTPUT),
    data: Optional[Path] = typer.Option(None, "--data", help="ImageNet root for every training [default: the spec's, else the built-in synthetic set]", rich_help_panel=DATA),
    imagenet_c: Optional[Path] = typer.Option(None, "--imagenet-c", help="ImageNet-C root for eval-c [default: made from the synthetic set]", rich_help_panel=DATA),
    imagenet_p: Optional[Path] = typer.Option(None, "--imagenet-p", help="ImageNet-P root for eval-p [default: made from the synthetic set]", rich_help_panel=DATA),
    coco: Optional[Path] = typer.Option(None, "--coco", help="COCO 2017 root for detection [default: the synthetic COCO-format set]", rich_help_panel=DATA),
    cub: Optional[Path] = typer.Option(None, "--cub", help="CUB-200-2011 root for finetune:cub", rich_help_panel=DATA),
    aircraft: Optional[Path] = typer.Option(None, "--aircraft", help="FGVC-Aircraft root (fgvc-aircraft-2013b) for finetune:aircraft", rich_help_panel=DATA),
    cars: Optional[Path] = typer.Option(None, "--cars", help="Stanford Cars root (stanford_cars) for finetune:cars", rich_help_panel=DATA),
    train: Optional[List[str]] = typer.Option(None, "--train", help="extra `gcpbench train` option for every run, KEY=VALUE (e.g. epochs=5, amp=true); shows in the run names", rich_help_panel=MODEL),
    gcp_norm: Optional[List[str]] = typer.Option(None, "--gcp-norm", help="only GAP runs and GCP runs with this normalisation (repeatable), e.g. --paper normalisations --gcp-norm mpn", rich_help_panel=MODEL),
    only: Optional[List[str]] = typer.Option(None, "--only", help="only runs whose name matches this shell pattern (repeatable), e.g. 'resnet50_*'", rich_help_panel=MODEL),
    dry_run: bool = typer.Option(False, "--dry-run", help="print the runs and exit", rich_help_panel=OUTPUT),
    launcher: str = choice("local", "--launcher", SWEEP_LAUNCHERS, "launcher", "where the jobs run", RUNTIME),
    gpus: int = typer.Option(0, "--gpus", min=0, help="local: run N jobs at a time, one per GPU (0: one at a time, device auto)", rich_help_panel=RUNTIME),
    partition: Optional[str] = typer.Option(None, "--partition", help="slurm partition", rich_help_panel=SLURM),
    account: Optional[str] = typer.Option(None, "--account", help="slurm account", rich_help_panel=SLURM),
    qos: Optional[str] = typer.Option(None, "--qos", help="slurm QOS", rich_help_panel=SLURM),
    constraint: Optional[str] = typer.Option(None, "--constraint", help="slurm node constraint", rich_help_panel=SLURM),
    nodes: int = typer.Option(1, "--nodes", min=1, help="nodes per run (slurm)", rich_help_panel=SLURM),
    gpus_per_node: Optional[int] = typer.Option(None, "--gpus-per-node", min=0, help="GPUs per node, one DDP rank each [default: slurm 8; submitit-local the visible GPUs]", rich_help_panel=RUNTIME),
    tasks_per_node: Optional[int] = typer.Option(None, "--tasks-per-node", min=1, help="DDP ranks per node [default: one per GPU; one without GPUs]", rich_help_panel=RUNTIME),
    cpus_per_task: Optional[int] = typer.Option(None, "--cpus-per-task", min=1, help="CPUs per rank (data loading)", rich_help_panel=SLURM),
    mem_gb: Optional[float] = typer.Option(None, "--mem-gb", help="memory per node (slurm)", rich_help_panel=SLURM),
    time: str = typer.Option("72:00:00", "--time", help="time limit per job (H:MM:SS, D-HH:MM:SS, minutes); on time-out the job is requeued and continues; keep it above 10 minutes, or submitit counts every preemption as a time-out", rich_help_panel=RUNTIME),
    array_parallelism: Optional[int] = typer.Option(None, "--array-parallelism", min=1, help="at most N runs of the job array at once (slurm)", rich_help_panel=SLURM),
    max_timeouts: int = typer.Option(10, "--max-timeouts", min=0, help="requeues after time-outs per job (preemptions do not count)", rich_help_panel=RUNTIME),
    setup: Optional[List[str]] = typer.Option(None, "--setup", help="shell line run before each slurm job, e.g. 'module load cuda' (repeatable)", rich_help_panel=SLURM),
    include_running: bool = typer.Option(False, "--include-running", help="also relaunch runs recorded as running (their job died without a word)", rich_help_panel=RUNTIME),
    wait: Optional[bool] = typer.Option(None, "--wait/--no-wait", help="wait for the jobs [default: yes, except slurm]; on Slurm, until Slurm says each job ended, with or without a result", rich_help_panel=RUNTIME),
) -> None:
    """Expand a grid (or the paper's tables) into runs under one sweep directory and launch them."""
    from gcpbench.sweep import launchers
    from gcpbench.sweep.sweep import (describe, parse_assignments, resolve_spec, select_norms, select_runs,
                                      sweep_dir, with_overrides)

    if launcher not in launchers.LAUNCHERS:
        raise GcpbenchError(f"--launcher {launcher} is unknown; use one of {', '.join(launchers.LAUNCHERS)}")
    plan = with_overrides(select_norms(resolve_spec(str(spec) if spec else None, paper), gcp_norm),
                          parse_assignments(train),
                          str(data) if data else None,
                          {"eval-c": imagenet_c, "eval-p": imagenet_p, "detect": coco},
                          {"cub": cub, "aircraft": aircraft, "cars": cars})
    sweep = sweep_dir(out, plan)
    if dry_run:
        _print_plan(plan, [describe(r) for r in plan.runs], sweep.path)
        return
    options = launchers.ClusterOptions(partition=partition, account=account, qos=qos, constraint=constraint,
                                       nodes=nodes, gpus_per_node=_gpus_per_node(gpus_per_node, launcher),
                                       tasks_per_node=tasks_per_node, cpus_per_task=cpus_per_task, mem_gb=mem_gb,
                                       time_min=launchers.parse_time(time), array_parallelism=array_parallelism,
                                       max_timeouts=max_timeouts, setup=list(setup or []))
    sweep.write(plan)
    selection = select_runs(sweep, plan, only, include_running)
    for name, why in selection.skipped:
        typer.echo(f"skip {name}: {why}")
    names = [r.name for r in selection.launch]
    if not names:
        typer.echo(f"nothing to launch in {sweep.path}; `gcpbench sweep status {sweep.path}` shows every run")
        return
    for note in plan.notes:
        typer.echo(f"note: {note}")
    if any(run.train.get("data") is None for run in selection.launch):
        typer.echo("note: runs without data train on the built-in synthetic set (pass --data /data/imagenet)")
    if launcher == "local":
        launchers.launch_local(sweep, names, gpus, say=typer.echo)
        _finish(sweep.path, names)
        return
    cluster = "slurm" if launcher == "slurm" else "local"
    from gcpbench.cli import install_logging

    jobs = launchers.launch_submitit(sweep, names, cluster, options, show_logs=install_logging)
    typer.echo(f"submitted {len(jobs)} job(s) to {launcher} ({', '.join(j.job_id for j in jobs[:5])}"
               f"{', ...' if len(jobs) > 5 else ''}); follow with `gcpbench sweep status {sweep.path}`")
    if (wait if wait is not None else launcher != "slurm"):
        launchers.wait_submitit(jobs, cluster, say=typer.echo)
        _finish(sweep.path, names)


def _gpus_per_node(value: Optional[int], launcher: str) -> int:
    if value is not None or launcher == "local":
        return value or 0
    if launcher == "slurm":
        return 8
    import torch

    return torch.cuda.device_count()


def _finish(path: Path, names: list[str]) -> None:
    """Print the status table; raise when one of the launched runs did not finish."""
    from gcpbench.sweep import sweep_status

    _print_status(path)
    failed = [r.name for r in sweep_status(path) if r.name in names and r.state != "done"]
    if failed:
        raise GcpbenchError(f"{len(failed)} run(s) failed ({', '.join(failed[:3])}{', ...' if len(failed) > 3 else ''}); "
                            f"their last error line is above, their output in {path}/logs or {path}/submitit; "
                            "rerun the same command to retry them")


def _print_plan(plan, rows: list[dict], path: Path) -> None:
    from tabulate import tabulate

    typer.echo(f"sweep {plan.name}: {len(rows)} runs into {path}")
    typer.echo(tabulate([list(r.values()) for r in rows], headers=list(rows[0]) if rows else [], tablefmt="simple"))
    for note in plan.notes:
        typer.echo(f"note: {note}")


def _print_status(path: Path, as_json: bool = False) -> None:
    from tabulate import tabulate

    from gcpbench.sweep import sweep_status

    rows = sweep_status(path)
    if as_json:
        typer.echo(json.dumps([r.to_json() for r in rows], indent=2))
        return
    counts = {state: sum(r.state == state for r in rows) for state in ("done", "running", "pending", "failed")}
    typer.echo(f"{path}: " + ", ".join(f"{n} {s}" for s, n in counts.items() if n))
    table = [[r.name, r.state, f"{r.epoch}/{r.epochs}" if r.epochs else (str(r.epoch) if r.epoch else "-"),
              f"{r.best_top1:.2f}" if r.best_top1 is not None else "-", r.evaluations, r.note] for r in rows]
    typer.echo(tabulate(table, headers=["run", "state", "epoch", "best top-1 %", "evals", "note"], tablefmt="simple",
                        disable_numparse=True))


@sweep_app.command("status", epilog=STATUS_EPILOG)
def status(
    path: Path = typer.Argument(..., help="sweep directory", show_default=False),
    as_json: bool = typer.Option(False, "--json", help="print JSON instead of a table", rich_help_panel=OUTPUT),
) -> None:
    """Each run's state (pending, running, done, failed + its last error line), epoch and best top-1."""
    _print_status(path, as_json)
