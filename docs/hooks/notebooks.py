"""MkDocs hook: the notebooks in ``notebooks/`` become the pages ``tutorials/<name>.ipynb``.

The notebooks stay where the tests run them (``notebooks/``, committed with the outputs that
``scripts/execute_notebooks.py`` writes and ``tests/docs/test_notebooks.py`` checks are current); this hook
adds each one to the site's files under ``tutorials/`` before mkdocs-jupyter turns ``.ipynb`` files
into pages, which it renders with those outputs, without executing them. Nothing is copied or
linked in the work tree, so a fresh clone builds the same site on any system, and ``mkdocs serve`` rebuilds
when a notebook changes (``watch: [notebooks]`` in mkdocs.yml). A notebook that the nav's "Tutorials" section
does not list yet is appended to it, titled by its first heading, so a new notebook never breaks the
build.
"""

from __future__ import annotations

from pathlib import Path

from mkdocs.plugins import CombinedEvent, event_priority
from mkdocs.structure.files import File, Files

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
PREFIX = "tutorials/"


def on_config(config):
    for item in config["nav"] or []:
        if isinstance(item, dict) and "Tutorials" in item:
            section = item["Tutorials"]
            listed = {next(iter(e.values())) if isinstance(e, dict) else e for e in section}
            section.extend(PREFIX + path.name for path in sorted(NOTEBOOKS.glob("*.ipynb"))
                           if PREFIX + path.name not in listed)
    return config


@event_priority(100)  # before mkdocs-jupyter's on_files, which makes .ipynb files pages
def add_notebooks(files: Files, config) -> Files:
    for path in sorted(NOTEBOOKS.glob("*.ipynb")):
        files.append(File.generated(config, PREFIX + path.name, abs_src_path=str(path)))
    return files


@event_priority(-100)  # after it: its page wrapper recomputes the source path from a source folder,
def restore_sources(files: Files, config) -> Files:  # which a generated file has none of
    for file in files:
        if file.src_uri.startswith(PREFIX) and file.src_uri.endswith(".ipynb") and file.abs_src_path is None:
            file.abs_src_path = str(NOTEBOOKS / file.src_uri[len(PREFIX):])
    return files


on_files = CombinedEvent(add_notebooks, restore_sources)
