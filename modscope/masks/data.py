"""Which examples each mask trains on and is tested on: a task's functions, resolved."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch

from ..data.functions import Function
from ..errors import ModscopeError
from ..tasks.base import Task

__all__ = ["FunctionData", "function_data", "resolve_functions"]


@dataclass(frozen=True)
class FunctionData:
    name: str
    train_index: torch.Tensor  # (n,) long, on device
    test_x: torch.Tensor
    test_y: torch.Tensor
    groups: tuple[int, ...] | None


def resolve_functions(
    task: Task, functions: Sequence[str | Function] | Mapping[str, Function] | None
) -> list[Function]:
    if functions is None:
        fns = list(task.functions.values())
    elif isinstance(functions, Mapping):
        fns = list(functions.values())
    else:
        fns = []
        for f in functions:
            if isinstance(f, Function):
                fns.append(f)
            elif f in task.functions:
                fns.append(task.functions[f])
            else:
                known = ", ".join(task.functions) or "none"
                hint = "; per-class masks: --classes / class_functions(task)" if str(
                    f).startswith("not-") else ""
                raise ModscopeError(
                    f"task {task.name} has no function {f!r} (it has: {known}){hint}"
                )
    if not fns:
        raise ModscopeError(f"no functions to mask: task {task.name} defines none and none were given")
    names = [f.name for f in fns]
    if len(set(names)) != len(names):
        raise ModscopeError(f"function names must be unique, got {names}")
    return fns


def function_data(task: Task, fn: Function, device: torch.device) -> FunctionData:
    n_train = task.x_train.shape[0]
    idx = fn.train_index if fn.train_index is not None else torch.arange(n_train)
    if idx.numel() == 0:
        raise ModscopeError(f"function {fn.name} has no training examples")
    x, y = task.x_test, task.y_test
    if fn.test_index is not None:
        x, y = x[fn.test_index], y[fn.test_index]
    return FunctionData(fn.name, idx.long().to(device), x.to(device), y.to(device), fn.groups)
