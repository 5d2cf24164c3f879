"""Where things are, for tests at any depth of ``tests/`` (the folders mirror modscope's packages,
so ``Path(__file__).parent`` differs from file to file: use these instead)."""

from __future__ import annotations

from pathlib import Path

__all__ = ["FIXTURES", "GOLDEN", "HELPERS", "ROOT", "TESTS"]

TESTS = Path(__file__).resolve().parents[1]
ROOT = TESTS.parent  # the repository: modscope/, data/, docs/, notebooks/
FIXTURES = TESTS / "data"  # files made once by the real libraries (families, formats, real weights)
GOLDEN = TESTS / "golden"  # the --json outputs refactorings must leave unchanged
HELPERS = TESTS / "helpers"
