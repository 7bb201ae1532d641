"""The ``--model NAME --weights FILE`` options every evaluation command shares with ``--ckpt``."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from gcpbench.cli.choices import MODEL

MODEL_HELP = ("instead of --ckpt: a zoo name or timm/<name>, torchvision/<name> (GCP: add _gcp, _gcp128, _s1), "
              "with --weights")
WEIGHTS_HELP = "local weights for --model: timm .pth/.bin/.safetensors, torchvision .pth, gcpbench or iSQRT-COV checkpoint"


CKPT_HELP = "a gcpbench, original iSQRT-COV or torchvision checkpoint"


def ckpt_option(help: str = CKPT_HELP) -> Optional[Path]:
    return typer.Option(None, "--ckpt", help=help, rich_help_panel=MODEL)


def model_option() -> Optional[str]:
    return typer.Option(None, "--model", help=MODEL_HELP, rich_help_panel=MODEL)


def weights_option() -> Optional[Path]:
    return typer.Option(None, "--weights", help=WEIGHTS_HELP, rich_help_panel=MODEL)


def resolve(ckpt: Optional[Path], model: Optional[str], weights: Optional[Path]):
    """The model to evaluate (:func:`gcpbench.models.resolve.resolve_model`)."""
    from gcpbench.models.resolve import resolve_model

    return resolve_model(ckpt, model, weights)


def describe(resolved, quiet: bool = False, benchmark: bool = False) -> None:
    """Name, weights file, what was loaded and the preprocessing actually applied, on stderr
    (after the work, so that an input error stays one line); ``benchmark``: eval-c / -p / -cifar."""
    if not quiet:
        for line in resolved.lines(benchmark):
            typer.echo(line, err=True)
