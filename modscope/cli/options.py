"""What every command shares: one-line usage errors, number parsing, and the common options."""

from __future__ import annotations

import argparse
import contextlib
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from ..errors import ModscopeError

__all__ = [
    "SHUFFLE_NAMES",
    "SPECTRAL",
    "Parser",
    "checkpoint_flags",
    "check_outputs",
    "clustering_flags",
    "device_flag",
    "executor",
    "device_name",
    "executor_flags",
    "input_dtype_flag",
    "load_source_graph",
    "measure_flags",
    "model_flags",
    "module_flags",
    "null_options",
    "numbers",
    "positive_int",
    "progress_flag",
    "run_checks",
    "run_flags",
    "source_record",
    "split_names",
    "write_result",
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


def check_outputs(
    files: dict[str, str | None] | None = None,
    folders: dict[str, str | None] | None = None,
    no_stdout: tuple[str, ...] = (),
) -> None:
    """Before any work: every output path can be written (``{flag: path}``; files, folders), none
    named twice, and ``-`` (standard output) only where the flag allows it. One-line errors."""
    from ..runtime.atomic import check_distinct, check_output

    files, folders = files or {}, folders or {}
    for flag, path in files.items():
        check_output(path, flag, stdout=flag not in no_stdout)
    for flag, path in folders.items():
        check_output(path, flag, directory=True)
    check_distinct({**files, **folders})


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


def split_names(text: str | None) -> list[str] | None:
    """``"a, b,c"`` -> ``["a", "b", "c"]``; ``None`` stays ``None``."""
    return None if text is None else [s.strip() for s in text.split(",") if s.strip()]


def checkpoint_flags(p: argparse.ArgumentParser) -> None:
    """The network to analyse and the data it is tested on: a modscope checkpoint and its task."""
    p.add_argument(
        "checkpoint",
        help="the network: a modscope checkpoint (.pt written by `modscope train`; tested on its task), "
        "or with --model PKG.MODULE:FACTORY the weights file of your module (a state dict: "
        ".pt/.pth/.bin, .safetensors, .npz), tested on --data FILE",
    )
    p.add_argument("--task", help="task to test on (default: the one the checkpoint was trained on)")
    p.add_argument(
        "--data",
        metavar="PATH",
        help="a modscope checkpoint: the data folder of a file-backed task; --model: your data file "
        "(.npz, .pt, an IDX folder)",
    )


def progress_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")


def clustering_flags(p: argparse.ArgumentParser, shuffles_help: str, seed_help: str) -> None:
    """--clusters, --shuffles, --seed, --jobs: shared by every command that scores against shuffles."""
    p.add_argument("--clusters", type=positive_int(2), default=12, help="number of clusters k (default 12)")
    p.add_argument("--shuffles", type=positive_int(1), default=50, help=shuffles_help)
    p.add_argument("--seed", type=int, default=0, help=seed_help)
    p.add_argument("--jobs", type=int, default=1, help="worker processes for the shuffles; -1 = all cores")


def measure_flags(p: Any, units: bool = False) -> None:
    """--shuffle-method and --method: the null and the measure (score, blocks); ``units``: the
    activation-permutation null too (``--graph activations``)."""
    p.add_argument(
        "--shuffle-method",
        choices=[*sorted(SHUFFLE_NAMES), *(["units"] if units else [])],
        default=None if units else "layer",
        metavar="METHOD",
        help=f"one of {', '.join(SHUFFLE_NAMES)} (default layer)"
        + (", or units (permute each unit's activations across examples; --graph activations only, "
           "its default)" if units else ""),
    )
    p.add_argument("--method", choices=["spectral", "leiden", "louvain", "local"], default="spectral",
                   help="spectral n-cut (default), Newman Q of Leiden or Louvain communities (igraph), "
                   "layer-local n-cut")


def null_options(args) -> dict[str, Any]:
    """What `clustering_flags`, `measure_flags` and `progress_flag` say of the shuffles, as keyword
    arguments of `modscope.score` and `score_blocks`: the null, how many, the seed, the progress bar."""
    return dict(null=args.shuffle_method, n_shuffles=args.shuffles, seed=args.seed,
                progress=not args.no_progress)


def executor_flags(p: argparse.ArgumentParser) -> None:
    """--scheduler and --device: where the units of the spectral path run (score, sweep)."""
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="run the units on this Dask cluster, e.g. tcp://host:8786 (modscope[distributed])")
    device_flag(p, SPECTRAL, default=None)


