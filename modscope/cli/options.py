"""What every command shares: one-line usage errors, number parsing, and the common options."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..errors import ModscopeError

__all__ = [
    "SHUFFLE_NAMES",
    "Parser",
    "checkpoint_flags",
    "clustering_flags",
    "executor",
    "executor_flags",
    "int_list",
    "function_flags",
    "load_source_graph",
    "model_flags",
    "module_flags",
    "positive_int",
    "progress_flag",
    "source_record",
    "split_names",
]


# The weight-shuffle nulls by name, without importing them (numpy, scipy): `modscope --help` must
# answer at once. A test keeps this equal to `modscope.nulls.SHUFFLE_METHODS`.
SHUFFLE_NAMES = (
    "layer",
    "layer_nonzero",
    "layer_nonzero_distribution",
    "layer_all_distribution",
    "layer_degree",
)


class Parser(argparse.ArgumentParser):
    """argparse whose usage errors are one line and exit 2, like every other bad input."""

    def error(self, message: str):  # type: ignore[override]
        raise ModscopeError(f"{self.prog}: {message}")


def positive_int(minimum: int):
    """An argparse type: an integer ``>= minimum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
        return value

    return parse


def int_list(text: str) -> list[int]:
    """An argparse type: comma-separated positive integers."""
    try:
        values = [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive widths, got {text!r}")
    return values


def split_names(text: str | None) -> list[str] | None:
    """``"a, b,c"`` -> ``["a", "b", "c"]``; ``None`` stays ``None``."""
    return None if text is None else [s.strip() for s in text.split(",") if s.strip()]


def checkpoint_flags(p: argparse.ArgumentParser) -> None:
    """The network to analyse and the data it is tested on: a modscope checkpoint and its task."""
    p.add_argument("checkpoint", help="modscope checkpoint (.pt) from `modscope train`")
    p.add_argument("--task", help="task to test on (default: the one the checkpoint was trained on)")
    p.add_argument("--data", metavar="PATH", help="data folder for file-backed tasks")


def progress_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")


def clustering_flags(p: argparse.ArgumentParser, shuffles_help: str, seed_help: str) -> None:
    """--clusters, --shuffles, --seed, --jobs: shared by every command that scores against shuffles."""
    p.add_argument("--clusters", type=positive_int(2), default=12, help="number of clusters k (default 12)")
    p.add_argument("--shuffles", type=positive_int(1), default=50, help=shuffles_help)
    p.add_argument("--seed", type=int, default=0, help=seed_help)
    p.add_argument("--jobs", type=int, default=1, help="worker processes for the shuffles; -1 = all cores")


def executor_flags(p: argparse.ArgumentParser, device: bool = True) -> None:
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


def executor(args) -> Any:
    """``--scheduler ADDRESS`` or ``--device D`` as an executor, or ``None`` (then ``--jobs``)."""
    from ..runtime.executors import check_jobs

    check_jobs(args.jobs, "--jobs")
    chosen = [f for f in ("scheduler", "device") if getattr(args, f, None)]
    if len(chosen) > 1 or (chosen and args.jobs != 1):
        raise ModscopeError("--jobs, --scheduler and --device exclude each other")
    if getattr(args, "scheduler", None):
        from ..runtime.executors import DaskExecutor

        return DaskExecutor(args.scheduler)
    if getattr(args, "device", None):
        from ..runtime.modules import resolve_device
        from ..scoring.batched import TorchBatchExecutor

        resolve_device(args.device)  # fail now, before any work, when CUDA is absent
        return TorchBatchExecutor(args.device)
    return None


def module_flags(g: Any) -> None:
    """--model, --input-shape, --input-dtype: the user's module by its code, traced on an example
    input (`modscope.graphs.files.user_model`)."""
    g.add_argument(
        "--model",
        metavar="PKG.MODULE:FACTORY",
        help="build the module with this factory (your code; run from your project folder), load the "
        "weights file into it and trace it: residual, recurrent and attention networks",
    )
    g.add_argument(
        "--input-shape",
        metavar="SHAPE",
        help="--model: the example input's shape, batch first, e.g. 1,3,32,32 (default: the factory's)",
    )
    g.add_argument(
        "--input-dtype",
        default="float32",
        choices=["float32", "float64", "float16", "bfloat16", "long", "int32", "bool"],
        help="--model: the example input's dtype (long for token ids; default float32)",
    )


def function_flags(p: argparse.ArgumentParser) -> None:
    """--function (repeatable), --output, --batch-size: the user's functions and data batches."""
    g = p.add_argument_group("your data (--model with --data FILE)")
    g.add_argument(
        "--function",
        action="append",
        metavar="NAME=CLASSES",
        help="a function by its classes, numbers or names (animals=2,3,4,5,6,7), all but some "
        "(rest=not:3) or output groups (digit0=outputs:0); repeatable",
    )
    g.add_argument("--output", type=int, metavar="INDEX", help="which of the model's outputs to score")
    g.add_argument(
        "--batch-size",
        type=positive_int(1),
        default=256,
        help="examples per batch read from --data (default 256)",
    )


def model_flags(p: argparse.ArgumentParser) -> None:
    """How the network is read: the user's module (--model), its example input, the flatten order,
    the weight layout and the kernel norm (`modscope.load_graph`)."""
    g = p.add_argument_group("reading the network (modscope.load_graph)")
    module_flags(g)
    g.add_argument(
        "--flatten",
        choices=["channel-major", "channel-last"],
        help="a CNN state dict whose head flattens a map: torch's x.flatten(1) order, or channels "
        "last (a permute before the flatten, Keras)",
    )
    g.add_argument(
        "--map-shape",
        metavar="H,W",
        help="a CNN state dict whose head flattens a map: the map's height and width (the 1-norm of "
        "a map depends on them; a state dict does not hold them)",
    )
    g.add_argument(
        "--bn-eps",
        type=float,
        metavar="EPS",
        help="a state dict's BatchNorm eps (not stored in it; default 1e-5, torch's, and the output "
        "says it was assumed)",
    )
    g.add_argument(
        "--layout",
        choices=["auto", "out_in", "in_out"],
        default="auto",
        help="weight matrix layout: torch's out x in, Keras/JAX in x out, or auto (default: "
        "out x in, or in x out when only that chains; the output says which)",
    )
    g.add_argument(
        "--kernel-norm",
        choices=["1", "l1", "l2", "fro", "max"],
        help="edge = this norm of |kernel slice| (conv kernels, gate rows, flattened maps; default 1, "
        "the matrix 1-norm)",
    )
    g.add_argument(
        "--trust-pickle",
        action="store_true",
        help="load a .pt/.pth that needs arbitrary pickled objects "
        "(RUNS CODE FROM THE FILE; only for files you made)",
    )


def load_source_graph(args, layers: list[str] | None = None) -> Any:
    """The graph of ``args.checkpoint`` as `model_flags` say to read it."""
    from ..graphs.load import load_graph

    norm = args.kernel_norm or "1"
    flatten = None if args.flatten is None else args.flatten.replace("-", "_")
    if args.model is None:
        if args.input_shape is not None:
            raise ModscopeError("--input-shape goes with --model")
        return load_graph(
            args.checkpoint,
            layers=layers,
            layout=args.layout,
            trust_pickle=args.trust_pickle,
            kernel_norm=norm,
            flatten=flatten,
            map_shape=_map_shape(args.map_shape),
            bn_eps=args.bn_eps,
        )
    from ..graphs.files.user_model import build_model, example_tensor

    module, example = build_model(args.model, args.checkpoint)
    if args.input_shape is not None:
        example = example_tensor(args.input_shape, args.input_dtype)
    if example is None:
        raise ModscopeError(f"{args.model}: pass --input-shape (the factory gives no example input)")
    return load_graph(module, example_input=example, kernel_norm=norm)


def _map_shape(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    try:
        h, w = (int(t) for t in text.replace("x", ",").split(","))
    except ValueError:
        raise ModscopeError(f"--map-shape is H,W (e.g. 4,4), got {text!r}") from None
    return h, w


# How a result's network was read, kept in its --json as the new key ``source`` (0.4.0) so that
# `modscope explore` can re-read the edges and refuse results of different networks given together.
_READ_FLAGS = ("graph", "layers", "layout", "kernel_norm", "flatten", "map_shape", "bn_eps", "model")
_DEFAULTS = {"layout": "auto", "graph": "weights"}


def source_record(path: str, args: argparse.Namespace | None = None) -> dict[str, Any]:
    """``{"path": absolute path, "sha256": of the file, "read": the non-default reading flags}``."""
    from ..runtime.hashing import file_sha256

    p = Path(path).resolve()
    read = {}
    for name in _READ_FLAGS:
        value = getattr(args, name, None)
        if value is not None and value != _DEFAULTS.get(name):
            read[name] = value
    return {"path": str(p), "sha256": file_sha256(p) if p.is_file() else None, "read": read}
