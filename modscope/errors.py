"""The one exception type modscope raises for bad input.

The CLI turns a [`ModscopeError`][modscope.errors.ModscopeError] into a single line on stderr and exit code 2;
anything else is a bug and keeps its traceback.
"""

__all__ = [
    "ModscopeError",
    "first_line",
]


class ModscopeError(ValueError):
    """Bad input: a file, a shape, an option. The message is one line, fit for a user."""


def first_line(exc: BaseException, limit: int | None = 200) -> str:
    """The first line of an exception's message, or its type's name when it has none; at most
    ``limit`` characters (``None``: all). What a one-line refusal quotes of a library's error."""
    lines = str(exc).strip().splitlines()
    return (lines[0] if lines else type(exc).__name__)[:limit]
