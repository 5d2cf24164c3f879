"""The markers of optional extras (tests/conftest.py): a test whose extra is missing is skipped with
the way to install it, and fails under MODSCOPE_STRICT_EXTRAS=1 (make test, CI). The missing extra is
simulated by blocking its module in sys.modules or emptying PATH, in a pytest run inside this one."""

from __future__ import annotations

import sys

import pytest

from tests.conftest import EXTRAS, HIDE_ENV, NOT_INSTALLED, STRICT_ENV, importable, missing_extra
from tests.helpers import paths

pytest_plugins = ["pytester"]

CONFTEST = (paths.TESTS / "conftest.py").read_text()
TESTS = """
import pytest

@pytest.mark.igraph
def test_needs_igraph():
    import igraph

@pytest.mark.chromium
def test_needs_a_browser():
    pass

@pytest.mark.parametrize("x", [pytest.param(1, marks=pytest.mark.onnx), 2])
def test_one_case_needs_onnx(x):
    if x == 1:
        import onnx

def test_needs_nothing():
    pass
"""


@pytest.fixture
def inner(pytester, monkeypatch):
    """A pytest run with this conftest where igraph, onnx and every browser are missing."""
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_inner=TESTS)
    for module in ("igraph", "onnx"):
        monkeypatch.setitem(sys.modules, module, None)  # `import igraph` raises ImportError
    monkeypatch.setenv("PATH", str(pytester.path))  # no chromium on PATH
    return pytester


def test_a_missing_extra_is_skipped_with_the_way_to_install_it(inner, monkeypatch):
    monkeypatch.delenv(STRICT_ENV, raising=False)
    result = inner.runpytest_inprocess("-rs", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, skipped=3)
    out = result.stdout.str()
    assert "needs the optional 'igraph' extra (igraph missing): pip install 'modscope[community]'" in out
    assert "needs the optional 'chromium' extra (a headless browser missing)" in out
    assert "needs the optional 'onnx' extra (onnx missing): pip install 'modscope[onnx]'" in out


def test_strict_mode_turns_each_missing_extra_into_a_failure(inner, monkeypatch):
    monkeypatch.setenv(STRICT_ENV, "1")
    result = inner.runpytest_inprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, errors=3)
    result.stdout.fnmatch_lines([f"*{STRICT_ENV}=1: a missing extra fails*"])


def test_missing_extra_names_exactly_what_is_absent(monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)
    reason = missing_extra("dask")
    assert reason is not None and "pip install 'modscope[distributed]'" in reason
    named = reason[reason.index("(") + 1:reason.index(" missing)")].split(", ")
    assert "distributed" in named and ("dask" in named) == (not importable("dask"))


def test_every_extra_marker_is_used_and_every_pip_extra_is_named():
    """A marker no test carries is dead; the pyproject extras each have a marker that installs them."""
    import tomllib

    root = paths.ROOT
    tests = paths.TESTS.rglob("test_*.py")
    used = "\n".join(p.read_text() for p in tests if p.name != "test_extras.py")
    for marker in EXTRAS:
        if marker != "mkdocs":  # the docs build runs in `make docs`, not as a test
            assert f"mark.{marker}" in used or f'"{marker}"' in used, marker
    extras = tomllib.loads((root / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    hints = " ".join(how for _, how in EXTRAS.values())
    for name in ("community", "distributed", "onnx", "keras", "dev", "docs"):
        assert name in extras and f"modscope[{name}]" in hints, name


def test_markers_left_out_of_strict_mode_name_libraries_no_extra_installs():
    """Strict mode lets only a library skip that `make install` cannot give (no extra lists it)."""
    import tomllib

    extras = tomllib.loads((paths.ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    listed = " ".join(req for reqs in extras.values() for req in reqs).lower()
    assert NOT_INSTALLED <= set(EXTRAS)
    for marker in NOT_INSTALLED:
        for module in EXTRAS[marker][0]:
            assert module not in listed, f"{module} is in an extra: take {marker!r} out of NOT_INSTALLED"


HIDDEN = """
import pytest

@pytest.mark.onnx
def test_needs_onnx():
    import onnx

def test_onnx_does_not_import():
    with pytest.raises(ImportError):
        import onnx

@pytest.mark.chromium
def test_needs_a_browser():
    pass

@pytest.mark.transformers
def test_needs_transformers():
    import transformers
"""


def test_hidden_extras_are_missing_even_where_installed(pytester, monkeypatch):
    """MODSCOPE_HIDE_EXTRAS simulates a venv without those extras (how the markers were checked);
    strict mode then fails their tests, except those of libraries no extra installs."""
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_hidden=HIDDEN)
    monkeypatch.setenv(HIDE_ENV, "onnx,chromium,transformers")
    monkeypatch.delenv(STRICT_ENV, raising=False)
    pytester.runpytest_inprocess("-p", "no:cacheprovider").assert_outcomes(passed=1, skipped=3)
    monkeypatch.setenv(STRICT_ENV, "1")
    pytester.runpytest_inprocess("-p", "no:cacheprovider").assert_outcomes(passed=1, skipped=1, errors=2)
    monkeypatch.setenv(HIDE_ENV, "onnx,nonsense")
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "unknown ['nonsense']" in result.stderr.str()
