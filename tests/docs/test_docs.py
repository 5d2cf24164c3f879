"""The documentation's structure (issue 18): a short README front page with the generated region,
a site whose nav pages and snippet includes all exist, a pinned environment, and `--version`.
`make docs` builds the site itself with `mkdocs build --strict`; these checks need no MkDocs."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import modscope
from tests.conftest import require_extra
from tests.helpers.paths import ROOT

DOCS = ROOT / "docs"
README = (ROOT / "README.md").read_text()
INCLUDE = re.compile(r'^-{1,3}8<-{1,3}\s+"([^"]+)"\s*$', re.M)


def _pages() -> list[Path]:
    return sorted(p for p in DOCS.rglob("*.md") if "generated" not in p.relative_to(DOCS).parts)


def _nav_paths(nav) -> list[str]:
    out = []
    for item in nav:
        value = next(iter(item.values())) if isinstance(item, dict) else item
        out.extend(_nav_paths(value) if isinstance(value, list) else [value])
    return out


@pytest.fixture(scope="module")
def mkdocs_config() -> dict:
    require_extra("yaml")
    import yaml

    return yaml.safe_load((ROOT / "mkdocs.yml").read_text())


def test_readme_is_a_short_front_page():
    assert len(README.splitlines()) <= 200
    begin, end = "<!-- generated: score_example -->", "<!-- /generated -->"
    assert README.count(begin) == 1 and README.count(end) == 1
    assert README.index(begin) < README.index(end)
    assert "docs/index.md" in README  # the way into the documentation


def test_readme_links_point_at_files():
    for target in re.findall(r"\]\(([^)\s#]+)(?:#[^)]*)?\)", README):
        if not target.startswith(("http://", "https://")):
            assert (ROOT / target).exists(), target


def test_every_nav_page_exists(mkdocs_config):
    paths = _nav_paths(mkdocs_config["nav"])
    assert "index.md" in paths and "changelog.md" in paths
    for path in paths:
        if path.startswith("tutorials/"):  # served from notebooks/ by docs/hooks/notebooks.py
            assert (ROOT / "notebooks" / path.removeprefix("tutorials/")).is_file(), path
        else:
            assert (DOCS / path).is_file(), path
    # every docs page is in the nav (MkDocs --strict warns about omitted pages too)
    assert {p.relative_to(DOCS).as_posix() for p in _pages()} <= set(paths)


def test_every_tutorial_is_a_notebook_of_notebooks_dir(mkdocs_config):
    tutorials = [p for p in _nav_paths(mkdocs_config["nav"]) if p.startswith("tutorials/")]
    notebooks = sorted((ROOT / "notebooks").glob("*.ipynb"))
    assert notebooks and len(tutorials) == len(set(tutorials))
    # notebooks not listed are appended to the nav by the hook; the listed ones must exist
    assert {t.removeprefix("tutorials/") for t in tutorials} <= {p.name for p in notebooks}


def test_every_snippet_include_exists_and_every_fragment_is_shown():
    included = set()
    for page in _pages():
        for name in INCLUDE.findall(page.read_text()):
            if name.startswith("generated/"):
                assert (DOCS / name).is_file(), f"{page.name}: {name}"
                included.add(name.removeprefix("generated/"))
            else:
                assert (ROOT / name).is_file(), f"{page.name}: {name}"
    fragments = {p.name for p in (DOCS / "generated").glob("*.md")}
    assert fragments, "docs/generated holds the rendered result tables"
    assert fragments <= included, f"fragments no page shows: {sorted(fragments - included)}"


def test_snippets_config_resolves_generated_under_docs(mkdocs_config):
    ext = next(e for e in mkdocs_config["markdown_extensions"]
               if isinstance(e, dict) and "pymdownx.snippets" in e)["pymdownx.snippets"]
    assert ext["check_paths"] is True and "docs" in ext["base_path"]


def test_make_installs_from_the_lock_and_builds_the_docs_in_test():
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^test:.*\bdocs\b", makefile, re.M)
    assert re.search(r"^docs:", makefile, re.M) and "mkdocs build --strict" in makefile
    assert re.search(r"^lock:", makefile, re.M)
    assert "-c $(LOCK)" in makefile and "LOCK   := constraints.txt" in makefile
    pins = [line for line in (ROOT / "constraints.txt").read_text().splitlines()
            if line.strip() and not line.startswith("#")]
    assert pins and all(re.fullmatch(r"[A-Za-z0-9_.\-]+==[^\s=]+", line) for line in pins), pins
    names = {line.split("==")[0].lower() for line in pins}
    assert "torch" not in names and "modscope" not in names
    assert not any(n.startswith(("nvidia-", "cuda-")) for n in names)
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert "docs" in extras and "docs" in re.search(r"-e '\.\[([^\]]*)\]'", makefile).group(1).split(",")


def test_version_is_printed_and_consistent():
    out = subprocess.run([sys.executable, "-m", "modscope", "--version"], capture_output=True,
                         text=True, check=True, cwd=ROOT).stdout.strip()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert out == f"modscope {modscope.__version__}" == f"modscope {project}"
    changelog = (ROOT / "CHANGELOG.md").read_text()
    assert re.search(rf"^## {re.escape(project)}\b", changelog, re.M)


def test_readme_lists_exactly_the_public_api():
    text = (ROOT / "README.md").read_text()
    para = text[text.index("The public API is what `import modscope` gives"):]
    para = para[: para.index("\n\n")]
    assert set(re.findall(r"`([A-Za-z_]+)`", para)) - {"modscope"} == set(modscope.__all__)
