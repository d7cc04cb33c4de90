"""The one exception type users see, and the wording of counts in one-line messages.

Anything the user can fix (a bad path, a bad value, a broken file) is raised as a
``RotoscopeError`` whose message is a single line naming the thing and the fix. The CLI
prints that line and exits non-zero; a traceback is shown only with ``runtime.verbose``.
"""

from __future__ import annotations


class RotoscopeError(Exception):
    """A problem with the user's input or environment, with a one-line explanation."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        self.message = message
        self.hint = hint
        super().__init__(f"{message} ({hint})" if hint else message)


def plural(count: int, noun: str) -> str:
    """``1 frame``, ``2 frames``: counts in user-facing lines read as English."""
    return f"{count} {noun}" + ("" if count == 1 else "s")
