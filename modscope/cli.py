"""``modscope`` command line: a thin layer over the Python API.

Every subcommand parses its options, calls one API function and prints / writes its
result. Bad input raises `ModscopeError`, printed as one line on stderr with exit code 2.
"""

from __future__ import annotations

import argparse
import os
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


def _clustering_flags(p: argparse.ArgumentParser, shuffles_help: str, seed_help: str) -> None:
    """--clusters, --shuffles, --seed, --jobs: shared by every command that scores against shuffles."""
    p.add_argument("--clusters", type=_positive_int(2), default=12, help="number of clusters k (default 12)")
    p.add_argument("--shuffles", type=_positive_int(1), default=50, help=shuffles_help)
    p.add_argument("--seed", type=int, default=0, help=seed_help)
    p.add_argument("--jobs", type=int, default=1, help="worker processes for the shuffles; -1 = all cores")


def _check_jobs(jobs: int) -> None:
    """``--jobs``: a count of workers or threads, or -1 for all cores."""
    if jobs == 0 or jobs < -1:
        raise ModscopeError(f"--jobs must be >= 1 or -1, got {jobs}")


def _executor_flags(p: argparse.ArgumentParser, device: bool = True) -> None:
    p.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="run the units on this Dask cluster, e.g. tcp://host:8786 (modscope[distributed])",
    )
    if device:
        p.add_argument(
            "--device",
            choices=["cpu", "cuda"],
            help="solve the shuffles' eigenproblems in batches with torch on this device",
        )


def _executor(args):
    """``--jobs N``, ``--scheduler ADDRESS`` or ``--device D`` as what `shuffle_ncuts` takes."""
    from .distributed import DaskExecutor, TorchBatchExecutor, torch_device

    chosen = [f for f in ("scheduler", "device") if getattr(args, f, None)]
    if len(chosen) > 1 or (chosen and args.jobs != 1):
        raise ModscopeError("--jobs, --scheduler and --device exclude each other")
    if getattr(args, "scheduler", None):
        return DaskExecutor(args.scheduler)
    if getattr(args, "device", None):
        torch_device(args.device)  # fail now, before any work, when CUDA is absent
        return TorchBatchExecutor(args.device)
    return args.jobs


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
    _clustering_flags(p, "shuffled networks (default 50)", "seed of every random choice (default 0)")
    p.add_argument(
        "--shuffle-method",
        choices=[*sorted(SHUFFLE_METHODS), "units"],
        default=None,
        metavar="METHOD",
        help=f"one of {', '.join(SHUFFLE_METHODS)} (default layer), or units (permute each unit's "
        "activations across examples; --graph activations only, its default)",
    )
    p.add_argument(
        "--assign-labels",
        choices=["kmeans", "cluster_qr"],
        default="kmeans",
        help="k-means on the spectral embedding (default) or cluster-QR",
    )
    p.add_argument(
        "--n-init",
        type=_positive_int(1),
        default=10,
        help="k-means restarts (default 10; the reference ran 25)",
    )
    p.add_argument(
        "--select",
        choices=["ncut", "inertia"],
        default="ncut",
        help="keep the k-means restart of lowest n-cut (default) or lowest inertia (the reference)",
    )
    p.add_argument("--layers", help="comma-separated weight tensor names, in forward order")
    p.add_argument(
        "--trust-pickle",
        action="store_true",
        help="load a .pt/.pth that needs arbitrary pickled objects "
        "(RUNS CODE FROM THE FILE; only for files you made)",
    )
    p.add_argument(
        "--layout",
        choices=["out_in", "in_out"],
        default="out_in",
        help="weight matrix layout: torch's out x in (default) or Keras/JAX in x out",
    )
    p.add_argument("--json", metavar="PATH", help="write the full result as JSON")
    p.add_argument(
        "--cache",
        metavar="DIR",
        help="keep each finished shuffle here; a rerun computes only what is missing",
    )
    _executor_flags(p)
    m = p.add_argument_group("other graphs and measures (modscope.measures, .activations, .cnn)")
    m.add_argument(
        "--graph",
        choices=["weights", "activations"],
        default="weights",
        help="edges |w| (default) or squared Spearman correlations of unit activations",
    )
    m.add_argument(
        "--method",
        choices=["spectral", "louvain", "local"],
        default="spectral",
        help="spectral n-cut (default), Newman Q of Louvain communities, layer-local n-cut",
    )
    m.add_argument(
        "--task",
        help="--graph activations: the task whose test examples run through the "
        "network (default: the checkpoint's)",
    )
    m.add_argument("--data", metavar="PATH", help="--graph activations: data folder for file-backed tasks")
    m.add_argument("--examples", type=_positive_int(3), help="--graph activations: first N examples only")
    m.add_argument(
        "--kernel-norm",
        choices=["1", "l1", "l2", "fro", "max"],
        help="CNNs: edge = this norm of |kernel slice| (default 1, the matrix 1-norm)",
    )
    _progress_flag(p)
    p.set_defaults(run=_cmd_score)


