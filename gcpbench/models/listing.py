"""Which names ``gcpbench zoo`` lists: the zoo's, or timm's / torchvision's."""
from __future__ import annotations

import fnmatch

from gcpbench.errors import GcpbenchError


def zoo_names(source: str = "zoo", pattern: str | None = None, only: list[str] | None = None) -> list[str]:
    """``only`` (checked), else every name of ``source`` matching ``pattern`` (none: a one-line error)."""
    from gcpbench.models.external import SOURCES, list_external, parse_name, is_external
    from gcpbench.models.registry import list_models, model_info

    if only:
        return [parse_name(n).name if is_external(n) else model_info(n).name for n in only]
    if source == "zoo":
        names = [n for n in list_models() if not pattern or fnmatch.fnmatch(n, pattern)]
    elif source in SOURCES:
        names = list_external(source, pattern)
    else:
        raise GcpbenchError(f"unknown --source '{source}': use zoo, timm or torchvision")
    if not names:
        raise GcpbenchError(f"no {source} model matches '{pattern}'")
    return names
