"""The ``gcpbench`` command line: thin Typer commands over the library.

Each command group lives in its own module and registers itself on ``app``. Errors caused by
the user's input (:class:`gcpbench.errors.GcpbenchError`) print as one line, exit code 2.
"""
from __future__ import annotations

import sys

import typer
from rich.console import Console

from gcpbench.errors import GcpbenchError

app = typer.Typer(
    name="gcpbench",
    help="Global covariance pooling research suite: train, evaluate (ImageNet, -C, -P), "
    "detect, measure the optimisation landscape, report.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
data_app = typer.Typer(help="Built-in synthetic data, dataset checks, ImageNet-C/-P generation.", no_args_is_help=True)
app.add_typer(data_app, name="data")
err_console = Console(stderr=True)


# Register the commands (each module adds its own to `app` / `data_app`).
from gcpbench.cli import zoo, train, evaluate, data, robustness, detect, landscape, report, sweep  # noqa: E402,F401


def main() -> None:
    """Console-script entry point."""
    try:
        app(standalone_mode=False)
    except GcpbenchError as exc:
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except KeyboardInterrupt:
        err_console.print("[yellow]interrupted[/]: finished results are kept; rerun the same command to resume")
        sys.exit(130)
    except SystemExit:
        raise
    except Exception as exc:  # click usage errors keep their own formatting
        import click

        if isinstance(exc, click.exceptions.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        if isinstance(exc, click.exceptions.Abort):
            sys.exit(1)
        raise


if __name__ == "__main__":
    main()
