"""``modscope score``: one network's modularity against a null (`modscope.score`)."""

from __future__ import annotations

from ..errors import ModscopeError
from .options import (
    check_outputs,
    clustering_flags,
    executor,
    executor_flags,
    load_source_graph,
    measure_flags,
    model_flags,
    null_options,
    positive_int,
    progress_flag,
    split_names,
    write_result,
)

__all__ = ["add", "run"]


def add(sub) -> None:

    p = sub.add_parser("score", help="n-cut of a checkpoint's weight graph against shuffled-weight baselines",
                       description="Cluster a network's weight graph (|w| on edges) by normalised spectral "
                       "clustering and compare its n-cut with shuffled copies (z-score, p-value).")
    p.add_argument(
        "checkpoint",
        help="the network: a state dict (.pt/.pth/.bin, .safetensors, .npz), a modscope checkpoint, "
        "a .pt2 torch.export archive, a TorchScript archive (weights only), an .onnx model, a Keras "
        ".h5/.keras model (traced; no code in these files is run), or with --model the weights file "
        "of your module",
    )
    clustering_flags(p, "shuffled networks (default 50)", "seed of every random choice (default 0)")
    p.add_argument("--assign-labels", choices=["kmeans", "cluster_qr"], default="kmeans",
                   help="k-means on the spectral embedding (default) or cluster-QR")
    p.add_argument(
        "--restarts",
        "--n-init",
        type=positive_int(1),
        metavar="N",
        help="k-means restarts (default: the reference's 25, or 100 above 2000 non-isolated nodes)",
    )
    p.add_argument(
        "--select",
        choices=["inertia", "ncut"],
        default="inertia",
        help="keep the k-means restart of lowest inertia (default, the reference's procedure) or of "
        "lowest n-cut (sharper partitions for the network and its shuffles alike)",
    )
    p.add_argument("--layers", help="comma-separated weight tensor names, in forward order")
    model_flags(p)
    p.add_argument("--json", metavar="PATH", help="write the full result as JSON")
    p.add_argument("--cache", metavar="DIR",
                   help="keep each finished shuffle here; a rerun computes only what is missing")
    executor_flags(p)
    m = p.add_argument_group("other graphs and measures (modscope.scoring.measures, modscope.graphs)")
    measure_flags(m, units=True)
    m.add_argument("--graph", choices=["weights", "activations"], default="weights",
                   help="edges |w| (default) or squared Spearman correlations of unit activations")
    m.add_argument("--task",
                   help="--graph activations: the task whose test examples run through the "
                   "network (default: the checkpoint's)")
    m.add_argument("--data", metavar="PATH", help="--graph activations: data folder for file-backed tasks")
    m.add_argument("--examples", type=positive_int(3), help="--graph activations: first N examples only")
    progress_flag(p)
    p.set_defaults(run=run)


def _graph(args):
    """The graph to score: the weight graph (CNNs with a chosen kernel norm), or the activation graph."""
    if args.graph == "activations":
        if args.kernel_norm or args.layers or args.model:
            raise ModscopeError("--kernel-norm, --layers and --model apply to --graph weights")
        from ..workflows.checkpoints import checkpoint_activation_graph

        return checkpoint_activation_graph(args.checkpoint, args.task, args.data, max_examples=args.examples)
    if args.shuffle_method == "units":
        raise ModscopeError("--shuffle-method units permutes activations: it needs --graph activations")
    if args.task or args.data or args.examples:
        raise ModscopeError("--task, --data and --examples apply to --graph activations")
    graph = load_source_graph(args, split_names(args.layers))
    if args.kernel_norm and graph.reading.startswith("a plain stack of Linear"):
        raise ModscopeError(
            f"--kernel-norm applies to kernels, and {args.checkpoint} is not a CNN ({graph.reading})"
        )
    return graph


def _measure(args):
    from ..clustering.spectral import SpectralClusterer
    from ..scoring.measures import LayerLocalMeasure, ModularityMeasure, NcutMeasure

    clusterer = SpectralClusterer(
        args.clusters, assign_labels=args.assign_labels, restarts=args.restarts, select=args.select
    )
    if args.method in ("leiden", "louvain"):
        return ModularityMeasure(args.method)
    if args.method == "local":
        return LayerLocalMeasure(args.clusters, clusterer)
    return NcutMeasure(clusterer)


def run(args) -> int:
    from ..report.text import format_score
    from ..scoring.engine import score

    check_outputs({"--json": args.json}, {"--cache": args.cache})
    with executor(args) as pool:
        result = score(_graph(args), measure=_measure(args), jobs=args.jobs if pool is None else 1,
                       executor=pool, cache=args.cache, **null_options(args))
    write_result(args, result.to_dict, format_score(result, source=args.checkpoint) + "\n")  # caveats last
    return 0