def _cmd_score(args) -> int:
    from .io import load_graph
    from .report_text import score_table
    from .score import score
    from .spectral import SpectralClusterer, check_memory

    other = args.graph != "weights" or args.method != "spectral" or args.shuffle_method == "units"
    if other or args.kernel_norm:
        return _cmd_score_measure(args)
    args.shuffle_method = args.shuffle_method or "layer"
    _check_jobs(args.jobs)
    layers = [s.strip() for s in args.layers.split(",")] if args.layers else None
    graph = load_graph(args.checkpoint, layers=layers, layout=args.layout, trust_pickle=args.trust_pickle)
    if args.scheduler is None:  # local workers each hold a shuffled copy
        check_memory(graph.layer_widths, jobs=(os.cpu_count() or 1) if args.jobs == -1 else args.jobs)
    if args.clusters >= graph.n_nodes:
        raise ModscopeError(f"--clusters ({args.clusters}) must be below the node count ({graph.n_nodes})")
    result = score(
        graph,
        n_shuffles=args.shuffles,
        shuffle_method=args.shuffle_method,
        seed=args.seed,
        jobs=(jobs := _executor(args)),
        progress=not args.no_progress,
        cache=args.cache,
        clusterer=SpectralClusterer(
            args.clusters, assign_labels=args.assign_labels, n_init=args.n_init, select=args.select
        ),
    )
    if hasattr(jobs, "close"):
        jobs.close()
    if args.json:
        write_json(args.json, result.to_dict())
    print(score_table(result, source=args.checkpoint))
    for warning in result.warnings:
        print(f"modscope: warning: {warning}", file=sys.stderr)
    return 0


def _cmd_score_measure(args) -> int:
    """`score --graph activations`, `--method louvain|local` or `--kernel-norm`."""
    from .io import load_graph
    from .measures import MeasureResult, format_measure, score_graph
    from .report_text import score_table
    from .spectral import SpectralClusterer

    _check_jobs(args.jobs)
    if args.cache:
        raise ModscopeError("--cache works only with the spectral score of the weight graph")
    null = args.shuffle_method
    if args.graph == "activations":
        from .activations import UnitPermutationNull, checkpoint_activation_graph

        if args.kernel_norm or args.layers:
            raise ModscopeError("--kernel-norm and --layers apply to --graph weights")
        acts = checkpoint_activation_graph(args.checkpoint, args.task, args.data, max_examples=args.examples)
        graph = acts.graph
        null = UnitPermutationNull(acts) if null in (None, "units") else null
    else:
        if null == "units":
            raise ModscopeError("--shuffle-method units permutes activations: it needs --graph activations")
        if args.task or args.data or args.examples:
            raise ModscopeError("--task, --data and --examples apply to --graph activations")
        null = null or "layer"
        if args.kernel_norm:
            from .cnn import conv_graph

            graph = conv_graph(args.checkpoint, norm=args.kernel_norm)
        else:
            layers = [s.strip() for s in args.layers.split(",")] if args.layers else None
            graph = load_graph(
                args.checkpoint, layers=layers, layout=args.layout, trust_pickle=args.trust_pickle
            )
    if args.clusters >= graph.n_nodes:
        raise ModscopeError(f"--clusters ({args.clusters}) must be below the node count ({graph.n_nodes})")
    clusterer = SpectralClusterer(
        args.clusters, assign_labels=args.assign_labels, n_init=args.n_init, select=args.select
    )
    result = score_graph(
        graph,
        args.method,
        args.clusters,
        args.shuffles,
        null,
        args.seed,
        args.jobs,
        clusterer,
        not args.no_progress,
    )
    if args.json:
        write_json(args.json, result.to_dict())
    if isinstance(result, MeasureResult):
        print(format_measure(result, source=args.checkpoint))
        return 0
    print(score_table(result, source=args.checkpoint))
    for warning in result.warnings:
        print(f"modscope: warning: {warning}", file=sys.stderr)
    return 0