def device_name(text: str) -> str:
    """An argparse type: ``cpu``, ``cuda`` or ``cuda:N`` (``mps`` too), checked without torch; whether
    the device is there is asked when the command runs (`modscope.runtime.modules.resolve_device`)."""
    name = text.strip().lower()
    if not re.fullmatch(r"cpu|mps|cuda(:\d+)?", name):
        raise argparse.ArgumentTypeError(f"unknown device {text!r} (use cpu, cuda or cuda:N)")
    return name


SPECTRAL = "the spectral path (the network's clustering and its shuffles: eigenproblems and k-means restarts)"


def device_flag(p: Any, what: str = "the model runs", default: str | None = "cpu") -> None:
    """``--device cpu|cuda[:N]``: where the heavy work runs. ``default=None`` (score, blocks, sweep):
    without the flag the plain numpy path runs, with it the batched torch path on that device."""
    help_text = (
        f"where {what} (default {default}); the data follows the model there"
        if default is not None
        else f"run {what} as batched torch tensor ops on this device (default: the plain numpy path)"
    )
    p.add_argument("--device", type=device_name, default=default, metavar="cpu|cuda[:N]", help=help_text)


@contextlib.contextmanager
def executor(args, device: bool = True) -> Iterator[Any]:
    """``--scheduler ADDRESS`` or ``--device D`` as an executor, or ``None`` (then ``--jobs``), for a
    ``with`` block: a Dask client is closed when the block ends. ``device=False``: the command runs
    ``--device`` itself (sweep: each row's spectral path), checked here only against the others."""
    from ..runtime.executors import DaskExecutor, check_jobs

    check_jobs(args.jobs, "--jobs")
    chosen = [f for f in ("scheduler", "device") if getattr(args, f, None)]
    if len(chosen) > 1 or (chosen and args.jobs != 1):
        raise ModscopeError("--jobs, --scheduler and --device exclude each other")
    if device and getattr(args, "device", None):
        from ..runtime.modules import resolve_device
        from ..scoring.batched import TorchBatchExecutor

        resolve_device(args.device)  # fail now, before any work, when CUDA is absent
        yield TorchBatchExecutor(args.device)
    elif getattr(args, "scheduler", None):
        with contextlib.closing(DaskExecutor(args.scheduler)) as pool:
            yield pool
    else:
        yield None


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
        help="the example input's shape, batch first, e.g. 1,3,32,32: for --model (default: the "
        "factory's, else the first example of --data), and for .onnx / Keras files whose input sizes "
        "are left open",
    )
    g.add_argument(
        "--input-axis",
        type=int,
        metavar="AXIS",
        help="--model: the example input's feature axis (e.g. -1 for (batch, time, features)), when "
        "modscope's guess (channels of a map; the axis a 3-D input's first layer reads) is wrong",
    )
    g.add_argument(
        "--non-strict",
        action="store_true",
        help="--model: load a weights file whose keys differ from the model's (the model keeps its own "
        "values for parameters the file lacks; extra keys are dropped; the output lists both)",
    )
    input_dtype_flag(g)


def input_dtype_flag(g: Any) -> None:
    """--input-dtype: the dtype of the example input a ``--model`` is traced on."""
    g.add_argument("--input-dtype", default="float32",
                   choices=["float32", "float64", "float16", "bfloat16", "long", "int32", "bool"],
                   help="--model: the example input's dtype (long for token ids; default float32)")


