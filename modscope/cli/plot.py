"""``modscope plot``: one figure from a result JSON, or a network drawn in layers (any file `score` reads)."""

from __future__ import annotations

from ..errors import ModscopeError
from .options import Parser, check_outputs, load_source_graph, model_flags, positive_int

__all__ = ["RESULT_FIGURES", "add", "run_network", "run_result"]

RESULT_FIGURES = {  # figure -> (result kind, what it shows, its function in modscope.report.plot)
    "histogram": ("score", "histogram of the shuffled n-cuts with the trained n-cut marked",
                  "shuffle_histogram"),
    "sizes": ("score", "cluster sizes per layer (stacked bars)", "cluster_sizes"),
    "masks": ("masks", "mask overlap heatmaps (IoU, IoMin; overall and per layer)", "mask_overlap"),
    "lesions": ("knockout", "lesion effect bars against random lesions", "lesion_effects"),
    "pairs": ("knockout", "double-lesion interaction heatmap", "double_lesion"),
}


def add(sub) -> None:
    p = sub.add_parser("plot", help="figures: network, n-cut histogram, cluster sizes, masks, lesions",
                       description="Draw one figure from a checkpoint (network) or a result JSON.")
    figures = p.add_subparsers(dest="figure", metavar="FIGURE", parser_class=Parser)
    figures.required = True
    for name, (kind, text, _) in RESULT_FIGURES.items():
        f = figures.add_parser(name, help=text,
                               description=f"Draw the {text} from a {kind} result "
                               "JSON (or the demo's results.json with --demo-model).")
        f.add_argument("input", metavar="RESULT.json", help=f"`modscope {kind} --json` output")
        # --model, its old spelling, still works (plot never reads code, so a ``package.module:factory``
        # there is refused rather than read as a name)
        f.add_argument("--demo-model", "--model", dest="model", metavar="NAME", type=_demo_name,
                       help="model name, when INPUT is the demo's results.json")
        _image_flags(f)
        f.set_defaults(run=run_result)
    n = figures.add_parser(
        "network",
        help="any network in layers: units at their (BIMT) positions, lines by |w|, blue + / red -",
        description="Draw a network in layers: line width |w| / max |w| per weight matrix, blue positive, "
        "red negative; a plain stack one row per layer, any other unit graph (residual, attention) one "
        "row per unit group with each residual stream once per block boundary; with --clusters or "
        "--score, units coloured by cluster.",
    )
    n.add_argument(
        "checkpoint",
        metavar="FILE",
        help="a modscope checkpoint (.pt, BIMT positions kept), any file `score` reads (a state dict, "
        ".safetensors, .npz, .onnx, Keras, .pt2), or with --model PKG.MODULE:FACTORY your module's weights",
    )
    n.add_argument("--clusters", type=positive_int(2), help="colour units by k spectral clusters")
    n.add_argument("--score", metavar="RESULT.json",
                   help="colour units by the clusters of this score result (--demo-model for a demo's)")
    n.add_argument(
        "--demo-model",
        metavar="NAME",
        type=_demo_name,
        help="model name, when --score is the demo's results.json (plot's old --model NAME, a name "
        "without ':', still means this)",
    )
    n.add_argument("--seed", type=int, default=0, help="clustering seed (default 0)")
    n.add_argument(
        "--quantile",
        type=float,
        metavar="Q",
        help="draw only each weight matrix's strongest lines: |w| at least this quantile (0..1) of its "
        "non-zero |w|",
    )
    _image_flags(n)
    model_flags(n)
    n.set_defaults(run=run_network)


def _image_flags(p) -> None:
    p.add_argument("--out", required=True, metavar="PATH", help="image to write (.png/.pdf/.svg)")
    p.add_argument("--title", help="figure title")
    p.add_argument("--dpi", type=positive_int(10), default=200, help="raster resolution")


def _demo_name(text: str) -> str:
    if ":" in text:
        raise ModscopeError(
            f"plot's --demo-model (formerly --model) names a model of the demo's results.json, got {text!r}; "
            "plot runs no code: draw a weights file with `modscope plot network FILE`"
        )
    return text


def _network_source(args):
    """A modscope checkpoint (its BIMT positions drawn), or the graph of any file `score` reads, as
    `model_flags` say to read it (your module with --model): every command reads a network the same way."""
    from pathlib import Path

    from ..graphs.files import formats
    from ..training.checkpoint import load_checkpoint

    other = (".safetensors", ".npz", ".onnx", ".h5", ".hdf5", ".keras", ".pt2")
    if args.model is None and Path(args.checkpoint).suffix.lower() not in other:
        if formats.is_checkpoint_payload(formats.safe_torch_load(args.checkpoint)):
            return load_checkpoint(args.checkpoint)
    return load_source_graph(args)


def run_network(args) -> int:
    from ..report.plot import network, save

    check_outputs({"--out": args.out}, no_stdout=("--out",))
    if args.model is not None and ":" not in args.model:  # plot's old spelling of --demo-model NAME
        if args.demo_model is not None:
            raise ModscopeError("give --demo-model NAME once (plot's --model NAME is its old spelling)")
        args.demo_model, args.model = args.model, None
    if args.clusters and args.score:
        raise ModscopeError("give either --clusters or --score, not both")
    if args.quantile is not None and not 0.0 <= args.quantile < 1.0:  # before the network is read
        raise ModscopeError(f"--quantile must be in [0, 1), got {args.quantile}")
    source = _network_source(args)

    labels = None
    if args.score:
        from ..report.html import pick_result

        labels = pick_result(args.score, "score", args.demo_model)["labels"]
    if args.clusters:
        from ..clustering.spectral import cluster
        from ..graphs.load import load_graph

        graph = load_graph(source)
        if args.clusters >= graph.n_nodes:
            raise ModscopeError(
                f"--clusters ({args.clusters}) must be below the node count ({graph.n_nodes})"
            )
        labels = cluster(graph, args.clusters, seed=args.seed).labels
    save(network(source, labels, title=args.title, quantile=args.quantile), args.out, dpi=args.dpi)
    print(f"wrote {args.out}")
    return 0


def run_result(args) -> int:
    from ..report import plot
    from ..report.html import pick_result

    check_outputs({"--out": args.out}, no_stdout=("--out",))
    kind, _, draw = RESULT_FIGURES[args.figure]
    d = pick_result(args.input, kind, args.model)
    plot.save(getattr(plot, draw)(d, title=args.title), args.out, dpi=args.dpi)
    print(f"wrote {args.out}")
    return 0
