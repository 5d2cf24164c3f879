"""``modscope masks``: learn one weight mask per function of a checkpoint's task."""

from __future__ import annotations

from ..errors import ModscopeError
from ..runtime.atomic import write_json
from .options import checkpoint_flags, positive_int, progress_flag

__all__ = ["add", "run"]


def add(sub) -> None:
    p = sub.add_parser(
        "masks",
        help="learn one weight mask per function (Csordás et al.) and compare them",
        description="Freeze a checkpoint's network and learn a binary weight mask per function "
        "of its task (Gumbel-sigmoid, straight-through), all at once; report each mask's size, "
        "its metric on every function's data, the inverted-mask test and the overlaps (IoU).",
    )
    checkpoint_flags(p)
    which = p.add_mutually_exclusive_group()
    which.add_argument("--functions", help="comma-separated function names (default: all)")
    which.add_argument(
        "--classes", action="store_true", help="one not-<c> mask per class, with the per-class accuracy drop"
    )
    p.add_argument("--steps", type=positive_int(1), default=20000, help="mask training steps (default 20000)")
    p.add_argument(
        "--batch-size",
        type=positive_int(1),
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
    progress_flag(p)
    p.add_argument("--cache", metavar="DIR", help="keep the finished run here; a rerun reads it back")
    p.set_defaults(run=run)


def run(args) -> int:
    from ..report.text import format_masks
    from ..runtime.executors import check_jobs
    from ..workflows.checkpoints import masks_checkpoint

    check_jobs(args.jobs, "--jobs")

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
