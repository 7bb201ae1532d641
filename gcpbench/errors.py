"""User-facing errors: one line that says what was wrong and how to fix it."""
from __future__ import annotations


class GcpbenchError(Exception):
    """An error caused by the user's input; the CLI prints it as one line, no traceback."""
