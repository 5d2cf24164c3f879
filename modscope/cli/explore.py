"""``modscope explore``: one offline HTML page to explore a network's modules (`modscope.explore`)."""

from __future__ import annotations

from pathlib import Path

from ..errors import ModscopeError
from .options import positive_int

__all__ = ["add", "run"]


def add(sub) -> None:
    p = sub.add_parser(
        "explore",
        help="an interactive, offline HTML page of a network's modules from result JSON files",
        description="Write one self-contained HTML file (Plotly bundled: opens from disk, offline) from "
        "the --json results of score, blocks, knockout, masks and train on one network: the network "
        "in layers coloured by cluster with a |w| threshold slider, a panel per cluster and unit, "
        "the null histogram, each function's mask, the transformer blocks' table. The network's "
        "edges are re-read from the file the results name (their `source`), or from a network file "
        "given among RESULTS.",
    )
    p.add_argument("results", nargs="+", metavar="RESULT",
                   help="result .json files of one network, and optionally the network file itself "
                   "(any argument that is not .json)")
    p.add_argument("--out", default="explore.html", help="the page to write (default ./explore.html)")
    p.add_argument("--title", help="page title (default: the network's file name)")
    p.add_argument(
        "--max-edges",
        type=positive_int(1),
        metavar="N",
        help="single edges embedded, the strongest first (default 1,000,000); every edge counts in "
        "the aggregate edges drawn when too many are in view",
    )
    p.set_defaults(run=run)


def run(args) -> int:
    from ..report.explore import DEFAULT_MAX_EDGES, explore

    jsons = [r for r in args.results if Path(r).suffix.lower() == ".json"]
    others = [r for r in args.results if Path(r).suffix.lower() != ".json"]
    if len(others) > 1:
        raise ModscopeError(f"one network file at most, got {len(others)}: {', '.join(others)}")
    if not jsons:
        raise ModscopeError(
            "no result .json given: pass the --json of score, blocks, knockout, masks or train"
        )
    out = Path(args.out)
    if out.suffix.lower() not in (".html", ".htm"):
        raise ModscopeError(f"--out {out}: the page is HTML; name it *.html")
    if out.parent and not out.parent.is_dir():
        raise ModscopeError(f"--out {out}: no folder {out.parent}")
    page = explore(
        *jsons,
        network=others[0] if others else None,
        title=args.title,
        max_edges=args.max_edges or DEFAULT_MAX_EDGES,
    )
    page.save(out)  # atomic: nothing half-written if anything fails
    d = page.data
    print(
        f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB): {d['network']['n_nodes']} units, "
        f"{d['network']['n_edges']} edges, {len(d['partitions'])} partition(s)"
    )
    return 0
