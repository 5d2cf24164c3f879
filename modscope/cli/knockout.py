"""``modscope knockout``: lesion every cluster of a checkpoint against random lesions."""

from __future__ import annotations

from .options import checkpoint_flags, positive_int, run_checks, run_flags, write_result

__all__ = ["add", "run"]


def add(sub) -> None:
    p = sub.add_parser(
        "knockout",
        help="lesion each cluster's neurons and compare with random same-size lesions",
        description="Cluster a checkpoint's weight graph, silence each (hidden layer, cluster) "
        "sub-module in turn and compare the task metric with random same-size lesions in the "
        "same layer (p-value, z, category; optionally all pairs, and lesions by function mask).",
    )
    checkpoint_flags(p)
    p.add_argument("--clusters", type=positive_int(2), default=12, help="clusters k (default 12)")
    p.add_argument("--random", type=positive_int(1), default=100, metavar="N",
                   help="random lesions per sub-module (default 100)")
    p.add_argument("--pairs", action="store_true", help="also lesion every pair of sub-modules")
    p.add_argument("--alpha", type=float, default=0.05, help="significance level (default 0.05)")
    p.add_argument("--min-effect", type=float, default=0.01,
                   help="smallest damage that counts, in metric units (default 0.01 = 1 point)")
    p.add_argument("--masks", metavar="PATH",
                   help="masks file (`modscope masks --save`): "
                   "also remove each function's mask and score every function")
    p.add_argument("--ablation", choices=["zero", "mean"], default="zero",
                   help="--model: silence units (zero, default) or hold them at their mean over the data")
    run_flags(p, "the lesions run", "seed of clustering and lesions (default 0)",
              "keep each finished lesion here; a rerun resumes", ("--batch-size", 256, "examples per batch"))
    p.set_defaults(run=run)


def run(args) -> int:
    from ..report.text import format_knockout

    shared = run_checks(args, checkpoint_only={"--masks": args.masks is not None},
                        model_only={"--ablation": args.ablation != "zero"})
    common = dict(n_clusters=args.clusters, n_random=args.random, pairs=args.pairs, alpha=args.alpha,
                  min_effect=args.min_effect, cache=args.cache, **shared)
    if args.model is None:  # a modscope checkpoint on its task
        from ..workflows.checkpoints import knockout_checkpoint

        result = knockout_checkpoint(args.checkpoint, masks=args.masks, **common)
    else:
        from ..workflows.user_models import knockout_model

        result = knockout_model(args.checkpoint, batch_size=args.batch_size, ablation=args.ablation, **common)
    write_result(args, lambda: {**result.to_dict(), **_explore_keys(result)}, format_knockout(result))
    return 0


def _explore_keys(result) -> dict:
    """Keys added to the JSON in 0.4.0 for `modscope explore` (the older keys are unchanged): the
    partition lesioned (``lesioned_labels``: ``(n_nodes,)``, when modscope clustered) and every
    sub-module's random-lesion metrics (``random_metrics[i]``: ``(n_random,)``, in the order of
    ``submodules``)."""
    from ..runtime.jsonable import finite_or_none

    d: dict = {} if result.labels is None else {"lesioned_labels": [int(v) for v in result.labels]}
    d["random_metrics"] = [
        [finite_or_none(v) for v in s.random_metric.tolist()] for s in result.submodules
    ]
    return d
