"""``modscope masks``: learn one weight mask per function of a checkpoint's task, or of the user's
own module (``--model``) on their data (``--data``)."""

from __future__ import annotations

from ..errors import ModscopeError
from .options import (
    checkpoint_flags,
    positive_int,
    run_checks,
    run_flags,
    split_names,
    write_result,
)

__all__ = ["add", "run"]


def add(sub) -> None:
    p = sub.add_parser(
        "masks",
        help="learn one weight mask per function (Csordás et al.) and compare them",
        description="Freeze a network and learn a binary weight mask per function (Gumbel-sigmoid, "
        "straight-through), all at once; report each mask's size, its metric on every function's "
        "data, the inverted-mask test and the overlaps (IoU). A modscope checkpoint and its task, "
        "or your own module (--model, any architecture: convolutions, recurrent layers, attention) "
        "on your data (--data FILE, streamed in batches) with your functions (--function).",
    )
    checkpoint_flags(p)
    which = p.add_mutually_exclusive_group()
    which.add_argument("--functions", help="comma-separated function names of the task (default: all)")
    which.add_argument("--classes", action="store_true",
                       help="one not-<c> mask per class, with the per-class accuracy drop")
    p.add_argument("--steps", type=positive_int(1), default=20000, help="mask training steps (default 20000)")
    p.add_argument("--batch-size", type=positive_int(1), default=128,
                   help="examples per function per step (default 128)")
    p.add_argument("--beta", type=float, help="sparsity weight (default 1e-4 / batch size)")
    p.add_argument("--no-control", action="store_true", help="no control mask on all the data")
    p.add_argument("--jobs", type=int, default=1,
                   help="CPU threads the mask sets are split over (same masks for any value); -1 = all cores")
    p.add_argument("--save", metavar="PATH", help="write the masks (.pt) for `knockout --masks`")
    run_flags(p, "the masks are learned", "seed of batches and noise (default 0)",
              "keep the finished run here; a rerun reads it back",
              ("--eval-batch-size", 512, "examples per evaluation batch"))
    p.set_defaults(run=run)


def _groups_table(result) -> str:
    """Per unit group of the traced module: the weights touching it and each mask's kept share."""
    if not result.groups:
        return ""
    labels = {name: v.get("label", name) for name, v in result.groups.items()}  # "0 (Linear, 32 units)"
    width = max(10, *(len(g) for g in labels.values())) + 2
    head = "unit group".ljust(width) + "weights".rjust(9) + "".join(f.rjust(12) for f in result.functions)
    lines = ["", "kept fraction of the weights writing into or reading from each unit group", head]
    for name, v in result.groups.items():
        kept = "".join(
            ("-" if v["kept_fraction"][f] is None else f"{100 * v['kept_fraction'][f]:.1f}%").rjust(12)
            for f in result.functions
        )
        lines.append(labels[name].ljust(width) + str(v["weights"]).rjust(9) + kept)
    return "\n".join(lines) + "\n"


def run(args) -> int:
    from ..report.text import format_masks
    from ..runtime.executors import check_jobs

    check_jobs(args.jobs, "--jobs")
    shared = run_checks(
        args, {"--save": args.save}, ("--save",),
        checkpoint_only={"--functions": args.functions is not None, "--cache": args.cache is not None},
    )
    common = dict(
        classes=args.classes, steps=args.steps, batch_size=args.batch_size, beta=args.beta,
        control=not args.no_control, threads=args.jobs, **shared,
    )
    if args.model is not None:
        from ..workflows.user_models import masks_model

        result = masks_model(args.checkpoint, eval_batch_size=args.eval_batch_size, **common)
    else:
        from ..workflows.checkpoints import masks_checkpoint

        functions = split_names(args.functions)
        if functions == []:
            raise ModscopeError("--functions names no function")
        result = masks_checkpoint(args.checkpoint, functions=functions, cache=args.cache, **common)
    if args.save:
        result.save(args.save)

    def fields() -> dict:  # 0.4.0 adds the masks' bits for `modscope explore`; older keys unchanged
        from ..masks.bits import encode_masks

        return {**result.to_dict(), "weight_masks": encode_masks(result.masks)}

    write_result(args, fields, format_masks(result) + _groups_table(result))
    return 0
