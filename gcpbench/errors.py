"""User-facing errors: one line that says what was wrong and how to fix it."""
from __future__ import annotations

import contextlib
import contextvars
import logging
from typing import Callable, Collection, Iterable, Iterator, TypeVar

T = TypeVar("T")


class GcpbenchError(Exception):
    """An error caused by the user's input; the CLI prints it as one line, no traceback."""


class InputShapeError(GcpbenchError, ValueError):
    """A tensor of the wrong shape handed to a layer (also a ``ValueError``, as torch's own are)."""


def require_positive(option: str, value: int | float | None) -> None:
    """Raise one line when an option that counts something (pixels, epochs, ...) is given as <= 0."""
    if value is not None and value <= 0:
        raise GcpbenchError(f"{option} must be a positive number, got {value}")


def require_known(values: Iterable[T], known: Collection[T], message: Callable[[T], str]) -> None:
    """Raise :class:`GcpbenchError` with ``message(value)`` for the first value not in ``known``."""
    for value in values:
        if value not in known:
            raise GcpbenchError(message(value))


def warn(text: str) -> None:
    """Log a warning (something the user should know; the run goes on): the command line shows
    it as one ``warning: ...`` line on stderr."""
    logging.getLogger("gcpbench").warning(text)


# How messages name an option: the command line's flag (``--gcp-dim 100``) by default, a Python
# argument (``gcp_dim=100``) inside API calls such as ``gcpbench.build`` (see :func:`api_spelling`).
_API_SPELLING: contextvars.ContextVar[bool] = contextvars.ContextVar("gcpbench_api_spelling", default=False)


def option(name: str, value: object = None) -> str:
    """``--gcp-dim 100`` on the command line, ``gcp_dim=100`` in an API call (``name`` in Python
    spelling; ``value`` omitted: the name alone)."""
    if _API_SPELLING.get():
        return name if value is None else f"{name}={value!r}"
    flag = "--" + name.replace("_", "-")
    return flag if value is None else f"{flag} {value}"


@contextlib.contextmanager
def api_spelling() -> Iterator[None]:
    """Within this block, errors name Python arguments instead of command-line flags."""
    token = _API_SPELLING.set(True)
    try:
        yield
    finally:
        _API_SPELLING.reset(token)


class Interrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM stopped the work (a ``KeyboardInterrupt``, so every cleanup path runs);
    ``note`` says what was kept and the exact command that continues: the command line prints it
    as its one ``interrupted: ...`` / ``terminated (SIGTERM): ...`` line."""

    latest: "Interrupted | None" = None  # typer returns exit code 130 and drops the exception: the CLI reads this

    def __init__(self, note: str) -> None:
        super().__init__(note)
        self.note = note
        Interrupted.latest = self
