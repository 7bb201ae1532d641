"""Options given beside a model name must agree with what the name already says.

A zoo name (``resnet34_gcp``) fixes its head and GCP size; a timm / torchvision name fixes what
its suffixes say (``_gcp128``, ``_s1``). An option that says something else (``resnet34_gcp
--head gap``) is refused in one line instead of one of the two silently winning. Every place
that turns a name plus options into a model calls :func:`check_agrees`; a new option that a
name can imply (e.g. a GCP normalisation) is one more entry in :data:`FLAGS` and in the
``implied`` mapping of the name.
"""
from __future__ import annotations

from typing import Any, Callable, Mapping

from gcpbench.errors import GcpbenchError
from gcpbench.errors import option as spelled

# option -> how the command line spells it (sweep specs use the same names as keys)
FLAGS: dict[str, str] = {"head": "--head", "gcp_dim": "--gcp-dim", "gcp_norm": "--gcp-norm",
                         "last_stride_one": "--last-stage-stride-1"}
NOT_APPLICABLE = None  # an implied value meaning "this option does not apply to the model"


def _flag(option: str) -> str:
    """The option's name as the caller spells it: ``--gcp-dim`` on the command line, ``gcp_dim``
    in an API call (:func:`gcpbench.errors.api_spelling`)."""
    plain = spelled(option)
    return FLAGS.get(option, plain) if plain.startswith("--") else plain


def _shown(option: str, value: Any) -> str:
    flag = _flag(option)
    if not flag.startswith("--"):
        return f"{flag}={value!r}"
    if isinstance(value, bool):
        return flag if value else f"--no-{flag[2:]}"
    return f"{flag} {value}"


def check_agrees(name: str, implied: Mapping[str, Any], given: Mapping[str, Any],
                 alternative: Callable[[str, Any], str | None] | None = None) -> None:
    """Refuse (one line) an option in ``given`` (None: not given) that contradicts ``implied``,
    what ``name`` says (options the name says nothing about are not in ``implied``);
    ``alternative(option, value)`` names the model that has ``value``, when there is one."""
    for option, value in given.items():
        if value is None or option not in implied:
            continue
        wanted = implied[option]
        if isinstance(value, str):
            value = value.lower()
        if wanted is NOT_APPLICABLE:
            raise GcpbenchError(f"{_shown(option, value)} applies to GCP heads only, and {name} has a GAP head: "
                                f"add {_shown('head', 'gcp')} or drop {_flag(option)}")
        if value != wanted:
            other = alternative(option, value) if alternative is not None else None
            instead = f", or name {other}" if other else ""
            raise GcpbenchError(f"'{name}' means {_shown(option, wanted)}, but {_shown(option, value)} was given: "
                                f"drop {_flag(option)}{instead}")