def run_flags(
    p: argparse.ArgumentParser, runs: str, seed_help: str, cache_help: str, batch: tuple[str, int, str]
) -> None:
    """What the commands that run a network on data share (knockout, masks): --seed, --device, --json,
    --cache, --no-progress, and the group of the user's module (`module_flags`, --function, --output,
    and ``batch``: the flag, default and meaning of its examples per batch read from --data)."""
    p.add_argument("--seed", type=int, default=0, help=seed_help)
    device_flag(p, runs)
    p.add_argument("--json", metavar="PATH", help="write the full result as JSON")
    p.add_argument("--cache", metavar="DIR", help=cache_help)
    progress_flag(p)
    g = p.add_argument_group(
        "your own network (--model: its weights file as the checkpoint, --data your data file)"
    )
    module_flags(g)
    g.add_argument(
        "--function",
        action="append",
        metavar="NAME=CLASSES",
        help="--model: a function by its classes, numbers or names (animals=2,3,4,5,6,7), all but some "
        "(rest=not:3) or output groups (digit0=outputs:0); repeatable",
    )
    g.add_argument("--output", type=int, metavar="INDEX",
                   help="--model: which of the model's outputs to score")
    flag, default, what = batch
    g.add_argument(flag, type=positive_int(1), default=default,
                   help=f"--model: {what} read from --data (default {default})")


def run_checks(
    args,
    files: dict[str, str | None] | None = None,
    no_stdout: tuple[str, ...] = (),
    *,
    checkpoint_only: dict[str, bool] | None = None,
    model_only: dict[str, bool] | None = None,
) -> dict[str, Any]:
    """Before any work of a command made by `run_flags`: its outputs can be written (``--json``,
    ``--cache`` and ``files``), the device is there, no --input-axis (the trace guesses it), and the
    flags fit the network: ``--model`` needs --data and refuses --task and ``checkpoint_only``
    (``{flag: given}``); a checkpoint refuses --function, --output, --input-shape and ``model_only``.
    Returns the keyword arguments both runs take: ``seed``, ``device``, ``progress``, and the network's:
    ``task`` and ``data`` of a checkpoint, or the user's module, data and functions with --model (the
    options of `modscope.workflows.user_models`: ``knockout_model``, ``masks_model``)."""
    from ..runtime.modules import resolve_device

    check_outputs({"--json": args.json, **(files or {})}, {"--cache": args.cache}, no_stdout)
    resolve_device(args.device)  # a missing GPU fails before any work
    if args.input_axis is not None:  # the trace takes the tracer's guess (it follows transposes)
        raise ModscopeError(
            "--input-axis goes with score --model; knockout and masks trace with modscope's guess"
        )
    if args.model is not None:
        refused = {"--task": args.task is not None, **(checkpoint_only or {})}
        if args.data is None or any(refused.values()):
            *rest, last = refused
            no = f"{', '.join(rest)} or {last}" if rest else last
            raise ModscopeError(f"--model needs --data (your data file) and takes no {no}")
        flags = ("model", "data", "input_shape", "input_dtype", "non_strict", "output")
        network = {**{name: getattr(args, name) for name in flags}, "functions": args.function}
    else:
        refused = {"--function": bool(args.function), "--output": args.output is not None,
                   "--input-shape": args.input_shape is not None, **(model_only or {})}
        if any(refused.values()):
            *rest, last = refused
            raise ModscopeError(f"{', '.join(rest)} and {last} go with --model")
        network = {"task": args.task, "data": args.data}
    return dict(seed=args.seed, device=args.device, progress=not args.no_progress, **network)


def write_result(args, fields: Callable[[], dict], text: str, source: str | None = None) -> None:
    """A command's output: ``--json`` (``fields()``, the result's keys, with the network read as
    ``source``, a key added in 0.4.0 for `modscope explore`: the file ``source``, default
    ``args.checkpoint`` read as ``args`` say), then ``text`` as it is (on stderr with ``--json -``)."""
    if args.json:
        from ..runtime.atomic import write_json

        record = source_record(args.checkpoint, args) if source is None else source_record(source)
        write_json(args.json, {**fields(), "source": record})
    print(text, end="", file=sys.stderr if args.json == "-" else sys.stdout)  # --json - takes stdout