# -- blocks ------------------------------------------------------------------------------------
def _add_blocks(sub) -> None:
    from .baselines import SHUFFLE_METHODS

    p = sub.add_parser(
        "blocks",
        help="score every transformer MLP block (3-layer graph d_model-d_ff-d_model) against shuffles",
        description="Find the MLP blocks of a transformer state dict (GPT-2 mlp.c_fc/mlp.c_proj, "
        "fc1/fc2, fc_in/fc_out, dense_h_to_4h/dense_4h_to_h), score each block's 3-layer graph "
        "against its own shuffles and print one row per block.",
    )
    p.add_argument("checkpoint", help=".safetensors, or a .bin/.pt state dict (read with weights_only=True)")
    _clustering_flags(p, "shuffles per block (default 50)", "seed of every random choice, the same per block")
    p.add_argument(
        "--shuffle-method",
        choices=sorted(SHUFFLE_METHODS),
        default="layer",
        metavar="METHOD",
        help=f"one of {', '.join(SHUFFLE_METHODS)} (default layer)",
    )
    p.add_argument(
        "--method",
        choices=["spectral", "louvain", "local"],
        default="spectral",
        help="spectral n-cut (default), Newman Q of Louvain communities, layer-local n-cut",
    )
    p.add_argument("--json", metavar="PATH", help="write every block's result as JSON")
    _progress_flag(p)
    p.set_defaults(run=_cmd_blocks)


def _cmd_blocks(args) -> int:
    from .transformer import format_blocks, score_blocks

    _check_jobs(args.jobs)
    scores = score_blocks(
        args.checkpoint,
        args.method,
        args.clusters,
        args.shuffles,
        args.shuffle_method,
        args.seed,
        args.jobs,
        progress=not args.no_progress,
    )
    if args.json:
        write_json(args.json, scores.to_dict())
    print(format_blocks(scores, source=args.checkpoint))
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
    p.add_argument("--cache", metavar="DIR", help="keep each finished lesion here; a rerun resumes")
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
        cache=args.cache,
    )
    if args.json:
        write_json(args.json, result.to_dict())
    print(format_knockout(result), end="")
    return 0


