"""``--config FILE.toml``: every option of a command from a file, the command line overriding it.

The file's keys are the command's option names, with ``_`` or ``-`` (``weight_decay = 5e-5``,
``"batch-size" = 128``, ``arch = "resnet50"``); they become click's ``default_map``, so each
value is checked and converted exactly as on the command line, and an option given on the
command line wins. An unknown key is one line naming the closest option (exit 2).
"""
from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, Optional

import click
import typer

from gcpbench.errors import GcpbenchError


def read_config_file(path: Path) -> dict[str, Any]:
    """The TOML table of ``path`` (one line for a missing or malformed file)."""
    import tomllib

    if not path.is_file():
        raise GcpbenchError(f"--config '{path}' does not exist")
    try:
        return tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise GcpbenchError(f"--config '{path}' is not valid TOML: {exc}") from None


def _keys(ctx: click.Context) -> dict[str, str]:
    """File key -> parameter name: each option's long name without dashes (``weight_decay``,
    ``json``), each argument's name (``arch``); never ``config`` itself."""
    keys: dict[str, str] = {}
    for param in ctx.command.params:
        if not param.name or not param.expose_value or param.name in ("config", "help"):
            continue
        longs = [o for o in param.opts if o.startswith("--")]
        keys[(longs[0][2:] if longs else param.name).replace("-", "_")] = param.name
    return keys


def defaults_from_file(ctx: click.Context, path: Path) -> dict[str, Any]:
    """The file's values keyed by the command's parameter names; unknown keys raise."""
    keys = _keys(ctx)
    values: dict[str, Any] = {}
    for key, value in read_config_file(path).items():
        name = keys.get(key.replace("-", "_"))
        if name is None:
            match = difflib.get_close_matches(key.replace("-", "_"), list(keys), n=1, cutoff=0.5)
            hint = f" (did you mean '{match[0]}'?)" if match else ""
            raise GcpbenchError(f"--config '{path}': unknown key '{key}'{hint}; keys are the options of "
                                f"`{ctx.command_path}`: {', '.join(sorted(keys))}")
        if isinstance(value, dict):
            raise GcpbenchError(f"--config '{path}': '{key}' is a table; give a plain value")
        values[name] = value
    return values


def _load(ctx: click.Context, param: click.Parameter, value: Optional[Path]) -> Optional[Path]:
    if value is not None and not ctx.resilient_parsing:
        ctx.default_map = {**(ctx.default_map or {}), **defaults_from_file(ctx, Path(value))}
    return value


def config_option() -> Any:
    """The ``--config`` option (eager: read before every other option takes its value)."""
    return typer.Option(None, "--config", is_eager=True, callback=_load,
                        help="a TOML file of this command's options (keys as option names, e.g. weight_decay = "
                             "5e-5); options on the command line override it")
