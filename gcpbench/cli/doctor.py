"""`gcpbench doctor`."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from gcpbench.cli import app
from gcpbench.cli.choices import OUTPUT, examples


def _yes(value: Optional[bool], none: str = "-") -> str:
    return none if value is None else "yes" if value else "no"


EPILOG = examples(
    "gcpbench doctor",
    "gcpbench doctor --json > doctor.json   (attach it to a bug report)",
    "gcpbench doctor --runs /scratch/runs   (free space where the runs go)",
)


@app.command(epilog=EPILOG)
def doctor(
    runs: Path = typer.Option(Path("runs"), "--runs", help="run directory root whose free disk space is reported", rich_help_panel=OUTPUT),
    as_json: bool = typer.Option(False, "--json", help="print the report as one JSON object", rich_help_panel=OUTPUT),
) -> None:
    """Check this installation: versions, CUDA / cuDNN / NCCL, GPUs, bf16 / TF32, mmcv's ops, DDP backends, disk.

    Exit code 0 when the core (layer, zoo, training, evaluation) works, 1 otherwise."""
    from gcpbench.doctor import collect

    report = collect(run_root=runs)
    if as_json:
        typer.echo(json.dumps(report.to_json(), indent=2))
    else:
        _render(report)
    if not report.core_ok:
        raise typer.Exit(1)


def _render(report) -> None:
    from rich.table import Table

    from gcpbench.cli.ui import stdout_console

    console = stdout_console(highlight=False)
    console.print(report.summary(), soft_wrap=True)
    facts = Table(show_header=False, box=None, pad_edge=False)
    facts.add_column(style="bold")
    facts.add_column()
    facts.add_row("python", f"{report.python} ({report.platform})")
    for name, version in report.versions.items():
        facts.add_row(name, version or "[red]not installed[/]")
    facts.add_row("core", "works" if report.core_ok else f"[red]broken[/]: {report.core_error}")
    facts.add_row("torch CUDA build", report.torch_cuda or "none (CPU build)")
    facts.add_row("NVIDIA driver", report.nvidia_driver or "none")
    facts.add_row("nvcc", f"{report.nvcc_release or '?'} at {report.nvcc}" if report.nvcc else "not found")
    facts.add_row("cuDNN", report.cudnn or "not available")
    facts.add_row("NCCL", report.nccl or "not available")
    facts.add_row("bf16 autocast", f"CPU {_yes(report.bf16_cpu)}, CUDA {_yes(report.bf16_cuda, 'no GPU')}")
    facts.add_row("TF32 tensor cores", _yes(report.tf32, "no GPU"))
    cuda = f" (compiled with CUDA {report.mmcv_ops_cuda})" if report.mmcv_ops_cuda else ""
    facts.add_row("mmcv ops", f"{report.mmcv_ops}{cuda}")
    for backend, state in report.ddp_backends.items():
        facts.add_row(f"DDP {backend}", state)
    for label, (folder, free) in report.disk_free_gib.items():
        facts.add_row(f"free disk ({label})", f"{free} GiB at {folder}")
    console.print(facts)
    if report.gpus:
        gpus = Table("GPU", "name", "compute capability", "memory GiB", "TF32")
        for gpu in report.gpus:
            gpus.add_row(str(gpu.index), gpu.name, gpu.capability, f"{gpu.memory_gib:.1f}", _yes(gpu.tf32))
        console.print(gpus)
    for problem in report.problems:
        console.print(f"[yellow]to fix[/]: {problem.what}\n    {problem.fix}", soft_wrap=True)