# -- masks -------------------------------------------------------------------------------------
def _add_masks(sub) -> None:
    p = sub.add_parser(
        "masks",
        help="learn one weight mask per function (Csordás et al.) and compare them",
        description="Freeze a checkpoint's network and learn a binary weight mask per function "
        "of its task (Gumbel-sigmoid, straight-through), all at once; report each mask's size, "
        "its metric on every function's data, the inverted-mask test and the overlaps (IoU).",
    )
    p.add_argument("checkpoint", help="modscope checkpoint (.pt) from `modscope train`")
    p.add_argument("--task", help="task (default: the one the checkpoint was trained on)")
    p.add_argument("--data", metavar="PATH", help="data folder for file-backed tasks")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--functions", help="comma-separated function names (default: all)")
    which.add_argument(
        "--classes", action="store_true", help="one not-<c> mask per class, with the per-class accuracy drop"
    )
    p.add_argument(
        "--steps", type=_positive_int(1), default=20000, help="mask training steps (default 20000)"
    )
    p.add_argument(
        "--batch-size",
        type=_positive_int(1),
        default=128,
        help="examples per function per step (default 128)",
    )
    p.add_argument("--beta", type=float, help="sparsity weight (default 1e-4 / batch size)")
    p.add_argument("--no-control", action="store_true", help="no control mask on all the data")
    p.add_argument("--seed", type=int, default=0, help="seed of batches and noise (default 0)")
    p.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    p.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="CPU threads the mask sets are split over (same masks for any value); -1 = all cores",
    )
    p.add_argument("--json", metavar="PATH", help="write the full result as JSON")
    p.add_argument("--save", metavar="PATH", help="write the masks (.pt) for `knockout --masks`")
    _progress_flag(p)
    p.add_argument("--cache", metavar="DIR", help="keep the finished run here; a rerun reads it back")
    p.set_defaults(run=_cmd_masks)


def _cmd_masks(args) -> int:
    from .masks import format_masks, masks_checkpoint

    _check_jobs(args.jobs)

    functions = None
    if args.functions is not None:
        functions = [f.strip() for f in args.functions.split(",") if f.strip()]
        if not functions:
            raise ModscopeError("--functions names no function")
    result = masks_checkpoint(
        args.checkpoint,
        task=args.task,
        data=args.data,
        functions=functions,
        classes=args.classes,
        steps=args.steps,
        batch_size=args.batch_size,
        beta=args.beta,
        control=not args.no_control,
        seed=args.seed,
        device=args.device,
        threads=args.jobs,
        progress=not args.no_progress,
        cache=args.cache,
    )
    if args.json:
        write_json(args.json, result.to_dict())
    if args.save:
        result.save(args.save)
    print(format_masks(result), end="")
    return 0


# -- train -------------------------------------------------------------------------------------
def _add_train(sub) -> None:
    p = sub.add_parser(
        "train",
        help="train an MLP on a task (plain, regularised, pruned, or with BIMT)",
        description="Train an MLP on a named task with Adam and write a modscope checkpoint. "
        "Unset options take the task's defaults.",
    )
    p.add_argument("--task", required=True, help="task name (see the task list in the README)")
    p.add_argument("--data", metavar="PATH", help="data folder for file-backed tasks")
    p.add_argument("--task-seed", type=int, default=0, help="seed of the task's data (default 0)")
    p.add_argument("--hidden", help="hidden widths, e.g. 256,256 (default: the task's)")
    p.add_argument("--activation", help="relu, silu, tanh, gelu or sigmoid (default: the task's)")
    p.add_argument("--dropout", type=float, default=0.0, help="dropout probability (default 0)")
    p.add_argument("--l1", type=float, default=0.0, help="L1 penalty on weights (default 0)")
    p.add_argument("--l2", type=float, default=0.0, help="L2 penalty on weights (default 0)")
    p.add_argument(
        "--weight-decay", type=float, help="AdamW decoupled weight decay (default: the task's; 0 with --bimt)"
    )
    p.add_argument(
        "--prune",
        type=float,
        metavar="SPARSITY",
        help="magnitude-prune to this sparsity in (0, 1) after training",
    )
    p.add_argument("--prune-steps", type=int, help="pruning fine-tune steps (default: --steps)")
    length = p.add_mutually_exclusive_group()
    length.add_argument("--steps", type=int, help="optimizer steps (default: the task's)")
    length.add_argument("--epochs", type=float, help="passes over the training set")
    p.add_argument("--batch-size", help="minibatch size or 'full' (default: the task's)")
    p.add_argument("--lr", type=float, help="learning rate (default: the task's)")
    p.add_argument("--seed", type=int, default=0, help="seed of init, batches, dropout (default 0)")
    p.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    g = p.add_argument_group("BIMT (brain-inspired modular training); defaults from the task")
    g.add_argument("--bimt", action="store_true", help="train with BIMT")
    g.add_argument("--bimt-lambda", type=float, help="connection-cost weight lambda_0")
    g.add_argument("--bimt-A", type=float, help="distance weight factor A (0 = plain L1)")
    g.add_argument("--bimt-y-star", type=float, help="distance between layers y*")
    g.add_argument("--bimt-top-k", type=int, help="neurons moved per layer per swap pass")
    g.add_argument("--bimt-swap-every", type=int, help="steps between swap passes (0 = never)")
    g.add_argument("--bimt-threshold", type=float, help="zero |parameters| below this at the end")
    g.add_argument("--bimt-reduction", choices=["sum", "mean"], help="per-tensor cost reduction")
    p.add_argument("--out", required=True, metavar="PATH", help="checkpoint to write (.pt)")
    p.add_argument("--json", metavar="PATH", help="write metrics and config as JSON")
    _progress_flag(p)
    p.set_defaults(run=_cmd_train)


