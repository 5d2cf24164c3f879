"""Scoring many lesioned networks at once.

A lesion set is given as keep-masks ``{graph layer l: (N, width_l) bool}``: ``True`` keeps a
neuron, ``False`` silences it. `BatchedEvaluator` runs all ``N`` lesions of a call as one stacked
forward pass (the layers before the first lesioned one once for all, the layer right after it by
a low-rank correction); `LoopEvaluator` runs one forward per lesion through `lesion` and is the
oracle the batched path is tested against. `Scorer` turns stacked outputs into the task's metric,
per class and per function.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np
import torch
from torch import nn

from ..data import metrics
from ..errors import ModscopeError
from ..runtime.modules import eval_mode
from ..tasks.base import Task
from .hooks import lesion
from .network import mlp_layers

__all__ = ["BatchedEvaluator", "LesionEvaluator", "LoopEvaluator", "Scorer", "Scores", "Split"]

Split = Literal["train", "test"]


@dataclass
class Scores:
    """Task metrics of ``N`` lesioned networks.

    ``metric``: ``(N,)``; ``per_class``: ``(N, C)`` accuracy per true class (NaN for classes
    absent from the data; ``None`` unless the task is a single-group classifier);
    ``per_function``: ``(N, F)`` in the order of ``Scorer.functions``.
    """

    metric: np.ndarray
    per_class: np.ndarray | None
    per_function: np.ndarray

    @staticmethod
    def concat(parts: Sequence[Scores]) -> Scores:
        return Scores(
            np.concatenate([p.metric for p in parts]),
            None if parts[0].per_class is None else np.concatenate([p.per_class for p in parts]),
            np.concatenate([p.per_function for p in parts]),
        )


class Scorer:
    """Scores stacked network outputs ``(N, B, n_out)`` on one split of a task, vectorised.

    Metric as [`Task.metric()`][modscope.tasks.base.Task.metric]: accuracy (every output group right) for
    classification, MSE over all examples and outputs for regression; per function on the function's
    examples and output groups.
    """

    def __init__(self, task: Task, split: Split = "test") -> None:
        if split not in ("train", "test"):
            raise ModscopeError(f"split must be 'train' or 'test', got {split!r}")
        self.task = task
        if split == "train":
            self.x, self.y = task.x_train, task.y_train
        else:
            self.x, self.y = task.x_test, task.y_test
        if self.x.shape[0] == 0:
            raise ModscopeError(f"task {task.name} has no {split} examples")
        self.kind = task.loss_kind
        self.functions = list(task.functions)
        n = self.x.shape[0]
        self._fn: list[tuple[torch.Tensor | None, list[int] | None]] = []
        for name in self.functions:
            fn = task.functions[name]
            idx = getattr(fn, f"{split}_index")
            if idx is not None:
                idx = torch.as_tensor(idx, dtype=torch.long)
                if idx.numel() and (idx.min() < 0 or idx.max() >= n):
                    raise ModscopeError(f"function {name}: example index out of range")
            self._fn.append((idx, None if fn.groups is None else list(fn.groups)))

    def __call__(self, out: torch.Tensor) -> Scores:
        # the definitions of modscope.data.metrics, computed once and reduced per function
        per_class = None
        if self.kind == "mse":
            err = metrics.squared_error(out, self.y)  # (N, B, n_out)
            metric = err.mean((1, 2))
            per_fn = [_select(err, idx, cols).mean((1, 2)) for idx, cols in self._fn]
        else:
            ok = metrics.group_correct(out, self.y, self.task.output_groups)  # (N, B, n_groups)
            metric = ok.all(-1).double().mean(1)
            per_fn = [_select(ok, idx, cols).all(-1).double().mean(1) for idx, cols in self._fn]
            if self.task.n_classes is not None:
                per_class = metrics.per_class_accuracy(out, self.y, self.task.n_classes).cpu().numpy()
        n = out.shape[0]
        per_function = torch.stack(per_fn, 1).cpu().numpy() if per_fn else np.zeros((n, 0))
        return Scores(metric.cpu().numpy(), per_class, per_function)


def _select(t: torch.Tensor, rows: torch.Tensor | None, cols: list[int] | None) -> torch.Tensor:
    """``t[:, rows][..., cols]`` of an ``(N, B, k)`` tensor; ``None`` = all (no copy)."""
    if rows is not None:
        t = t[:, rows.to(t.device)]
    return t if cols is None else t[..., cols]


class LesionEvaluator(Protocol):
    """Scores ``N`` lesions given as keep-masks ``{graph layer l: (N, width_l) bool}``.

    ``True`` keeps a neuron, ``False`` silences it. Layers missing from the dict are intact.
    """

    def intact(self) -> Scores: ...

    def evaluate(self, keep: Mapping[int, torch.Tensor]) -> Scores: ...


class BatchedEvaluator:
    """All lesions of one call in one stacked forward pass (chunked to bound memory).

    The intact activations of every layer are computed once; a call starts from the first
    lesioned layer and runs the remaining layers on an ``(N, B, width)`` stack, multiplying
    the ``(N, width)`` keep-masks into each lesioned layer's output. When every lesion of
    the call silences the same number ``r`` of neurons in the first lesioned layer (true and
    random lesions of one sub-module do) and ``r`` is under half the layer, the next layer's
    pre-activation is the intact one minus the silenced neurons' contribution,
    ``z - h[:, R] @ W[:, R].T``: a ``(N, B, r) @ (N, r, width)`` batched matmul instead of a
    full one. ``max_elements`` bounds ``N_chunk * B * max width`` (floats per chunk).
    """

    def __init__(self, model: nn.Module, scorer: Scorer, max_elements: int = 2**22) -> None:
        self.model = model
        self.scorer = scorer
        self.max_elements = int(max_elements)
        self._lins = mlp_layers(model)
        w = self._lins[0].weight
        with eval_mode(model, no_grad=True):
            h = model.embed(scorer.x.to(w.device))
            h = h.to(w.dtype) if h.is_floating_point() else h
            self._acts: dict[int, torch.Tensor] = {}  # layer l: (B, width) output after act
            self._pre: dict[int, torch.Tensor] = {}  # layer l: (B, width) before act
            for k, lin in enumerate(self._lins):
                z = lin(h)
                self._pre[k + 1] = z
                if k + 1 < len(self._lins):
                    h = self._acts[k + 1] = model.act(z)
            self._intact = scorer(z[None])

    def intact(self) -> Scores:
        return self._intact

    def evaluate(self, keep: Mapping[int, torch.Tensor]) -> Scores:
        if not keep:
            raise ModscopeError("a lesion needs at least one layer")
        first = min(keep)
        n = next(iter(keep.values())).shape[0]
        lins, n_lin = self._lins, len(self._lins)
        dtype, device = lins[0].weight.dtype, lins[0].weight.device
        masks = {l: m.to(device=device, dtype=dtype) for l, m in keep.items()}
        drop = ~keep[first].to(device=device, dtype=torch.bool)
        counts = drop.sum(1)
        r = int(counts[0]) if n else 0
        low_rank = n > 0 and bool((counts == r).all()) and 2 * r < drop.shape[1]
        if low_rank:
            # the r silenced neurons of each lesion, (n, r)
            removed = torch.argsort(drop.to(torch.uint8), dim=1, descending=True, stable=True)
            removed = removed[:, :r]
            w_t = lins[first].weight.t()  # (width_first, width_next)
        batch = self._acts[first].shape[0]
        widest = max(m.out_features for m in lins[first - 1 :])
        chunk = max(1, self.max_elements // max(1, batch * widest))
        parts = []
        with eval_mode(self.model, no_grad=True):
            for start in range(0, n, chunk):
                sl = slice(start, start + chunk)
                if low_rank:
                    idx = removed[sl]
                    h_r = self._acts[first][:, idx].transpose(0, 1)  # (n, B, r)
                    z = self._pre[first + 1][None] - torch.bmm(h_r, w_t[idx])
                else:
                    z = lins[first](self._acts[first][None] * masks[first][sl, None, :])
                for j in range(first + 1, n_lin):  # z: (n, B, width) pre-activation of layer j
                    h = self.model.act(z)
                    if j in masks:
                        h = h * masks[j][sl, None, :]
                    z = lins[j](h)
                parts.append(self.scorer(z))
        return Scores.concat(parts)


class LoopEvaluator:
    """One full forward per lesion, the weights zeroed by [`lesion()`][modscope.lesions.hooks.lesion]: the
    plain oracle."""

    def __init__(self, model: nn.Module, scorer: Scorer) -> None:
        self.model = model
        self.scorer = scorer
        mlp_layers(model)

    def _forward(self) -> torch.Tensor:
        w = mlp_layers(self.model)[0].weight
        x = self.scorer.x.to(w.device)
        return self.model(x.to(w.dtype) if x.is_floating_point() else x)

    def intact(self) -> Scores:
        with eval_mode(self.model, no_grad=True):
            return self.scorer(self._forward()[None])

    def evaluate(self, keep: Mapping[int, torch.Tensor]) -> Scores:
        n = next(iter(keep.values())).shape[0]
        parts = []
        with eval_mode(self.model, no_grad=True):
            for r in range(n):
                silenced = {l: torch.nonzero(~m[r].bool()).flatten().cpu() for l, m in keep.items()}
                with lesion(self.model, silenced):
                    parts.append(self.scorer(self._forward()[None]))
        return Scores.concat(parts)
