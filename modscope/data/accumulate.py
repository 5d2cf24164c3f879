"""A metric summed batch by batch for ``N`` networks at once (masks, lesions), so a dataset of any
size is scored while only one batch of it is in memory.

Outputs come stacked ``(N, B, n_out)``. The definitions are those of `modscope.data.metrics`:
accuracy (every asked-for output group right), mean squared error, or the data's own metric
``metric(out, y) -> (B,)`` averaged over the examples; accuracy per true class for a one-group
classifier; the same per function on the function's examples and output groups.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from . import metrics
from .functions import Function

__all__ = ["Accumulator"]


def _membership(index: Any, size: int) -> np.ndarray | None:
    """``(size,)`` bool, ``True`` at ``index``; ``None`` for ``None`` (every example)."""
    if index is None:
        return None
    member = np.zeros(size, dtype=bool)
    member[np.asarray(index, dtype=np.int64)] = True
    return member


class Accumulator:
    """Sums for ``n`` networks over the batches of one split of ``data`` (a `Data`).

    ``functions``: scored on their ``test_index`` (or ``train_index`` with ``split="train"``)
    examples and ``groups`` outputs. ``add(index, out, y)`` with ``out`` ``(n, B, n_out)``;
    `result` gives ``(metric (n,), per_class (n, C) or None, per_function (n, F))`` as float64
    numpy arrays (NaN where a class or function has no examples).
    """

    def __init__(
        self, data: Any, n_outputs: int, n: int, functions: Sequence[Function] = (), split: str = "test"
    ):
        self.data, self.n = data, int(n)
        self.groups = data.groups(n_outputs)
        self.functions = list(functions)
        size = len(data.split(split))
        # per function: a (size,) bool membership of its examples (None: all of them)
        self.member = [_membership(getattr(fn, f"{split}_index"), size) for fn in self.functions]
        one_group = data.kind == "classification" and data.metric is None and len(self.groups) == 1
        self.n_classes = c = data.n_classes if one_group else None
        self.total = np.zeros(self.n)
        self.count = 0
        self.fn_total = np.zeros((self.n, len(self.functions)))
        self.fn_count = np.zeros(len(self.functions))
        self.hits = np.zeros((self.n, c)) if c else None
        self.class_count = np.zeros(c) if c else None

    def _values(self, out: Any, y: Any, groups: Sequence[int] | None) -> Any:
        """``(n, B)`` per-example values whose mean is the metric (over the asked-for groups)."""
        d = self.data
        if d.metric is not None:
            import torch

            return torch.stack([torch.as_tensor(d.metric(o, y)).double() for o in out])
        if d.kind == "regression":
            return metrics.squared_error(out, y, groups).mean(-1)
        return metrics.correct(out, y, self.groups, groups).double()

    def add(self, index: np.ndarray, out: Any, y: Any, rows: slice = slice(None)) -> None:
        """Add a batch: ``out`` ``(m, B, n_out)`` of networks ``rows`` (default all ``n``), ``y`` its
        labels, ``index`` the examples' indices in the split. Every network must see every batch
        once; the example count advances with the batch that reaches the last network."""
        import torch

        index = np.asarray(index)
        y = y.to(out.device)
        values = self._values(out, y, None)  # (m, B)
        self.total[rows] += values.sum(1).cpu().numpy()
        last = rows.stop is None or rows.stop >= self.n
        if last:
            self.count += len(index)
        for f, (fn, member) in enumerate(zip(self.functions, self.member, strict=True)):
            picked = np.arange(len(index)) if member is None else np.flatnonzero(member[index])
            if picked.size == 0:
                continue
            v = values if fn.groups is None else self._values(out, y, fn.groups)
            self.fn_total[rows, f] += v[:, torch.from_numpy(picked).to(v.device)].sum(1).cpu().numpy()
            if last:
                self.fn_count[f] += picked.size
        if self.hits is not None:
            labels = y[:, 0].long()
            right = (out.argmax(-1) == labels).double()  # (n, B)
            onehot = torch.nn.functional.one_hot(labels, self.n_classes).double()  # (B, C)
            self.hits[rows] += (right @ onehot).cpu().numpy()
            if last:
                self.class_count += onehot.sum(0).cpu().numpy()

    def result(self) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
        with np.errstate(invalid="ignore", divide="ignore"):
            metric = self.total / self.count if self.count else np.full(self.n, np.nan)
            per_fn = self.fn_total / self.fn_count[None, :]
            per_class = None if self.hits is None else self.hits / self.class_count[None, :]
        return metric, per_class, per_fn
