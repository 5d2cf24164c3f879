"""Every runnable Python snippet of the README and of the documentation pages runs as written, from
the repository root. Runnable snippets are fenced ```python; illustrative ones (names you would
fill in) are fenced ```py and are not run."""

import re

import pytest

from tests.helpers.paths import ROOT

PAGES = [ROOT / "README.md"] + sorted(
    p for p in (ROOT / "docs").rglob("*.md") if "generated" not in p.relative_to(ROOT / "docs").parts
)
SNIPPETS = [
    (page.relative_to(ROOT).as_posix(), i, code)
    for page in PAGES
    for i, code in enumerate(re.findall(r"^```python\n(.*?)^```", page.read_text(), flags=re.S | re.M))
]


def test_the_readme_and_the_docs_have_snippets():
    pages = {name for name, _, _ in SNIPPETS}
    assert "README.md" in pages
    assert {"docs/getting-started.md", "docs/guide/scoring.md", "docs/guide/masks.md",
            "docs/guide/knockouts.md", "docs/guide/training.md"} <= pages


@pytest.mark.parametrize("name,code", [(name, code) for name, _, code in SNIPPETS],
                         ids=[f"{name}:{i}" for name, i, _ in SNIPPETS])
def test_snippet_runs(name, code, monkeypatch):
    monkeypatch.chdir(ROOT)
    exec(compile(code, name, "exec"), {"__name__": "docs_snippet"})
