"""The tests mirror the packages (issue 23): ``tests/<package>/test_*.py`` for each package of
modscope (``tests/graphs/tracing/`` for ``modscope.graphs.tracing``, ...), ``tests/datasets/`` for
``modscope.data`` (``tests/data/`` holds fixture files), plus the folders of tests that belong to no
package. A test file dropped at the top of ``tests/`` or in a folder named after nothing fails here."""

from __future__ import annotations

from tests.helpers.paths import ROOT, TESTS

PACKAGE = ROOT / "modscope"
# folders of tests that are not one package's: the docs, the repository's rules, shared helpers
NOT_A_PACKAGE = {"docs", "project", "helpers"}
# folders of files, not of tests
FILES = {"data", "golden"}
RENAMED = {"datasets": "data"}  # tests/data/ holds fixtures, so modscope.data's tests live here


def test_every_test_file_sits_in_the_folder_of_its_package():
    misplaced = []
    for path in sorted(TESTS.rglob("test_*.py")):
        parts = path.relative_to(TESTS).parts[:-1]
        if not parts:
            misplaced.append(f"{path.name}: at the top of tests/")
        elif parts[0] in FILES:
            continue  # fixtures (a make_fixtures.py script, ...) are not tests
        elif parts[0] in NOT_A_PACKAGE:
            if len(parts) > 1:
                misplaced.append(f"{'/'.join(parts)}/{path.name}: tests/{parts[0]}/ has no subfolders")
        elif not (PACKAGE / RENAMED.get(parts[0], parts[0]) / "/".join(parts[1:]) / "__init__.py").exists():
            misplaced.append(f"{'/'.join(parts)}/{path.name}: modscope has no package {'.'.join(parts)}")
    assert not misplaced, "tests/<package>/test_*.py, mirroring modscope's packages: " + "; ".join(misplaced)


def test_helpers_and_fixtures_are_where_the_tests_look():
    assert (TESTS / "conftest.py").is_file() and (TESTS / "helpers" / "nets.py").is_file()
    assert (TESTS / "data" / "formats").is_dir() and (TESTS / "golden").is_dir()
    stray = sorted(p.name for p in TESTS.glob("*.py") if p.name != "conftest.py")
    assert not stray, f"helpers go in tests/helpers/, tests in tests/<package>/: {stray}"


def test_every_test_file_the_docs_and_sources_name_exists():
    """A moved or renamed test file leaves no stale path in the docs, scripts or docstrings."""
    import re

    named = re.compile(r"\btests/[\w/]+\.py\b")
    texts = [ROOT / "README.md", ROOT / "ARCHITECTURE.md", ROOT / "Makefile", *(ROOT / "docs").rglob("*.md"),
             *(ROOT / "benchmarks" / "device").glob("*.sh")]
    for folder in ("modscope", "scripts", "benchmarks", "experiments", "tests", "docs"):
        texts += (ROOT / folder).rglob("*.py")
    stale = sorted({f"{p.relative_to(ROOT)}: {m}" for p in texts for m in named.findall(p.read_text())
                    if not (ROOT / m).is_file() and "test_foo" not in m})
    assert not stale, f"paths of test files that do not exist: {stale}"
