"""The ``gcpbench`` command line: thin Typer commands over the library.

Each command group lives in its own module and registers itself on ``app``. Errors caused by
the user's input (:class:`gcpbench.errors.GcpbenchError`) print as one line, exit code 2.

Parsing and ``--help`` must stay fast (no torch): a command module imports at its top only the
standard library, typer / click / rich and the light ``gcpbench.cli`` helpers (``choices``,
``modelopts``, ``ui``), and everything else inside its command function
(docs/architecture.md, "Lazy imports"; tests/test_cli_conventions.py checks it).
"""
from __future__ import annotations

import contextlib
import logging
import re
import signal
import sys
import threading
import time
from typing import Iterator, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from gcpbench.errors import GcpbenchError, Interrupted

app = typer.Typer(
    name="gcpbench",
    help="Global covariance pooling research suite: train, evaluate (ImageNet, -C, -P), "
    "detect, fine-tune on fine-grained sets, measure the optimisation landscape, report.",
    no_args_is_help=True,
    add_completion=True,  # --install-completion / --show-completion for bash, zsh, fish, PowerShell
    pretty_exceptions_enable=False,
)
data_app = typer.Typer(help="Built-in synthetic data, dataset checks, ImageNet-C/-P generation.", no_args_is_help=True)
app.add_typer(data_app, name="data")
err_console = Console(stderr=True)


# Register the commands (each module adds its own to `app` / `data_app`).
from gcpbench.cli import zoo, train, finetune, evaluate, data, robustness, detect, landscape, report, sweep  # noqa: E402,F401
from gcpbench.cli import doctor  # noqa: E402,F401


INTERRUPTED = 130  # 128 + SIGINT, the shell's convention
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)  # Ctrl-C; a cluster's scheduler, `kill`, a CI timeout
KEPT = "finished results are kept; rerun the same command to resume"


_signal_seen: int | None = None
_first_signal_at = 0.0
REPEAT_WINDOW_S = 2.0  # a burst (the terminal's Ctrl-C to a process group plus a forwarded SIGTERM) stops once


def _on_stop_signal(signum: int, frame: object) -> None:
    """Ctrl-C or SIGTERM: remembered (a library that swallows KeyboardInterrupt, as matplotlib's
    rc parsing can, must not turn a stopped run into exit 0), then raised as KeyboardInterrupt, so
    that every ``finally`` and ``except KeyboardInterrupt`` cleans up (temporary files, locks,
    child processes) exactly as after Ctrl-C. A repeat within ``REPEAT_WINDOW_S`` seconds does
    not interrupt that cleanup."""
    global _signal_seen, _first_signal_at
    now = time.monotonic()
    if _signal_seen is not None and now - _first_signal_at < REPEAT_WINDOW_S:
        return
    if _signal_seen is None:
        _signal_seen, _first_signal_at = signum, now
    raise KeyboardInterrupt


@contextlib.contextmanager
def stop_signals() -> Iterator[None]:
    """Ctrl-C and SIGTERM raise KeyboardInterrupt inside the block (the main thread only)."""
    global _signal_seen
    _signal_seen = None
    Interrupted.latest = None
    previous = ({signum: signal.signal(signum, _on_stop_signal) for signum in STOP_SIGNALS}
                if threading.current_thread() is threading.main_thread() else {})
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def print_error(message: str) -> None:
    """One ``error: ...`` line on stderr, the message printed literally (no rich markup)."""
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)


def print_warning(message: str) -> None:
    """One ``warning: ...`` line on stderr, the message printed literally (no rich markup)."""
    err_console.print(f"[yellow]warning:[/] {escape(message)}", highlight=False, soft_wrap=True)


def _note(exc: BaseException | None) -> str:
    """What an :class:`Interrupted` anywhere in ``exc``'s chain says (what was kept, the command
    that continues), else the general note."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, Interrupted):
            return exc.note
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return Interrupted.latest.note if Interrupted.latest is not None else KEPT


def exit_interrupted(exc: BaseException | None = None) -> NoReturn:
    """The one line after Ctrl-C (exit 130) or SIGTERM (exit 143), then exit."""
    signum = _signal_seen or signal.SIGINT
    what = "interrupted" if signum == signal.SIGINT else f"terminated ({signal.Signals(signum).name})"
    err_console.print(f"[yellow]{what}[/]: {escape(_note(exc))}", highlight=False, soft_wrap=True)
    sys.exit(128 + signum)


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


def _print_version(value: bool) -> None:
    if value:
        from gcpbench import __version__

        typer.echo(f"gcpbench {__version__}")
        raise typer.Exit()


@app.callback()
def _global_options(
    version: bool = typer.Option(False, "--version", is_eager=True, callback=_print_version,
                                 help="print gcpbench's version and exit"),
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
    """Console-script entry point: exit 2 with one line for input errors, 130 on Ctrl-C, 143 on SIGTERM."""
    from gcpbench.runtime import matplotlib_config_dir

    install_logging()
    matplotlib_config_dir()  # a read-only $HOME: no message from matplotlib at every start
    with stop_signals():
        _run()


def _run() -> None:
    try:
        code = app(standalone_mode=False)  # typer returns 130 (does not raise) when interrupted
    except GcpbenchError as exc:
        print_error(str(exc))
        sys.exit(2)
    except KeyboardInterrupt as exc:
        exit_interrupted(exc)
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
    if code == INTERRUPTED or _signal_seen:
        exit_interrupted()
    if isinstance(code, int) and code:
        sys.exit(code)


if __name__ == "__main__":
    main()
