"""``modscope`` command line: a thin layer over the Python API.

Every subcommand parses its options, calls one API function and prints / writes its
result. Bad input raises `ModscopeError`, printed as one line on stderr with exit code 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from . import __version__
from ._atomic import write_json
from .errors import ModscopeError


class _Parser(argparse.ArgumentParser):
    """argparse whose usage errors are one line and exit 2, like every other bad input."""

    def error(self, message: str):  # type: ignore[override]
        raise ModscopeError(f"{self.prog}: {message}")


def _positive_int(minimum: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
        return value

    return parse


def _int_list(text: str) -> list[int]:
    try:
        values = [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive widths, got {text!r}")
    return values


def _progress_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")


# -- score -------------------------------------------------------------------------------------
def _add_score(sub) -> None:
    from .baselines import SHUFFLE_METHODS

    p = sub.add_parser(
        "score",
        help="n-cut of a checkpoint's weight graph against shuffled-weight baselines",
        description="Cluster a network's weight graph (|w| on edges) by normalised spectral "
        "clustering and compare its n-cut with shuffled copies (z-score, p-value).",
    )
    p.add_argument("checkpoint", help=".pt/.pth state_dict or modscope checkpoint, .safetensors, .npz")
    p.add_argument("--clusters", type=_positive_int(2), default=12, help="number of clusters k (default 12)")
    p.add_argument("--shuffles", type=_positive_int(1), default=50, help="shuffled networks (default 50)")
    p.add_argument(
        "--shuffle-method",
        choices=sorted(SHUFFLE_METHODS),
        default="layer",
        metavar="METHOD",
        help=f"one of {', '.join(SHUFFLE_METHODS)} (default layer)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of every random choice (default 0)")
    p.add_argument("--jobs", type=int, default=1, help="worker processes for the shuffles; -1 = all cores")
    p.add_argument(
        "--assign-labels",
        choices=["kmeans", "cluster_qr"],
        default="kmeans",
        help="k-means on the spectral embedding (default) or cluster-QR",
    )
    p.add_argument(
        "--select",
        choices=["ncut", "inertia"],
        default="ncut",
        help="keep the k-means restart of lowest n-cut (default) or lowest inertia (the reference)",
    )
    p.add_argument("--layers", help="comma-separated weight tensor names, in forward order")
    p.add_argument(
        "--layout",
        choices=["out_in", "in_out"],
        default="out_in",
        help="weight matrix layout: torch's out x in (default) or Keras/JAX in x out",
    )
    p.add_argument("--json", metavar="PATH", help="write the full result as JSON")
    _progress_flag(p)
    p.set_defaults(run=_cmd_score)


def _cmd_score(args) -> int:
    from .io import load_graph
    from .report_text import score_table
    from .score import score
    from .spectral import SpectralClusterer

    if args.jobs == 0 or args.jobs < -1:
        raise ModscopeError(f"--jobs must be >= 1 or -1, got {args.jobs}")
    layers = [s.strip() for s in args.layers.split(",")] if args.layers else None
    graph = load_graph(args.checkpoint, layers=layers, layout=args.layout)
    if args.clusters >= graph.n_nodes:
        raise ModscopeError(f"--clusters ({args.clusters}) must be below the node count ({graph.n_nodes})")
    result = score(
        graph,
        n_shuffles=args.shuffles,
        shuffle_method=args.shuffle_method,
        seed=args.seed,
        jobs=args.jobs,
        progress=not args.no_progress,
        clusterer=SpectralClusterer(args.clusters, assign_labels=args.assign_labels, select=args.select),
    )
    if args.json:
        write_json(args.json, result.to_dict())
    print(score_table(result, source=args.checkpoint))
    return 0


# -- knockout ----------------------------------------------------------------------------------
def _add_knockout(sub) -> None:
    p = sub.add_parser(
        "knockout",
        help="lesion each cluster's neurons and compare with random same-size lesions",
        description="Cluster a checkpoint's weight graph, silence each (hidden layer, cluster) "
        "sub-module in turn and compare the task metric with random same-size lesions in the "
        "same layer (p-value, z, category; optionally all pairs, and lesions by function mask).",
    )
    p.add_argument("checkpoint", help="modscope checkpoint (.pt) from `modscope train`")
    p.add_argument("--task", help="task to test on (default: the one the checkpoint was trained on)")
    p.add_argument("--data", metavar="PATH", help="data folder for file-backed tasks")
    p.add_argument("--clusters", type=_positive_int(2), default=12, help="clusters k (default 12)")
    p.add_argument(
        "--random",
        type=_positive_int(1),
        default=100,
        metavar="N",
        help="random lesions per sub-module (default 100)",
    )
    p.add_argument("--pairs", action="store_true", help="also lesion every pair of sub-modules")
    p.add_argument("--seed", type=int, default=0, help="seed of clustering and lesions (default 0)")
    p.add_argument("--alpha", type=float, default=0.05, help="significance level (default 0.05)")
    p.add_argument(
        "--min-effect",
        type=float,
        default=0.01,
        help="smallest damage that counts, in metric units (default 0.01 = 1 point)",
    )
    p.add_argument(
        "--masks",
        metavar="PATH",
        help="masks file (`modscope masks --save`): "
        "also remove each function's mask and score every function",
    )
    p.add_argument("--json", metavar="PATH", help="write the full result as JSON")
    _progress_flag(p)
    p.set_defaults(run=_cmd_knockout)


def _cmd_knockout(args) -> int:
    from .knockout import format_knockout, knockout_checkpoint

    result = knockout_checkpoint(
        args.checkpoint,
        task=args.task,
        data=args.data,
        n_clusters=args.clusters,
        masks=args.masks,
        n_random=args.random,
        pairs=args.pairs,
        seed=args.seed,
        alpha=args.alpha,
        min_effect=args.min_effect,
        progress=not args.no_progress,
    )
    if args.json:
        write_json(args.json, result.to_dict())
    print(format_knockout(result), end="")
    return 0


# -- entry point -------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="modscope", description="Is this trained network modular, and how much more than chance?"
    )
    parser.add_argument("--version", action="version", version=f"modscope {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    _add_score(sub)
    _add_knockout(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        return int(args.run(args) or 0)
    except ModscopeError as exc:
        message = str(exc).splitlines()[0] if str(exc) else "invalid input"
        print(f"modscope: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("modscope: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
