"""The ``gcpbench`` command line: thin Typer commands over the library.

Each command group lives in its own module and registers itself on ``app``. Errors caused by
the user's input (:class:`gcpbench.errors.GcpbenchError`) print as one line, exit code 2.
"""
from __future__ import annotations

import logging
import re
import signal
import sys
import threading

import typer
from rich.console import Console
from rich.markup import escape

from gcpbench.errors import GcpbenchError

app = typer.Typer(
    name="gcpbench",
    help="Global covariance pooling research suite: train, evaluate (ImageNet, -C, -P), "
    "detect, fine-tune on fine-grained sets, measure the optimisation landscape, report.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
data_app = typer.Typer(help="Built-in synthetic data, dataset checks, ImageNet-C/-P generation.", no_args_is_help=True)
app.add_typer(data_app, name="data")
err_console = Console(stderr=True)


# Register the commands (each module adds its own to `app` / `data_app`).
from gcpbench.cli import zoo, train, finetune, evaluate, data, robustness, detect, landscape, report, sweep  # noqa: E402,F401
from gcpbench.cli import doctor  # noqa: E402,F401


INTERRUPTED = 130  # 128 + SIGINT, the shell's convention


_SIGINT_SEEN = False


def _on_sigint(signum: int, frame: object) -> None:
    """Ctrl-C: remembered (a library that swallows KeyboardInterrupt, as matplotlib's rc parsing
    can, must not turn an interrupted run into exit 0), then raised as usual."""
    global _SIGINT_SEEN
    _SIGINT_SEEN = True
    raise KeyboardInterrupt


def print_error(message: str) -> None:
    """One ``error: ...`` line on stderr, the message printed literally (no rich markup)."""
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)


def print_warning(message: str) -> None:
    """One ``warning: ...`` line on stderr, the message printed literally (no rich markup)."""
    err_console.print(f"[yellow]warning:[/] {escape(message)}", highlight=False, soft_wrap=True)


def _interrupted() -> None:
    err_console.print("[yellow]interrupted[/]: finished results are kept; rerun the same command to resume")
    sys.exit(INTERRUPTED)


class _LineHandler(logging.Handler):
    """Library warnings as one ``warning: ...`` line each on stderr (info lines plain)."""

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.WARNING:
            print_warning(record.getMessage())
        else:
            err_console.print(escape(record.getMessage()), highlight=False, soft_wrap=True)


def install_logging(quiet: bool = False, verbose: bool = False) -> None:
    """Library log lines to the user (one ``warning: ...`` line per warning), progress bars on
    stderr; ``quiet``: warnings and errors only, no bars; ``verbose``: debug lines too."""
    from gcpbench.cli.ui import configure

    logger = logging.getLogger("gcpbench")
    if not any(isinstance(h, _LineHandler) for h in logger.handlers):
        logger.addHandler(_LineHandler())
    configure(quiet, verbose)


@app.callback()
def _global_options(
    quiet: bool = typer.Option(False, "--quiet",
                               help="every command: only warnings, errors and results (no info lines, no progress bars)"),
    verbose: bool = typer.Option(False, "--verbose", help="every command: debug lines too"),
) -> None:
    """Global covariance pooling research suite: train, evaluate (ImageNet, -C, -P), detect,
    fine-tune on fine-grained sets, measure the optimisation landscape, report."""
    if quiet and verbose:
        raise GcpbenchError("--quiet and --verbose contradict each other: pass one")
    install_logging(quiet, verbose)


def main() -> None:
    """Console-script entry point: exit 2 with one line for input errors, 130 on Ctrl-C."""
    global _SIGINT_SEEN
    install_logging()
    _SIGINT_SEEN = False
    previous = signal.signal(signal.SIGINT, _on_sigint) if threading.current_thread() is threading.main_thread() else None
    try:
        _run()
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)


def _run() -> None:
    try:
        code = app(standalone_mode=False)  # click returns 130 (does not raise) when interrupted
    except GcpbenchError as exc:
        print_error(str(exc))
        sys.exit(2)
    except KeyboardInterrupt:
        _interrupted()
    except SystemExit:
        raise
    except Exception as exc:
        import click

        if isinstance(exc, click.exceptions.ClickException):  # usage errors: one line too
            ctx = getattr(exc, "ctx", None)
            hint = f"; see `{ctx.command_path} --help`" if ctx is not None else ""
            message = re.sub(r"( Did you mean [^?]*\?)\1+", r"\1", exc.format_message()).rstrip(".")
            print_error(message + hint)
            sys.exit(exc.exit_code)
        if isinstance(exc, click.exceptions.Abort):
            sys.exit(1)
        raise
    if code == INTERRUPTED or _SIGINT_SEEN:
        _interrupted()
    if isinstance(code, int) and code:
        sys.exit(code)


if __name__ == "__main__":
    main()