def _cmd_train(args) -> int:
    from .tasks import get_task
    from .train import train

    overrides = {
        "lam": args.bimt_lambda,
        "A": args.bimt_A,
        "y_star": args.bimt_y_star,
        "top_k": args.bimt_top_k,
        "swap_every": args.bimt_swap_every,
        "threshold": args.bimt_threshold,
        "reduction": args.bimt_reduction,
    }
    given = {k: v for k, v in overrides.items() if v is not None}
    if given and not args.bimt:
        raise ModscopeError("--bimt-* options need --bimt")
    batch = ...
    if args.batch_size is not None:
        if args.batch_size.strip().lower() == "full":
            batch = None
        else:
            try:
                batch = int(args.batch_size)
            except ValueError:
                raise ModscopeError(
                    f"--batch-size must be a positive integer or 'full', got {args.batch_size!r}"
                ) from None
    task = get_task(args.task, seed=args.task_seed, data=args.data)
    result = train(
        task,
        hidden=args.hidden,
        activation=args.activation,
        dropout=args.dropout,
        l1=args.l1,
        l2=args.l2,
        weight_decay=args.weight_decay,
        prune=args.prune,
        prune_steps=args.prune_steps,
        steps=args.steps,
        epochs=args.epochs,
        batch_size=batch,
        lr=args.lr,
        seed=args.seed,
        device=args.device,
        bimt=given if args.bimt else None,
        progress=not args.no_progress,
    )
    result.save(args.out)
    if args.json:
        write_json(args.json, result.to_dict())
    m = result.metrics
    shown = [f"{k} {m[k]:.4g}" for k in ("test_accuracy", "test_loss", "sparsity") if k in m]
    widths = "-".join(map(str, result.checkpoint.architecture.widths))
    print(
        f"{task.name} {widths}{' BIMT' if args.bimt else ''}: {m['steps']} steps in "
        f"{m['seconds']:.1f} s, " + ", ".join(shown) + f" -> {args.out}"
    )
    return 0


