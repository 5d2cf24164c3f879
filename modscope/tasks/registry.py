"""The named tasks: ``get_task(name, seed=..., data=..., **params)``.

Every task records its generation parameters in ``Task.params`` (``seed``, ``data`` for
file-backed tasks, and each builder parameter), all JSON-able, so
``get_task(task.name, **task.params)`` regenerates the same tensors.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from ..data.functions import Function
from ..data.functions import class_functions as data_class_functions
from ..errors import ModscopeError
from . import arithmetic, formulas, images, incontext
from .base import Task

__all__ = ["TASKS", "class_functions", "get_task", "list_tasks", "TaskSpec"]


@dataclass(frozen=True)
class TaskSpec:
    """A named task: how to build it and the parameters it takes (with their defaults).

    ``build(seed=..., [data=...,] **params) -> Task``; ``params`` are read off its signature:
    every argument with a default. ``seeded`` says whether the seed changes the data;
    ``uses_data`` whether the task reads files from ``data``.
    """

    name: str
    description: str
    build: Callable[..., Task]
    params: Mapping[str, Any] = field(init=False)
    seeded: bool = True
    uses_data: bool = False
    default_data: str | None = None

    def __post_init__(self) -> None:
        arguments = inspect.signature(self.build).parameters.values()
        defaults = {a.name: a.default for a in arguments if a.default is not inspect.Parameter.empty}
        object.__setattr__(self, "params", defaults)  # frozen: set once, here

    def __call__(self, *, seed: int = 0, data: str | Path | None = None, **params: Any) -> Task:
        unknown = sorted(set(params) - set(self.params))
        if unknown:
            takes = ", ".join(self.params) or "no parameters"
            raise ModscopeError(
                f"task {self.name}: unknown parameter(s) {', '.join(unknown)} (takes {takes})"
            )
        seed = _coerce("seed", seed, 0, self.name)
        if seed < 0:
            raise ModscopeError(f"task {self.name}: seed must be >= 0, got {seed}")
        values = {k: _coerce(k, params.get(k, d), d, self.name) for k, d in self.params.items()}
        recorded: dict[str, Any] = {"seed": seed}
        if self.uses_data:
            data = self.default_data if data is None else data
            if data is not None:
                data = str(Path(data).expanduser().resolve())
            recorded["data"] = data
        elif data is not None:
            raise ModscopeError(f"task {self.name} is generated and takes no data= path")
        task = self.build(**recorded, **values)
        task.name = self.name
        task.params = {**recorded, **values}
        return task


# the words a boolean parameter takes (from the command line), any case
_BOOLEANS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


def _coerce(key: str, value: Any, default: Any, task: str) -> Any:
    """Convert ``value`` (e.g. a string from the command line) to the type of ``default``."""
    try:
        if isinstance(default, bool):
            if isinstance(value, str):
                return _BOOLEANS[value.strip().lower()]  # a KeyError for any other word
            if value in (0, 1):  # also True / False
                return bool(value)
            raise ValueError(value)
        if value is None and default is None:  # an optional setting left unset
            return None
        if isinstance(default, int | float) or default is None:
            whole = not isinstance(default, float)  # None defaults are optional ints
            if isinstance(value, bool) or (whole and isinstance(value, float) and not value.is_integer()):
                raise ValueError(value)
            return int(value) if whole else float(value)
    except (TypeError, ValueError, KeyError):
        kind = "boolean" if isinstance(default, bool) else type(default or 0).__name__
        raise ModscopeError(f"task {task}: {key} must be {kind}, got {value!r}") from None
    return value


TASKS: dict[str, TaskSpec] = {
    s.name: s
    for s in [
        TaskSpec("digits", "scikit-learn 8x8 digits (1797 images, fixed stratified 80/20 split), 10-way CE",
                 images.build_digits, seeded=False),
        TaskSpec("halves", "two 8x8 digits side by side (8x16); two 10-way groups; functions left, right",
                 images.build_halves),
        TaskSpec("mnist", "MNIST from data= (IDX directory or .npz), 28x28 -> 10-way CE; downsample=4: 7x7",
                 partial(images.build_mnist_like, "mnist"),
                 seeded=False, uses_data=True),
        TaskSpec(
            "fashion-mnist",
            f"Fashion-MNIST from data= (default {images.FASHION_MNIST_DIR}), 10-way CE; downsample=4: 7x7",
            partial(images.build_mnist_like, "fashion-mnist"),
            seeded=False, uses_data=True, default_data=images.FASHION_MNIST_DIR,
        ),
        TaskSpec("addmul", "(a + b) or (a * b) mod 100 on one-hot digits (42 inputs, 2x10 outputs); "
                 "functions add, mul", arithmetic.build_addmul),
        TaskSpec("tuple-add",
                 "two independent additions mod 100 (80 inputs, 4x10 outputs); functions first, second",
                 arithmetic.build_tuple_add),
        TaskSpec("modadd", "a + b mod 59 on token embeddings, all 59^2 pairs, seeded 80/20 split, 59-way CE",
                 arithmetic.build_modadd),
        TaskSpec("s4", "products p2∘p1 in the permutation group S4 on tokens, 576 pairs, 80/20, 24-way CE",
                 arithmetic.build_s4),
        TaskSpec("moons", "sklearn make_moons(200, noise=0.1) plus a separate test draw, 2-way CE",
                 formulas.build_moons),
        TaskSpec("incontext-linreg",
                 "in-context linear regression: sequences (x1, y1, ..., xT) with y = w x, w ~ U(-1, 1), "
                 "x ~ U(1, 3); predict every y_t; MSE; functions per position",
                 incontext.build_incontext),
        *(
            TaskSpec(name, f"{definition}, x ~ U[-1, 1]^{d}, 100 train / 100 test, MSE; functions per output",
                     partial(formulas.build_formula, name))
            for name, (d, _, _, definition) in formulas.FORMULAS.items()
        ),
    ]
}


def list_tasks() -> list[str]:
    """The task names, in registry order."""
    return list(TASKS)


def get_task(name: str, *, seed: int = 0, data: str | Path | None = None, **params: Any) -> Task:
    """Build task ``name``: deterministic in ``seed`` (and the files under ``data``).

    ``params`` override the task's generation parameters (``TASKS[name].params``); unknown
    names and parameters raise [`ModscopeError`][modscope.errors.ModscopeError].
    """
    spec = TASKS.get(name)
    if spec is None:
        raise ModscopeError(f"unknown task {name!r}; known tasks: {', '.join(TASKS)}")
    return spec(seed=seed, data=data, **params)


def class_functions(task: Task) -> dict[str, Function]:
    """For a single-group classifier: ``not-<c>`` per class ``c`` = the examples whose label
    is not ``c`` (masks' per-class removal trains one mask per such function)."""
    if task.loss_kind != "ce" or len(task.output_groups) != 1:
        raise ModscopeError(f"task {task.name}: per-class functions need a classifier with one output group")
    return data_class_functions(task.to_data())  # the same functions on the task's data
