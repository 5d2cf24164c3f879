"""The line count of issue 23 (benchmarks/code_lines.py): what "the same features" leaves out."""

from __future__ import annotations

import sys

import pytest

from tests.helpers.paths import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))
import code_lines  # noqa: E402

SOURCE = '''import x

LIMIT = 3
WIDE: int = 4


@decorator
def new_one(a):
    return a + LIMIT


class Old:
    """Kept."""

    def method(self):
        return 1


def old():
    return 2
'''


def test_top_level_spans_include_decorators_and_assigned_names():
    spans = code_lines.top_level(SOURCE)
    assert spans["LIMIT"] == (3, 3)
    assert spans["WIDE"] == (4, 4)
    assert spans["new_one"] == (7, 9)  # from its decorator
    assert spans["Old"] == (12, 16)
    assert "method" not in spans  # only the module's own names


def test_same_features_drops_the_lines_of_new_parts_and_new_files(monkeypatch):
    monkeypatch.setattr(code_lines, "NEW_FEATURES", {"modscope/new.py": "99: new"})
    monkeypatch.setattr(code_lines, "NEW_FEATURE_PARTS", {"modscope/mixed.py": ("99", ("new_one", "WIDE"))})
    kept = code_lines.same_features({"modscope/mixed.py": SOURCE, "modscope/new.py": "y = 1\n"})
    assert set(kept) == {"modscope/mixed.py"}
    text = kept["modscope/mixed.py"]
    assert "new_one" not in text and "WIDE" not in text and "@decorator" not in text
    assert "LIMIT = 3" in text and "def old" in text and "def method" in text
    assert code_lines.code_lines(SOURCE) - code_lines.code_lines(text) == 4  # WIDE, @, def, return
    compile(text, "mixed.py", "exec")  # still a module


def test_a_part_that_is_not_defined_is_an_error(monkeypatch):
    monkeypatch.setattr(code_lines, "NEW_FEATURE_PARTS", {"modscope/mixed.py": ("99", ("gone",))})
    with pytest.raises(SystemExit, match="no top-level gone"):
        code_lines.same_features({"modscope/mixed.py": SOURCE})


def test_the_lists_name_what_today_holds():
    """Every new-feature file and part exists, so the receipt's list cannot rot silently."""
    today = code_lines.sources(None)
    assert set(code_lines.NEW_FEATURES) <= set(today)
    assert set(code_lines.NEW_FEATURE_PARTS) <= set(today)
    code_lines.same_features(today)  # raises on a part that is gone
