"""User-facing errors: one line that says what was wrong and how to fix it."""
from __future__ import annotations

import logging
from typing import Callable, Collection, Iterable, TypeVar

T = TypeVar("T")


class GcpbenchError(Exception):
    """An error caused by the user's input; the CLI prints it as one line, no traceback."""


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


class Interrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM stopped the work (a ``KeyboardInterrupt``, so every cleanup path runs);
    ``note`` says what was kept and the exact command that continues: the command line prints it
    as its one ``interrupted: ...`` / ``terminated (SIGTERM): ...`` line."""

    latest: "Interrupted | None" = None  # typer returns exit code 130 and drops the exception: the CLI reads this

    def __init__(self, note: str) -> None:
        super().__init__(note)
        self.note = note
        Interrupted.latest = self
