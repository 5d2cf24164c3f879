"""``nn.Module`` + example input -> ``torch.export`` program -> unit graph."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stderr
from dataclasses import dataclass
from typing import Any

from ...errors import ModscopeError, first_line
from ...runtime.modules import eval_mode
from ..norms import check_norm
from ..weight_graph import WeightGraph
from .incidence import ParameterMap, map_parameters
from .interpreter import Interpreter
from .sites import Site, locate_sites

__all__ = ["TracedNetwork", "export_module", "trace_graph", "trace_network", "trace_program"]


@dataclass(frozen=True, eq=False)
class TracedNetwork:
    """A traced module's unit graph, the `Site` of every read of its units (for lesions) and where
    each parameter writes and reads units (`ParameterMap`, for masks)."""

    graph: WeightGraph
    sites: tuple[Site, ...]
    parameters: ParameterMap | None = None


@contextmanager
def _quiet_logs() -> Iterator[None]:
    """torch.export logs its own failures (20-odd lines, a traceback among them) before raising;
    modscope says it in one line, so the logs are kept back unless ``MODSCOPE_VERBOSE`` is set
    (``modscope --verbose``)."""
    if os.environ.get("MODSCOPE_VERBOSE"):
        yield
        return
    previous = logging.root.manager.disable
    logging.disable(logging.CRITICAL)
    try:  # torch also prints a failed export's partial graph straight to sys.stderr
        with redirect_stderr(io.StringIO()):
            yield
    finally:
        logging.disable(previous)


def _describe(args: tuple) -> str:
    """``shape (1, 8) int64`` for each tensor argument."""
    return ", ".join(
        f"shape {tuple(a.shape)} {str(a.dtype).removeprefix('torch.')}"
        if hasattr(a, "shape")
        else type(a).__name__
        for a in args
    ) or "no arguments"


def export_module(module: Any, example_input: Any, kwargs: dict | None = None) -> Any:
    """``torch.export.export`` of ``module`` in eval mode (its modes restored), refusing in one
    line what cannot be exported. Never decomposed: a Linear, a conv, an LSTM stay one op."""
    import torch

    if not isinstance(module, torch.nn.Module):
        raise ModscopeError(f"tracing needs an nn.Module, got {type(module).__name__}")
    if example_input is None:
        raise ModscopeError(
            f"tracing {type(module).__name__} needs an example input (a tensor of the shape its "
            "forward takes, batch 1): pass example_input=..."
        )
    args = example_input if isinstance(example_input, tuple) else (example_input,)
    with eval_mode(module, no_grad=True):
        try:
            module(*args, **(kwargs or {}))  # an input the module cannot take fails here, plainly
        except Exception as exc:  # the user's module: one line
            raise ModscopeError(
                f"cannot trace {type(module).__name__}: it does not run on the example input of "
                f"{_describe(args)} ({type(exc).__name__}: {first_line(exc)}); pass an input of the "
                "shape and dtype its forward takes (--input-shape, --input-dtype)"
            ) from None
        try:
            # node annotations (the ONNX node each op runs for) reach the program only when kept
            from torch.fx import traceback as fx_traceback

            keep_meta = getattr(fx_traceback, "preserve_node_meta", contextlib.nullcontext)
            with warnings.catch_warnings(), _quiet_logs(), keep_meta():
                warnings.simplefilter("ignore")  # export's notes on the user's code are not ours to print
                return torch.export.export(module, args, kwargs=kwargs or {}, strict=False)
        except Exception as exc:  # the user's module: its export failure in one line
            raise ModscopeError(
                f"cannot trace {type(module).__name__} with torch.export ({type(exc).__name__}: "
                f"{first_line(exc)}); a forward with data-dependent control flow or an input of the "
                "wrong shape cannot be traced: fix the example input, or pass a state dict of a known family"
            ) from None


def trace_program(
    program: Any, *, kernel_norm: str = "1", keep_dead_ends: bool = False,
    input_axes: dict[str, int] | None = None, input_axis: int | None = None,
) -> WeightGraph:
    """The unit graph ([spec §1b][spec-1b]) of an ``ExportedProgram`` (from ``torch.export``, or read from a
    ``.pt2`` archive). See `trace_graph` for the options."""
    check_norm(kernel_norm)
    return Interpreter(program, kernel_norm, keep_dead_ends, input_axes, input_axis).run()


def trace_network(module: Any, example_input: Any, **options: Any) -> TracedNetwork:
    """`trace_graph` (with its keyword ``options``), where each unit is read
    (`TracedNetwork.sites`) and where each parameter writes and reads units
    (`TracedNetwork.parameters`)."""
    kwargs = options.pop("kwargs", None)
    check_norm(options.get("kernel_norm", "1"))
    interp = Interpreter(export_module(module, example_input, kwargs), **options)  # an unknown one: TypeError
    interp.module = module
    graph = interp.run()
    return TracedNetwork(graph, tuple(locate_sites(interp)), map_parameters(interp, graph))


def trace_graph(
    module: Any, example_input: Any, *, kwargs: dict | None = None, kernel_norm: str = "1",
    keep_dead_ends: bool = False, input_axes: dict[str, int] | None = None, input_axis: int | None = None,
) -> WeightGraph:
    """The unit graph of ``module`` on ``example_input`` (a tensor or a tuple of the forward's
    positional arguments; ``kwargs`` its keyword arguments), by [spec §1b][spec-1b].

    The module runs once in eval mode under ``torch.export``; a small example input (batch 1,
    a few tokens or pixels) is enough, but a Linear after a flatten needs the real map size.
    ``kernel_norm``: the norm of a kernel, gate-row or flattened-map slice (default ``"1"``,
    numpy's matrix 1-norm: for a vector the sum of |.|). ``keep_dead_ends``: keep units that
    reach no output (queries and keys). ``input_axes``: the feature axis of an input by its
    argument name when the default is wrong (channels of 4-D / 5-D inputs, the last axis of 2-D
    inputs, of 3-D inputs the axis their first reader with weights reads, followed back through
    transposes and permutes, else the last axis). ``input_axis``: the first input's feature axis
    (``--input-axis``), when that guess is wrong.
    """
    check_norm(kernel_norm)
    return trace_program(
        export_module(module, example_input, kwargs), kernel_norm=kernel_norm, keep_dead_ends=keep_dead_ends,
        input_axes=input_axes, input_axis=input_axis,
    )
