"""How a network's outputs are scored: one definition of the loss and of the metric, used by the
trainer, the lesion evaluators and the masks alike.

A task's outputs are split into consecutive *output groups* (a plain classifier has one group of
``n_classes`` logits; addmul has two 10-way digit groups). Classification targets ``y`` are
``(B, n_groups)`` class indices, regression targets ``(B, n_outputs)``. Every metric function takes
outputs with any leading dimensions, ``(..., B, n_out)`` (e.g. ``(K, B, n_out)`` for K masks or
lesions scored at once), and reduces only over the examples ``B``.

- accuracy: the fraction of examples with *every* asked-for output group right (float64);
- mean squared error: over the examples and the asked-for output columns (float64).
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import accumulate
from typing import Any, Literal

__all__ = [
    "Kind",
    "correct",
    "group_correct",
    "group_slices",
    "loss",
    "metric",
    "metric_name",
    "onehot_mse",
    "per_class_accuracy",
    "squared_error",
]

Kind = Literal["ce", "mse"]


def group_slices(
    output_groups: Sequence[int], groups: Sequence[int] | None = None
) -> list[tuple[int, slice]]:
    """``[(group, slice of its logits)]`` for the asked-for ``groups`` (``None``: all)."""
    starts = [0, *accumulate(output_groups)]  # group g's logits: starts[g] .. starts[g + 1]
    return [
        (g, slice(starts[g], starts[g + 1]))
        for g in range(len(output_groups)) if groups is None or g in groups
    ]


def loss(
    out: Any, y: Any, kind: Kind, output_groups: Sequence[int], groups: Sequence[int] | None = None
) -> Any:
    """The training loss of ``out`` ``(B, n_out)``: mean cross-entropy over the examples and the
    asked-for groups, or mean squared error over the asked-for columns (a scalar tensor)."""
    import torch
    import torch.nn.functional as F

    if kind == "mse":
        cols = list(groups) if groups is not None else slice(None)
        return F.mse_loss(out[:, cols], y[:, cols])
    return torch.stack(
        [F.cross_entropy(out[:, s], y[:, g]) for g, s in group_slices(output_groups, groups)]
    ).mean()


def onehot_mse(out: Any, y: Any, n_classes: int) -> Any:
    """Mean squared error of the logits ``(B, n_classes)`` to one-hot targets (a scalar tensor):
    BIMT's loss on MNIST ([spec §6][spec-6])."""
    import torch.nn.functional as F

    return F.mse_loss(out, F.one_hot(y[:, 0].long(), n_classes).to(out.dtype))


def group_correct(out: Any, y: Any, output_groups: Sequence[int]) -> Any:
    """``(..., B, n_groups)`` bool: is each output group's argmax the target class."""
    import torch

    y = y.to(out.device)
    return torch.stack([out[..., s].argmax(-1) == y[:, g] for g, s in group_slices(output_groups)], -1)


def correct(out: Any, y: Any, output_groups: Sequence[int], groups: Sequence[int] | None = None) -> Any:
    """``(..., B)`` bool: every asked-for output group right."""
    ok = group_correct(out, y, output_groups)
    return (ok if groups is None else ok[..., list(groups)]).all(-1)


def squared_error(out: Any, y: Any, groups: Sequence[int] | None = None) -> Any:
    """``(..., B, n_cols)`` float64 squared errors of the asked-for output columns."""
    err = (out.double() - y.to(out.device).double()) ** 2
    return err if groups is None else err[..., list(groups)]


def metric(
    out: Any, y: Any, kind: Kind, output_groups: Sequence[int], groups: Sequence[int] | None = None
) -> Any:
    """``(...,)`` float64: accuracy (classification) or mean squared error (regression) over the
    examples of ``out`` ``(..., B, n_out)``."""
    if kind == "mse":
        return squared_error(out, y, groups).mean((-2, -1))
    return correct(out, y, output_groups, groups).double().mean(-1)


def per_class_accuracy(out: Any, y: Any, n_classes: int) -> Any:
    """``(..., n_classes)`` float64 accuracy on each true class of a one-group classifier (the
    diagonal of the confusion matrix over its row sums); NaN for classes absent from ``y``."""
    import torch.nn.functional as F

    onehot = F.one_hot(y[:, 0].long().to(out.device), n_classes).double()  # (B, C)
    return ((out.argmax(-1) == y[:, 0].to(out.device)).double() @ onehot) / onehot.sum(0)  # hits / count


def metric_name(kind: Kind) -> str:
    """``"accuracy"`` or ``"mse"``: what `metric` reports for a kind of task."""
    return "accuracy" if kind == "ce" else "mse"
