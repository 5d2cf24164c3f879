"""``modscope report``: the HTML report of saved result JSON files."""

from __future__ import annotations

__all__ = ["add", "run"]


def add(sub) -> None:
    p = sub.add_parser("report", help="build the HTML report from saved result JSON files",
                       description="Build a self-contained index.html (figures embedded) plus results.json / "
                       "results.csv of every number from score, masks, knockout or demo result JSON files.")
    p.add_argument("results", nargs="+", metavar="RESULT.json", help="result files (kind found by keys)")
    p.add_argument("--out", default="modscope-report", help="output folder (default ./modscope-report)")
    p.add_argument("--title", default="modscope report", help="page title")
    p.set_defaults(run=run)


def run(args) -> int:
    from ..report.html import build_report
    from .options import check_outputs

    check_outputs(folders={"--out": args.out})
    page = build_report(args.results, args.out, title=args.title)
    print(f"wrote {page}")
    return 0