# -- plot --------------------------------------------------------------------------------------
def _add_plot(sub) -> None:
    p = sub.add_parser(
        "plot",
        help="figures: network, n-cut histogram, cluster sizes, masks, lesions",
        description="Draw one figure from a checkpoint (network) or a result JSON.",
    )
    figures = p.add_subparsers(dest="figure", metavar="FIGURE", parser_class=_Parser)
    figures.required = True
    for name, (kind, text) in _RESULT_FIGURES.items():
        f = figures.add_parser(
            name,
            help=text,
            description=f"Draw the {text} from a {kind} result "
            "JSON (or the demo's results.json with --model).",
        )
        f.add_argument("input", metavar="RESULT.json", help=f"`modscope {kind} --json` output")
        f.add_argument("--model", help="model name, when INPUT is the demo's results.json")
        f.add_argument("--out", required=True, metavar="PATH", help="image to write (.png/.pdf/.svg)")
        f.add_argument("--title", help="figure title")
        f.add_argument("--dpi", type=_positive_int(10), default=200, help="raster resolution")
        f.set_defaults(run=_cmd_plot_result)
    n = figures.add_parser(
        "network",
        help="neurons at their (BIMT) positions, lines by |w|, blue + / red -",
        description="Draw a network: line width |w| / max |w| per layer, blue positive, red "
        "negative; with --clusters, neurons coloured by spectral cluster.",
    )
    n.add_argument("checkpoint", help="modscope checkpoint (.pt)")
    n.add_argument("--out", required=True, metavar="PATH", help="image to write (.png/.pdf/.svg)")
    n.add_argument("--clusters", type=_positive_int(2), help="colour neurons by k clusters")
    n.add_argument(
        "--score",
        metavar="RESULT.json",
        help="colour neurons by the clusters of this score result (--model for a demo's)",
    )
    n.add_argument("--model", help="model name, when --score is the demo's results.json")
    n.add_argument("--seed", type=int, default=0, help="clustering seed (default 0)")
    n.add_argument("--title", help="figure title")
    n.add_argument("--dpi", type=_positive_int(10), default=200, help="raster resolution")
    n.set_defaults(run=_cmd_plot_network)


def _cmd_plot_network(args) -> int:
    from .checkpoint import load_checkpoint
    from .plot import network, save

    ckpt = load_checkpoint(args.checkpoint)
    labels = None
    if args.score:
        from .report import pick_result

        if args.clusters:
            raise ModscopeError("give either --clusters or --score, not both")
        labels = pick_result(args.score, "score", args.model)["labels"]
    if args.clusters:
        from .io import load_graph
        from .spectral import cluster

        graph = load_graph(ckpt)
        if args.clusters >= graph.n_nodes:
            raise ModscopeError(
                f"--clusters ({args.clusters}) must be below the node count ({graph.n_nodes})"
            )
        labels = cluster(graph, args.clusters, seed=args.seed).labels
    save(network(ckpt, labels, title=args.title), args.out, dpi=args.dpi)
    print(f"wrote {args.out}")
    return 0


_RESULT_FIGURES = {  # figure -> (result kind, what it shows)
    "histogram": ("score", "histogram of the shuffled n-cuts with the trained n-cut marked"),
    "sizes": ("score", "cluster sizes per layer (stacked bars)"),
    "masks": ("masks", "mask overlap heatmaps (IoU, IoMin; overall and per layer)"),
    "lesions": ("knockout", "lesion effect bars against random lesions"),
    "pairs": ("knockout", "double-lesion interaction heatmap"),
}


def _cmd_plot_result(args) -> int:
    from . import plot
    from .report import pick_result

    kind = _RESULT_FIGURES[args.figure][0]
    d = pick_result(args.input, kind, args.model)
    draw = {
        "histogram": plot.shuffle_histogram,
        "sizes": plot.cluster_sizes,
        "masks": plot.mask_overlap,
        "lesions": plot.lesion_effects,
        "pairs": plot.double_lesion,
    }[args.figure]
    plot.save(draw(d, title=args.title), args.out, dpi=args.dpi)
    print(f"wrote {args.out}")
    return 0


# -- report ------------------------------------------------------------------------------------
def _add_report(sub) -> None:
    p = sub.add_parser(
        "report",
        help="build the HTML report from saved result JSON files",
        description="Build a self-contained index.html (figures embedded) plus results.json / "
        "results.csv of every number from score, masks, knockout or demo result JSON files.",
    )
    p.add_argument("results", nargs="+", metavar="RESULT.json", help="result files (kind found by keys)")
    p.add_argument("--out", default="modscope-report", help="output folder (default ./modscope-report)")
    p.add_argument("--title", default="modscope report", help="page title")
    p.set_defaults(run=_cmd_report)


