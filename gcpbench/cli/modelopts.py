"""The ``--model NAME --weights FILE`` options every evaluation command shares with ``--ckpt``."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

from gcpbench.cli.choices import MODEL

MODEL_HELP = ("instead of --ckpt: a zoo name or timm/<name>, torchvision/<name> (GCP: add _gcp, _gcp128, a normalisation _mpn, _log, ..., _s1), "
              "with --weights")
WEIGHTS_HELP = "local weights for --model: timm .pth/.bin/.safetensors, torchvision .pth, gcpbench or iSQRT-COV checkpoint"


CKPT_HELP = "a gcpbench, original iSQRT-COV or torchvision checkpoint"


def ckpt_option(help: str = CKPT_HELP) -> Optional[Path]:
    return typer.Option(None, "--ckpt", help=help, rich_help_panel=MODEL)


def model_option() -> Optional[str]:
    return typer.Option(None, "--model", help=MODEL_HELP, rich_help_panel=MODEL)


def weights_option() -> Optional[Path]:
    return typer.Option(None, "--weights", help=WEIGHTS_HELP, rich_help_panel=MODEL)


GCP_NORM_HELP = ("GCP normalisation: isqrt (iSQRT-COV), mpn (MPN-COV), log (O2P), mpa (MPA-Lya), bcnn (B-CNN), "
                 "cbp (compact bilinear), none (plain covariance), dropcov (DropCov) [default: isqrt; a zoo name's "
                 "_NAME suffix says it too]")


def gcp_norm_option() -> Optional[str]:
    return typer.Option(None, "--gcp-norm", help=GCP_NORM_HELP, rich_help_panel=MODEL)


def gcp_power_option() -> Optional[float]:
    return typer.Option(None, "--gcp-power", help="matrix power of --gcp-norm mpn [default: 0.5]", rich_help_panel=MODEL)


def cbp_dim_option() -> Optional[int]:
    return typer.Option(None, "--cbp-dim", help="projection size of --gcp-norm cbp [default: 8192]", rich_help_panel=MODEL)


def gcp_options(power: Optional[float], cbp_dim: Optional[int]) -> Optional[dict[str, Any]]:
    """The GCP method options the command line gave (None when it gave none)."""
    options = {k: v for k, v in (("power", power), ("proj_dim", cbp_dim)) if v is not None}
    return options or None


def resolve(ckpt: Optional[Path], model: Optional[str], weights: Optional[Path], gcp_norm: Optional[str] = None,
            options: Optional[dict[str, Any]] = None):
    """The model to evaluate (:func:`gcpbench.models.resolve.resolve_model`); ``gcp_norm`` must agree
    with the model's normalisation, ``options`` with its GCP options."""
    from gcpbench.models.resolve import resolve_model

    return resolve_model(ckpt, model, weights, gcp_norm=gcp_norm, gcp_options=options)


def describe(resolved, quiet: bool = False, benchmark: bool = False) -> None:
    """Name, weights file, what was loaded and the preprocessing actually applied, on stderr
    (after the work, so that an input error stays one line); ``benchmark``: eval-c / -p / -cifar."""
    if not quiet:
        for line in resolved.lines(benchmark):
            typer.echo(line, err=True)
