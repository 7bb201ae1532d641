"""The option vocabulary the commands share: help panels and the options whose values are a
fixed set (shown as ``[a|b|c]`` in ``--help``, completed by the shell, checked while parsing).

This module is imported when the command line starts, so it imports nothing heavy: the value
sets are spelled here and ``tests/test_cli_conventions.py`` checks each one against the
library constant it mirrors (``train.schedules.SCHEDULES``, ``models.registry.FAMILIES``, ...).
"""
from __future__ import annotations

import difflib
import re
from typing import Any, Sequence

import click
import typer

# --help groups the options of a command under these panels (typer's rich_help_panel).
MODEL = "Model"
SCHEDULE = "Schedule"
DATA = "Data"
RUNTIME = "Runtime"
NUMERICS = "Numerics"  # precision and memory-format switches (their --no-X forms need a panel of their own at 80 columns)
OUTPUT = "Output"

HEADS = ("gap", "gcp")
SCHEDULES = ("LRnorm", "LRfast", "LRadju")
FAMILIES = ("resnet", "mobilenetv2", "shufflenetv2")
GCP_PRECISIONS = ("float32", "tf32")
FRAMEWORKS = ("faster_rcnn", "mask_rcnn")
DETECT_LAUNCHERS = ("none", "pytorch")
SWEEP_LAUNCHERS = ("local", "slurm", "submitit-local")
VARIANTS = ("v2", "sketch", "r", "a")
NPY_BENCHMARKS = ("cifar10-c", "cifar100-c", "cifar10-p")
SOURCES = ("zoo", "timm", "torchvision")
DEVICES = ("auto", "cpu", "cuda", "cuda:N")


def _hint(value: str, choices: Sequence[str]) -> str:
    lowered = {c.lower(): c for c in choices}
    match = difflib.get_close_matches(value.lower(), list(lowered), n=1, cutoff=0.4)
    return f" (did you mean '{lowered[match[0]]}'?)" if match else ""


class Choice(click.Choice):
    """A case-insensitive ``click.Choice`` that returns the canonical spelling and whose error
    names the closest choice: ``unknown schedule 'LRfats' (did you mean 'LRfast'?); choose from ...``."""

    def __init__(self, choices: Sequence[str], what: str) -> None:
        super().__init__(list(choices), case_sensitive=False)
        self.what = what

    def get_metavar(self, param: click.Parameter, ctx: click.Context | None = None) -> str:
        return "[" + "|".join(self.choices) + "]"  # as spelled, not case-folded

    def shell_complete(self, ctx: click.Context, param: click.Parameter, incomplete: str) -> list:
        from click.shell_completion import CompletionItem

        return [CompletionItem(c) for c in self.choices if c.lower().startswith(incomplete.lower())]

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        try:
            return super().convert(value, param, ctx)
        except click.BadParameter:
            self.fail(f"unknown {self.what} '{value}'{_hint(str(value), self.choices)}; choose from "
                      f"{', '.join(self.choices)}", param, ctx)


class Device(click.ParamType):
    """``auto``, ``cpu``, ``cuda`` or ``cuda:N`` (whether the device exists is checked when it is used)."""

    name = "device"
    _PATTERN = re.compile(r"^(auto|cpu|cuda|cuda:\d+)$")

    def get_metavar(self, param: click.Parameter, ctx: click.Context | None = None) -> str:
        return "[" + "|".join(DEVICES) + "]"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        text = str(value).strip().lower()
        if not self._PATTERN.match(text):
            self.fail(f"unknown device '{value}'{_hint(text, DEVICES[:3])}; use auto, cpu, cuda or cuda:N", param, ctx)
        return text

    def shell_complete(self, ctx: click.Context, param: click.Parameter, incomplete: str) -> list:
        from click.shell_completion import CompletionItem

        return [CompletionItem(d) for d in DEVICES[:3] if d.startswith(incomplete.lower())]


def choice(default: Any, flag: str, choices: Sequence[str], what: str, help: str, panel: str | None = None,
           **kwargs: Any) -> Any:
    """A typer option whose value is one of ``choices`` (returned as a ``str``)."""
    return typer.Option(default, flag, click_type=Choice(choices, what), help=help, rich_help_panel=panel, **kwargs)


def device_option(default: Any = "auto", help: str = "where to run", panel: str = RUNTIME) -> Any:
    """``--device auto|cpu|cuda|cuda:N``."""
    return typer.Option(default, "--device", click_type=Device(), help=help, rich_help_panel=panel)


QUIET_HELP = "only warnings, errors and the result: no info lines, no progress bars (as gcpbench --quiet CMD)"


def quiet_option() -> Any:
    """``--quiet``, one meaning in every command (:func:`apply_quiet` makes it so)."""
    return typer.Option(False, "--quiet", "-q", help=QUIET_HELP, rich_help_panel=OUTPUT)


def apply_quiet(quiet: bool) -> None:
    """A command's ``--quiet``: what ``gcpbench --quiet`` sets for every command."""
    if quiet:
        from gcpbench.cli import install_logging

        install_logging(quiet=True)


def json_option(what: str = "the result") -> Any:
    """``--json``: the command's result as JSON on stdout (nothing else there)."""
    return typer.Option(False, "--json", help=f"print {what} as JSON instead of a table", rich_help_panel=OUTPUT)


def workers_option() -> Any:
    """``--workers``: the same default rule in every command (:func:`gcpbench.runtime.loader_workers`)."""
    return typer.Option(None, "--workers", min=0, help="data-loading processes [default: CPU cores - 1, at most 8]",
                        rich_help_panel=RUNTIME)


def examples(*lines: str) -> str:
    """A command's epilog: two or three example command lines, each on its own line in --help."""
    return "Examples:\n\n" + "\n\n".join(f"  {line}" for line in lines)
