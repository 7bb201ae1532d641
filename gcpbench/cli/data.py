"""`gcpbench data synth` and `gcpbench data check`."""
from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Optional

import typer

from gcpbench.cli import data_app
from gcpbench.cli.choices import DATA, OUTPUT, apply_quiet, examples, quiet_option
from gcpbench.data.synthetic_defaults import DEFAULTS
from gcpbench.errors import GcpbenchError


class Task(str, Enum):
    classification = "classification"
    detection = "detection"


SYNTH_EPILOG = examples(
    "gcpbench data synth   (the default set, cached; train and eval use it without --data)",
    "gcpbench data synth --out tiny --classes 4 --size 32 --train-per-class 20 --val-per-class 5",
    "gcpbench data synth --task detection --out coco_tiny",
)


@data_app.command(epilog=SYNTH_EPILOG)
def synth(
    task: Task = typer.Option(Task.classification, "--task", help="classification (ImageFolder) or detection (COCO format; uses only --out, --seed, --force)", rich_help_panel=DATA),
    classes: int = typer.Option(DEFAULTS["num_classes"], "--classes", help="number of classes (pairs share mean colour, differ in channel correlation)", rich_help_panel=DATA),
    size: int = typer.Option(DEFAULTS["image_size"], "--size", help="image side in pixels", rich_help_panel=DATA),
    train_per_class: int = typer.Option(DEFAULTS["train_per_class"], "--train-per-class", rich_help_panel=DATA),
    val_per_class: int = typer.Option(DEFAULTS["val_per_class"], "--val-per-class", rich_help_panel=DATA),
    seed: int = typer.Option(DEFAULTS["seed"], "--seed", rich_help_panel=DATA),
    out: Optional[Path] = typer.Option(None, "--out", help="output folder [default: the cache, under $GCPBENCH_CACHE]", rich_help_panel=OUTPUT),
    force: bool = typer.Option(False, "--force", help="replace an existing non-empty --out folder", rich_help_panel=OUTPUT),
    quiet: bool = quiet_option(),
) -> None:
    """Generate the built-in synthetic datasets (deterministic by --seed)."""
    apply_quiet(quiet)
    from gcpbench.data import synthetic
    from gcpbench.paths import require_writable

    require_writable(out if out is not None else synthetic.default_root(), "choose another --out or set GCPBENCH_CACHE")
    if task is Task.detection:
        from gcpbench.data.synthetic_coco import make_detection_set

        target = out or synthetic.default_root() / "coco"
        make_detection_set(target, seed=seed, overwrite=force)
        typer.echo(f"wrote the synthetic COCO-format detection set to {target} (seed {seed})")
        return
    target, cached = synthetic.synthesize_classification_set(
        out, force, quiet, num_classes=classes, image_size=size, train_per_class=train_per_class,
        val_per_class=val_per_class, seed=seed)
    typer.echo(f"{f'synthetic set ready at {target}' if cached else f'wrote {target}'}: {classes} classes x "
               f"({train_per_class} train + {val_per_class} val) images at {size} px (seed {seed})")


CHECK_EPILOG = examples(
    "gcpbench data check imagenet /data/imagenet",
    "gcpbench data check imagenet-c /data/imagenet-c --only fog,snow --full",
    "gcpbench data check imagefolder my_tree --structure-only",
)


@data_app.command(epilog=CHECK_EPILOG)
def check(
    name: str = typer.Argument(..., help="imagenet, imagenet-c, imagenet-p, imagenet-v2, imagenet-sketch, imagenet-r, imagenet-a, coco, cub, aircraft, cars, or imagefolder (structure only)", show_default=False),
    root: Path = typer.Argument(..., help="the dataset's root folder", show_default=False),
    full: bool = typer.Option(False, "--full", help="also count the files (slow on the real datasets)", rich_help_panel=DATA),
    structure_only: bool = typer.Option(False, "--structure-only",
                                        help="check the layout, not the manifest's names and counts (user-made trees)",
                                        rich_help_panel=DATA),
    only: Optional[str] = typer.Option(None, "--only", help="comma-separated first-level folders to check, e.g. fog,snow or val", rich_help_panel=DATA),
    quiet: bool = quiet_option(),
) -> None:
    """Validate a dataset tree against data_manifests/ (exit 2 naming the first missing or extra folder)."""
    apply_quiet(quiet)
    from gcpbench.data.manifests import check_tree

    subset = [part.strip() for part in only.split(",") if part.strip()] if only else None
    report = check_tree(name, root, full=full, only=subset, structure_only=structure_only, raise_on_error=False,
                        progress=not quiet)
    if not quiet:
        _print_table(report)
    if not report.ok:
        raise GcpbenchError(report.summary())
    typer.echo(report.summary())


def _print_table(report) -> None:
    """Per first-level folder: status, and with --full the files found / expected."""
    if not report.top:
        return
    from gcpbench.cli.ui import stdout_console
    from rich.table import Table

    console = stdout_console()
    console.print(f"[bold]{report.title}[/]: {report.root}", highlight=False)
    table = Table()
    table.add_column("folder")
    table.add_column("status")
    if report.full:
        table.add_column("files", justify="right")
        table.add_column("expected", justify="right")
    for folder, status in report.top.items():
        style = "green" if status.startswith("ok") else "red"
        row = [folder, f"[{style}]{status}[/]"]
        if report.full:
            keys = [k for k in report.images if k == folder or k.startswith(folder + "/")]
            found = sum(report.images[k] for k in keys)
            wanted = [report.expected.get(k) for k in keys]
            expected = f"{sum(wanted):,}" if keys and all(w is not None for w in wanted) else "-"
            row += [f"{found:,}" if keys else "-", expected]
        table.add_row(*row)
    console.print(table)
