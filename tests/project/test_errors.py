"""`modscope.errors.first_line`: what every one-line refusal quotes of a library's error."""

import pytest

from modscope.errors import first_line


@pytest.mark.parametrize(("exc", "limit", "want"), [
    (ValueError("bad header\nat byte 12\n"), 200, "bad header"),
    (ValueError("  \n  indented second line"), 200, "indented second line"),
    (RuntimeError(""), 200, "RuntimeError"),  # no message: the type's name, never an IndexError
    (KeyError(), 200, "KeyError"),
    (OSError("x" * 500), 120, "x" * 120),
    (OSError("x" * 500), None, "x" * 500),
])
def test_first_line(exc, limit, want):
    assert first_line(exc, limit) == want