def _cmd_report(args) -> int:
    from .report import build_report

    page = build_report(args.results, args.out, title=args.title)
    print(f"wrote {page}")
    return 0


# -- demo --------------------------------------------------------------------------------------
def _add_demo(sub) -> None:
    p = sub.add_parser(
        "demo",
        help="train plain / pruned / BIMT models on embedded tasks, run every experiment, report",
        description="Train plain, dropout + pruned and BIMT models on tasks that need no download, "
        "score each against shuffled copies, learn masks for the halves functions, run knockouts "
        "and write index.html plus results.json / results.csv (every stage cached).",
    )
    p.add_argument("--quick", action="store_true", help="fewer training steps and shuffles (minutes)")
    p.add_argument("--out", default="modscope-report", help="output folder (default ./modscope-report)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--shuffles", type=_positive_int(1), help="shuffles per model (20 quick, 50 full)")
    p.add_argument("--jobs", type=int, default=1, help="worker processes for the shuffles; -1 = all cores")
    p.add_argument("--no-fashion", action="store_true", help="leave Fashion-MNIST out even if installed")
    p.add_argument(
        "--threads",
        type=_positive_int(1),
        default=1,
        help="torch threads (default 1: the demo's networks are small)",
    )
    _progress_flag(p)
    p.set_defaults(run=_cmd_demo)


def _cmd_demo(args) -> int:
    from .demo import run_demo

    _check_jobs(args.jobs)
    result = run_demo(
        args.out,
        quick=args.quick,
        seed=args.seed,
        shuffles=args.shuffles,
        jobs=args.jobs,
        progress=not args.no_progress,
        fashion=False if args.no_fashion else None,
        threads=args.threads,
    )
    print(f"wrote {result.report} (numbers in results.json / results.csv beside it)")
    return 0


# -- sweep -------------------------------------------------------------------------------------
def _add_sweep(sub) -> None:
    p = sub.add_parser(
        "sweep",
        help="score many checkpoints x settings into one resumable table",
        description="Score every checkpoint of a config (YAML, JSON or TOML) under every combination "
        "of its settings (clusters, shuffle_method, shuffles, seed, n_init, select, assign_labels) "
        "into one CSV / Parquet table, one row per checkpoint x setting. Finished rows are kept as "
        "they complete; a rerun computes only the missing ones.",
    )
    p.add_argument("config", help="sweep config (.yaml, .json or .toml)")
    p.add_argument("--out", metavar="PATH", help=".csv or .parquet table to write (default: the config's)")
    p.add_argument("--jobs", type=int, default=1, help="worker processes for the rows; -1 = all cores")
    _executor_flags(p, device=False)
    _progress_flag(p)
    p.set_defaults(run=_cmd_sweep)


def _cmd_sweep(args) -> int:
    from .sweep import format_sweep, run_sweep

    jobs = _executor(args)
    try:
        result = run_sweep(args.config, out=args.out, jobs=jobs, progress=not args.no_progress)
    finally:
        if hasattr(jobs, "close"):
            jobs.close()
    print(format_sweep(result), end="")
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
    _add_blocks(sub)
    _add_knockout(sub)
    _add_masks(sub)
    _add_train(sub)
    _add_plot(sub)
    _add_report(sub)
    _add_demo(sub)
    _add_sweep(sub)
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
    except MemoryError:
        print("modscope: error: out of memory (try a smaller network or fewer --jobs)", file=sys.stderr)
        return 2
    except Exception as exc:  # a bug, not bad input: still one line, the traceback on request
        if os.environ.get("MODSCOPE_DEBUG"):
            raise
        first = (str(exc).strip().splitlines() or [""])[0][:300]
        print(
            f"modscope: internal error: {type(exc).__name__}: {first} "
            "(set MODSCOPE_DEBUG=1 for the traceback, and please report it)",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
