"""The shape every task has: tensors, a loss, a metric, and named functions.

A *function* is a piece of the task the network must do, defined by data ([spec §5][spec-5]): a
subset of the examples and/or a subset of the output groups. Masks learn one
subnetwork per function; knockouts measure each function's accuracy.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch

from ..data import metrics
from ..data.dataset import Data
from ..data.functions import Function
from ..data.splits import ArraySplit
from ..errors import ModscopeError

__all__ = ["MINIBATCH_BIMT_DEFAULTS", "Task", "check_sizes", "column_functions", "task_from_arrays"]

# Training defaults shared by the minibatch classification tasks: Adam at batch 128, ReLU, and
# BIMT with the larger-task settings of spec §6 (lambda 0.01, y* 0.5, A 2, mean per tensor).
MINIBATCH_BIMT_DEFAULTS: dict[str, Any] = {
    "batch_size": 128,
    "lr": 1e-3,
    "activation": "relu",
    "bimt_lambda": 0.01,
    "bimt_y_star": 0.5,
    "bimt_A": 2.0,
    "bimt_reduction": "mean",
}


@dataclass
class Task:
    """Train / test data and how to score a model on it.

    Shapes: ``x_*`` is ``(N, n_inputs)`` float32, or ``(N, n_tokens)`` int64 token ids when
    ``vocab_size`` is set. For ``loss == "ce"``, ``y_*`` is ``(N, len(output_groups))`` int64:
    one class per group, the model's ``n_outputs`` logits split into consecutive groups of
    ``output_groups`` sizes (a plain classifier has one group). For ``loss == "mse"``,
    ``y_*`` is ``(N, n_outputs)`` float32.
    """

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    loss_kind: Literal["ce", "mse"]
    n_inputs: int
    n_outputs: int
    output_groups: tuple[int, ...] = ()
    vocab_size: int | None = None
    n_tokens: int | None = None
    functions: dict[str, Function] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    # training defaults (hidden, steps, lr, ...)
    defaults: dict[str, Any] = field(default_factory=dict)
    # e.g. (8, 8) for images: BIMT places inputs on a grid
    input_shape: tuple[int, ...] | None = None

    @property
    def n_classes(self) -> int | None:
        if self.loss_kind == "ce" and len(self.output_groups) == 1:
            return self.output_groups[0]
        return None

    # -- scoring: the definitions live in modscope.data.metrics ------------------------------
    def loss(self, out: torch.Tensor, y: torch.Tensor, groups: tuple[int, ...] | None = None) -> torch.Tensor:
        """Mean loss over examples (and over the asked-for output groups)."""
        return metrics.loss(out, y, self.loss_kind, self.output_groups, groups)

    def correct(
        self, out: torch.Tensor, y: torch.Tensor, groups: tuple[int, ...] | None = None
    ) -> torch.Tensor:
        """``(N,)`` bool: every asked-for output group right (classification tasks only)."""
        if self.loss_kind != "ce":
            raise ModscopeError(f"task {self.name} is a regression task: no accuracy")
        return metrics.correct(out, y, self.output_groups, groups)

    def metric(self, out: torch.Tensor, y: torch.Tensor, groups: tuple[int, ...] | None = None) -> float:
        """Accuracy in [0, 1] for classification, mean squared error for regression (float64)."""
        return float(metrics.metric(out, y, self.loss_kind, self.output_groups, groups))

    @property
    def metric_name(self) -> str:
        return metrics.metric_name(self.loss_kind)

    # -- functions ---------------------------------------------------------------------------
    def function_data(self, name: str, split: Literal["train", "test"] = "test"):
        """``(x, y, groups)`` of function ``name`` on ``split``."""
        fn = self.functions[name]
        x, y = (self.x_train, self.y_train) if split == "train" else (self.x_test, self.y_test)
        idx = fn.train_index if split == "train" else fn.test_index
        if idx is not None:
            x, y = x[idx], y[idx]
        return x, y, fn.groups

    # -- the data interface ------------------------------------------------------------------
    def to_data(self) -> Data:
        """This task as `modscope.data.Data` (its tensors as splits, its functions, its scoring)."""
        regression = self.loss_kind == "mse"
        return Data(
            test=ArraySplit(self.x_test, self.y_test, regression),
            train=ArraySplit(self.x_train, self.y_train, regression),
            kind="regression" if regression else "classification",
            output_groups=tuple(self.output_groups),
            n_classes=self.n_classes,
            functions=dict(self.functions),
            name=self.name,
        )


def check_sizes(name: str, **sizes: int) -> None:
    """Each size (``n_train=...``, ``n_test=...``) at least 1, or a one-line error naming it."""
    for k, v in sizes.items():
        if v < 1:
            raise ModscopeError(f"{name}: {k} must be >= 1, got {v}")


def task_from_arrays(
    name: str, train: tuple[Any, Any], test: tuple[Any, Any], *, loss_kind: Literal["ce", "mse"] = "ce",
    output_groups: tuple[int, ...], **fields: Any,
) -> Task:
    """A `Task` from the ``(x, y)`` arrays of its train and test split, copied into tensors: ``x``
    as ``(N, -1)`` float32 (integer token ids as int64), ``y`` as int64 classes ``(N, groups)`` (a
    1-D label vector becomes one column) for a classifier (the default ``loss_kind="ce"``) or, for
    ``loss_kind="mse"``, float32 targets.
    ``n_outputs`` is the sum of ``output_groups``; ``fields``: the other `Task` fields."""

    def tensors(split: str, x: Any, y: Any) -> dict[str, torch.Tensor]:
        x = np.array(x, dtype=np.int64 if np.issubdtype(np.asarray(x).dtype, np.integer) else np.float32)
        y = np.array(y, dtype=np.float32 if loss_kind == "mse" else np.int64)
        return {f"x_{split}": torch.from_numpy(x.reshape(len(x), -1)),
                f"y_{split}": torch.from_numpy(y[:, None] if y.ndim == 1 else y)}

    return Task(name=name, **tensors("train", *train), **tensors("test", *test), loss_kind=loss_kind,
                n_outputs=sum(output_groups), output_groups=tuple(output_groups), **fields)


def column_functions(n: int) -> dict[str, Function]:
    """``y1 .. yn``: one function per output column (output group ``i`` = column ``i``)."""
    return {f"y{i + 1}": Function(f"y{i + 1}", groups=(i,)) for i in range(n)}
