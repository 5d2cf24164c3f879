"""``modscope masks``: learn one weight mask per function of a checkpoint's task, or of the user's
own module (``--model``) on their data (``--data``)."""

from __future__ import annotations

from ..errors import ModscopeError
from ..runtime.atomic import write_json
from .options import (
    check_outputs,
    checkpoint_flags,
    device_flag,
    echo,
    module_flags,
    positive_int,
    progress_flag,
    source_record,
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
    device_flag(p, "the masks are learned")
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
    g = p.add_argument_group("your own network (its weights file as the checkpoint, --data your data file)")
    module_flags(g)
    g.add_argument(
        "--function",
        action="append",
        metavar="NAME=CLASSES",
        help="--model: a function by its classes, numbers or names (animals=2,3,4,5,6,7), all but some "
        "(rest=not:3) or output groups (digit0=outputs:0); repeatable",
    )
    g.add_argument(
        "--output", type=int, metavar="INDEX", help="--model: which of the model's outputs to score"
    )
    g.add_argument(
        "--eval-batch-size",
        type=positive_int(1),
        default=512,
        help="--model: examples per evaluation batch read from --data (default 512)",
    )
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
    from ..runtime.modules import resolve_device

    check_jobs(args.jobs, "--jobs")
    check_outputs({"--json": args.json, "--save": args.save}, {"--cache": args.cache}, no_stdout=("--save",))
    resolve_device(args.device)  # a missing GPU fails before any work
    common = dict(
        steps=args.steps,
        batch_size=args.batch_size,
        beta=args.beta,
        control=not args.no_control,
        seed=args.seed,
        device=args.device,
        threads=args.jobs,
        progress=not args.no_progress,
    )
    if args.input_axis is not None:  # the masks' trace takes the tracer's guess (it follows transposes)
        raise ModscopeError("--input-axis goes with score --model; masks traces with modscope's guess")
    if args.model is not None:
        from ..workflows.user_models import masks_model

        if args.data is None or args.task is not None or args.functions is not None or args.cache is not None:
            raise ModscopeError(
                "--model needs --data (your data file) and takes --function NAME=CLASSES, "
                "not --task, --functions or --cache"
            )
        result = masks_model(
            args.checkpoint,
            model=args.model,
            data=args.data,
            input_shape=args.input_shape,
            input_dtype=args.input_dtype,
            non_strict=args.non_strict,
            functions=args.function,
            classes=args.classes,
            output=args.output,
            eval_batch_size=args.eval_batch_size,
            **common,
        )
    else:
        from ..workflows.checkpoints import masks_checkpoint

        if args.function or args.output is not None or args.input_shape is not None:
            raise ModscopeError("--function, --output and --input-shape go with --model")
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
            cache=args.cache,
            **common,
        )
    if args.json:
        from ..masks.bits import encode_masks

        # 0.4.0 adds two keys for `modscope explore`; the older ones are unchanged
        added = {"source": source_record(args.checkpoint, args), "weight_masks": encode_masks(result.masks)}
        write_json(args.json, {**result.to_dict(), **added})
    if args.save:
        result.save(args.save)
    echo(format_masks(result) + _groups_table(result), args.json, end="")
    return 0
