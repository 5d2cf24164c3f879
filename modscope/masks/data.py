"""Which examples each mask trains on and is tested on: the data's functions, resolved.

The data (`modscope.data.Data`: a built-in task's tensors, arrays, memory-mapped files, datasets)
is never read whole: `StreamedData` reads the rows each step draws (``split.rows(index)``) and is
evaluated batch by batch (`modscope.masks.measures.evaluate_streamed`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..data import metrics
from ..data.functions import Function, function_where, parse_function
from ..errors import ModscopeError

__all__ = ["FunctionData", "StreamedData", "resolve_data_functions", "streamed_function"]


@dataclass(frozen=True)
class FunctionData:
    """One mask's examples: ``train_index`` ``(n,)`` long (rows of the split it trains on, on the
    device) and the output ``groups`` the function asks for."""

    name: str
    train_index: torch.Tensor  # (n,) long, on device
    groups: tuple[int, ...] | None


def resolve_data_functions(
    data: Any,
    functions: Sequence[str | Function] | Mapping[str, Function | Callable[[Any, Any], Any]] | None,
) -> list[Function]:
    """The functions of ``data`` (a `modscope.data.Data`) to mask.

    ``None``: the data's own (``data.functions``). A sequence of `Function` objects, names of the
    data's functions, or ``name=classes`` specs (`modscope.data.parse_function`). A mapping of
    names to `Function` objects or predicates ``predicate(x, y) -> (B,) bool`` over the examples
    (`modscope.data.function_where`).
    """
    if functions is None:
        fns = list(data.functions.values())
    elif isinstance(functions, Mapping):
        fns = [_given(data, name, f) for name, f in functions.items()]
    else:
        fns = [_listed(data, f) for f in functions]
    if not fns:
        raise ModscopeError(
            f"no functions to mask on {data.name}: it defines none; pass functions (--functions NAMES, "
            "--function NAME=CLASSES with --model) or one per class (--classes, class_functions(data))"
        )
    names = [f.name for f in fns]
    if len(set(names)) != len(names):
        raise ModscopeError(f"function names must be unique, got {names}")
    return fns


def _given(data: Any, name: Any, f: Any) -> Function:
    """A mapping's entry: a `Function`, or a predicate over the examples, named by its key."""
    if isinstance(f, Function):
        return f
    if not callable(f):
        raise ModscopeError(f"function {name!r}: a Function or a predicate(x, y), got {type(f).__name__}")
    return function_where(str(name), data, f)


def _listed(data: Any, f: Any) -> Function:
    """A sequence's entry: a `Function`, the name of one of the data's, or a ``name=classes`` spec."""
    if isinstance(f, Function):
        return f
    if isinstance(f, str) and f in data.functions:
        return data.functions[f]
    if isinstance(f, str) and "=" in f:
        return parse_function(f, data)
    known = ", ".join(data.functions) or "none"
    raise ModscopeError(
        f"{data.name} has no function {f!r} (it has: {known}); name one by its classes "
        "(name=2,3,4) or pass Function objects"
    )


@dataclass(frozen=True)
class StreamedData:
    """The user's data as mask training reads it: rows drawn from ``split`` (``"train"``, or
    ``"test"`` when the data has no train split) of ``data``, cast to the model's floating ``dtype``;
    ``groups`` the output groups of the model's outputs (`Data.groups`).

    The loss ([spec §5][spec-5], on the user's data): the data's own ``loss(out, y)`` when given (a scalar,
    or per-example values averaged), else mean cross-entropy over the asked-for output groups
    (classification) or mean squared error over the asked-for columns (regression).
    """

    data: Any
    split: str
    groups: tuple[int, ...]
    dtype: torch.dtype = torch.float32

    @property
    def name(self) -> str:
        return str(self.data.name)

    @property
    def kind(self) -> metrics.Kind:
        return "mse" if self.data.kind == "regression" else "ce"

    def inputs(self, x: torch.Tensor, device: torch.device) -> torch.Tensor:
        """``x`` as the model takes it: floating inputs in its dtype (token ids stay integers)."""
        return (x.to(self.dtype) if x.is_floating_point() else x).to(device)

    def batch(self, index: torch.Tensor, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """The examples at ``index`` ``(K, B)`` of the split: ``x`` ``(K, B, ...)``, ``y`` ``(K, B, ...)``,
        read in one pass (a memory map reads its rows in file order)."""
        K, B = index.shape
        x, y = self.data.split(self.split).rows(index.reshape(-1).cpu().numpy())
        return self.inputs(x, device).reshape(K, B, *x.shape[1:]), y.to(device).reshape(K, B, *y.shape[1:])

    def loss(self, out: torch.Tensor, y: torch.Tensor, groups: tuple[int, ...] | None = None) -> torch.Tensor:
        """The mean training loss of ``out`` ``(B, n_out)`` against ``y`` (a scalar tensor)."""
        if self.data.loss is not None:
            value = torch.as_tensor(self.data.loss(out, y))
            return value.mean() if value.ndim else value
        return metrics.loss(out, y, self.kind, self.groups, groups)


def streamed_function(stream: StreamedData, fn: Function, device: torch.device) -> FunctionData:
    """``fn``'s training rows in ``stream``'s split (all of them when the function names none)."""
    index = fn.train_index if stream.split == "train" else fn.test_index
    if index is None:
        index = np.arange(len(stream.data.split(stream.split)))
    index = torch.as_tensor(np.asarray(index), dtype=torch.long)
    if index.numel() == 0:
        raise ModscopeError(f"function {fn.name} has no {stream.split} examples to train its mask on")
    return FunctionData(fn.name, index.to(device), fn.groups)