def model_flags(p: argparse.ArgumentParser) -> None:
    """How the network is read: the user's module (--model), its example input, the flatten order,
    the weight layout and the kernel norm (`modscope.load_graph`)."""
    g = p.add_argument_group("reading the network (modscope.load_graph)")
    module_flags(g)
    g.add_argument("--flatten", choices=["channel-major", "channel-last"],
                   help="a CNN state dict whose head flattens a map: torch's x.flatten(1) order, or channels "
                   "last (a permute before the flatten, Keras)")
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
    g.add_argument("--layout", choices=["auto", "out_in", "in_out"], default="auto",
                   help="weight matrix layout: torch's out x in, Keras/JAX in x out, or auto (default: "
                   "out x in, or in x out when only that chains; the output says which)")
    g.add_argument(
        "--kernel-norm",
        choices=["1", "l1", "l2", "fro", "max"],
        help="edge = this norm of |kernel slice| (conv kernels, gate rows, flattened maps; default 1, "
        "the matrix 1-norm)",
    )
    g.add_argument("--trust-pickle", action="store_true",
                   help="load a .pt/.pth that needs arbitrary pickled objects "
                   "(RUNS CODE FROM THE FILE; only for files you made)")


def load_source_graph(args, layers: list[str] | None = None) -> Any:
    """The graph of ``args.checkpoint`` as `model_flags` say to read it."""
    from ..graphs.load import load_graph

    norm = args.kernel_norm or "1"
    flatten = None if args.flatten is None else args.flatten.replace("-", "_")
    if args.model is None:
        if args.input_axis is not None:
            raise ModscopeError("--input-axis goes with --model")
        shape = None
        if args.input_shape is not None:
            if not str(args.checkpoint).lower().endswith((".onnx", ".h5", ".hdf5", ".keras")):
                raise ModscopeError(
                    "--input-shape goes with --model, an .onnx or a Keras file (a weights file is read "
                    "without running it)"
                )
            from ..graphs.files.user_model import parse_shape

            shape = parse_shape(args.input_shape)
        return load_graph(args.checkpoint, layers=layers, layout=args.layout, trust_pickle=args.trust_pickle,
                          kernel_norm=norm, flatten=flatten,
                          map_shape=numbers(args.map_shape, 2, int, "--map-shape is H,W (e.g. 4,4)", "x"),
                          bn_eps=args.bn_eps, input_shape=shape)
    from ..graphs.files.user_model import build_model, example_tensor, guess_example

    notes: list[str] = []
    module, example = build_model(args.model, args.checkpoint, non_strict=args.non_strict, notes=notes)
    guessed = None
    if args.input_shape is not None:
        example = example_tensor(args.input_shape, args.input_dtype)
    elif example is None:
        example, guessed = guess_example(module)
        notes.insert(0, guessed)
    try:
        graph = load_graph(module, example_input=example, kernel_norm=norm, input_axis=args.input_axis)
    except ModscopeError as exc:
        if guessed is None:
            raise
        raise ModscopeError(f"{exc} ({guessed}): pass --input-shape") from None
    return graph.read_as("; ".join([graph.reading, *notes])) if notes else graph


def numbers(text: str | None, count: int, kind: type, wrong: str, sep: str = ",") -> tuple | None:
    """A flag's ``count`` numbers (``kind``) separated by commas or ``sep``: a tuple, None for None;
    anything else raises ``wrong`` with the text given."""
    if text is None:
        return None
    try:
        values = tuple(kind(t) for t in text.replace(sep, ",").split(","))
    except ValueError:
        values = ()
    if len(values) != count:
        raise ModscopeError(f"{wrong}, got {text!r}")
    return values


# How a result's network was read, kept in its --json as the new key ``source`` (0.4.0) so that
# `modscope explore` can re-read the edges and refuse results of different networks given together.
_READ_FLAGS = ("graph", "layers", "layout", "kernel_norm", "flatten", "map_shape", "bn_eps", "model")
_DEFAULTS = {"layout": "auto", "graph": "weights"}


def source_record(path: str, args: argparse.Namespace | None = None) -> dict[str, Any]:
    """``{"path": absolute path, "sha256": of the file, "read": the non-default reading flags}``."""
    from ..runtime.hashing import file_sha256

    p = Path(path).resolve()
    given = {name: getattr(args, name, None) for name in _READ_FLAGS}
    read = {k: v for k, v in given.items() if v is not None and v != _DEFAULTS.get(k)}
    return {"path": str(p), "sha256": file_sha256(p) if p.is_file() else None, "read": read}
