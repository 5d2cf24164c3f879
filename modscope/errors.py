"""The one exception type modscope raises for bad input.

The CLI turns a [`ModscopeError`][modscope.errors.ModscopeError] into a single line on stderr and exit code 2;
anything else is a bug and keeps its traceback.
"""

__all__ = [
    "ModscopeError",
]


class ModscopeError(ValueError):
    """Bad input: a file, a shape, an option. The message is one line, fit for a user."""
