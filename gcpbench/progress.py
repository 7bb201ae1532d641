"""Progress as a library hook: library code opens a bar, the front end decides how it shows.

Nothing is shown until a front end installs a bar factory (the command line installs rich
bars on stderr, :mod:`gcpbench.cli.ui`); used as a library, gcpbench draws nothing.
"""
from __future__ import annotations

import contextlib
from typing import Callable, ContextManager, Iterator

Advance = Callable[..., None]
BarFactory = Callable[[str, "int | None", str], ContextManager[Advance]]

_factory: BarFactory | None = None


def install(factory: BarFactory | None) -> BarFactory | None:
    """Show bars through ``factory(description, total, unit)`` (``None``: no bars); returns the previous one."""
    global _factory
    previous, _factory = _factory, factory
    return previous


def active() -> bool:
    """Whether a front end draws bars."""
    return _factory is not None


@contextlib.contextmanager
def progress_bar(description: str, total: int | None = None, enabled: bool = True,
                 unit: str = "") -> Iterator[Advance]:
    """Yield ``advance(n=1)``; ``total=None`` is a running count. Disabled, or with no front end
    installed, ``advance`` does nothing."""
    if not enabled or _factory is None:
        yield lambda n=1: None
        return
    with _factory(description, total, unit) as advance:
        yield advance
