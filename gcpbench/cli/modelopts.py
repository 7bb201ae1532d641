"""The ``--model NAME --weights FILE`` options every evaluation command shares with ``--ckpt``."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

MODEL_HELP = ("instead of --ckpt: a zoo name or timm/<name>, torchvision/<name> (GCP: add _gcp, _gcp128, _s1), "
              "with --weights")
WEIGHTS_HELP = "local weights for --model: timm .pth/.bin/.safetensors, torchvision .pth, gcpbench or iSQRT-COV checkpoint"


def model_option() -> Optional[str]:
    return typer.Option(None, "--model", help=MODEL_HELP)


def weights_option() -> Optional[Path]:
    return typer.Option(None, "--weights", help=WEIGHTS_HELP)


def resolve(ckpt: Optional[Path], model: Optional[str], weights: Optional[Path]):
    """The model to evaluate (:func:`gcpbench.models.resolve.resolve_model`)."""
    from gcpbench.models.resolve import resolve_model

    return resolve_model(ckpt, model, weights)


def describe(resolved, quiet: bool = False) -> None:
    """Name, weights file, what was loaded and the preprocessing, on stderr (after the work, so
    that an input error stays one line)."""
    if not quiet:
        for line in resolved.lines():
            typer.echo(line, err=True)
