"""Render the fragments: each receipt's context through its Jinja2 template, the footer naming the
receipts, and the README region; ``main`` is the command line (``python -m docsgen`` from
``scripts/``, or ``python scripts/render_docs.py``)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from functools import cache
from pathlib import Path

import jinja2

from .filters import DASH, FILTERS
from .fragments import FRAGMENTS, Fragment
from .receipts import REPO

TEMPLATES = REPO / "docs" / "templates"
BEGIN = "<!-- generated: score_example -->"
END = "<!-- /generated -->"


@cache
def environment() -> jinja2.Environment:
    """Block tags take no room of their own; an undefined name fails instead of printing nothing."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        extensions=["jinja2.ext.do"],
    )
    env.filters.update(FILTERS)
    env.globals["DASH"] = DASH
    return env


def fragment_text(f: Fragment, root: Path) -> str:
    """One fragment's Markdown: its table(s), a blank line, the footer."""
    env = environment()
    found, missing = f.receipts(root)
    if missing:
        return (
            env.get_template("missing.md.j2").render(missing=missing, command=f.command()).rstrip("\n") + "\n"
        )
    body = env.get_template(f.template).render(f.context(found)).rstrip("\n")
    footer = env.get_template("footer.md.j2").render(receipts=found, speed=f.speed).strip("\n")
    return body + "\n\n" + footer + "\n"


def render_one(f: Fragment, root: Path) -> str:
    """One fragment's Markdown; a receipt without the keys its table needs raises `RuntimeError`."""
    try:
        return fragment_text(f, root)
    except Exception as e:
        raise RuntimeError(
            f"{f.name}: cannot render from {', '.join(f.sources)}: {type(e).__name__}: {e}"
        ) from e


def render_all(root: Path, only: set[str] | None = None) -> dict[str, str]:
    """Fragment name -> its Markdown, in a fixed order."""
    return {f.name: render_one(f, root) for f in FRAGMENTS if only is None or f.name in only}


def readme_region(readme: str, body: str) -> str | None:
    """``readme`` with the text between the marker lines replaced by ``body``; None without markers."""
    lines = readme.splitlines(keepends=True)
    starts = [i for i, line in enumerate(lines) if line.strip() == BEGIN]
    if not starts:
        return None
    i = starts[0]
    ends = [j for j in range(i + 1, len(lines)) if lines[j].strip() == END]
    if not ends:
        raise RuntimeError(f"README has {BEGIN!r} but no {END!r} after it")
    j = ends[0]
    return "".join(lines[: i + 1]) + body.rstrip("\n") + "\n" + "".join(lines[j:])


def _arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description="Render every table of results in the docs from the receipts.")
    ap.add_argument("--check", action="store_true", help="write nothing; exit 1 if a fragment differs")
    ap.add_argument(
        "--root",
        type=Path,
        default=REPO,
        help="where experiments/ and benchmarks/results/ are read (default: the repository)",
    )
    ap.add_argument("--docs", type=Path, default=REPO / "docs" / "generated", help="fragments folder")
    ap.add_argument(
        "--readme", default=str(REPO / "README.md"), help="README with the marker region ('' skips)"
    )
    ap.add_argument("--only", default="", help="comma-separated fragment names (default: all)")
    ap.add_argument("--list", action="store_true", help="print the fragment names and their receipts")
    return ap.parse_args(argv)


def _changes(args: argparse.Namespace, texts: dict[str, str]) -> list[str]:
    """Every fragment (and the README region) whose text differs, written unless ``--check``."""
    differs = []
    for name, text in texts.items():
        path = args.docs / f"{name}.md"
        old = path.read_text(encoding="utf-8") if path.is_file() else None
        if old == text:
            continue
        differs.append(str(path))
        if not args.check:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
    readme = Path(args.readme) if args.readme else None
    if readme is not None and readme.is_file() and "score_example" in texts:
        old = readme.read_text(encoding="utf-8")
        new = readme_region(old, texts["score_example"])
        if new is not None and new != old:
            differs.append(f"{readme} (region {BEGIN})")
            if not args.check:
                readme.write_text(new, encoding="utf-8")
    return differs


def main(argv: Sequence[str] | None = None) -> int:
    args = _arguments(argv)
    if args.list:
        for f in FRAGMENTS:
            print(f"{f.name}.md  <- {', '.join(f.sources)}")
        return 0
    only = {n.strip().removesuffix(".md") for n in args.only.split(",") if n.strip()} or None
    unknown = sorted((only or set()) - {f.name for f in FRAGMENTS})
    if unknown:
        print(f"render_docs: unknown fragment(s): {', '.join(unknown)}", file=sys.stderr)
        return 2
    root = args.root.resolve()
    texts: dict[str, str] = {}
    errors: list[str] = []
    for f in FRAGMENTS:
        if only is None or f.name in only:
            try:
                texts[f.name] = render_one(f, root)
            except RuntimeError as e:  # listed, and the fragment left as it is
                errors.append(f"{args.docs / f'{f.name}.md'} (not rendered: {e})")
    differs = _changes(args, texts)
    if args.check:
        if differs or errors:
            print(
                "render_docs: these differ from what the receipts give (run python scripts/render_docs.py):",
                file=sys.stderr,
            )
            for d in differs + errors:
                print(f"  {d}", file=sys.stderr)
            return 1
        print(f"render_docs: {len(texts)} fragment(s) agree with their receipts")
        return 0
    for d in differs:
        print(f"wrote {d}")
    for e in errors:
        print(f"render_docs: {e}", file=sys.stderr)
    print(f"render_docs: {len(texts)} fragment(s) rendered, {len(differs)} changed, {len(errors)} failed")
    return 1 if errors else 0
