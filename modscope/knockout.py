"""Knockout (lesion) experiments: do the modules found matter for what the network does? (spec §4)

A *sub-module* is the set of neurons of one hidden layer that carry one cluster label. A
*lesion* silences neurons: they output zero. Each true lesion is compared with ``N`` random
lesions of the same size in the same layer (the layer's labels permuted), which answers
"does removing *this* group hurt more than removing any group of its size?".

Conventions used throughout:

* Layers are numbered as in the weight graph (spec §1): 0 is the input layer, ``1 .. L-1``
  the hidden layers, ``L`` the output layer. Hidden layer ``l`` is the output of
  ``model.layers[l - 1]`` after the activation. Only hidden neurons are lesioned.
* Neurons labelled ``-1`` (degree-0 nodes removed before clustering) belong to no
  sub-module, and the random lesions are drawn among the layer's *labelled* neurons only
  (a dead neuron cannot be in a true module, so it may not dilute a random one either).
* The task metric is accuracy for classification and mean squared error for regression.
  ``delta = metric(lesioned) - metric(intact)``. The *damage* of a lesion is the accuracy
  drop ``intact - lesioned`` for classification and the MSE rise ``lesioned - intact`` for
  regression, so larger damage is always worse.
* p-value (left-tailed: "is the true lesion worse than random ones?"), with the ``+1``
  convention of spec §3: ``p = (#{random damage >= true damage} + 1) / (N + 1)``. Ties count
  against significance, so a lesion that changes nothing while random lesions change
  nothing either gets ``p = 1``. The floor is ``1 / (N + 1)``.
* ``z = (metric(true) - mean(metric(random))) / std(metric(random))`` with ``ddof = 0``;
  for accuracy a negative z means worse than random, for MSE a positive one. ``None``
  when the random lesions all score the same.
* Categories, with ``min_effect`` in metric units (default 0.01 = one accuracy point;
  for MSE tasks pass a threshold in MSE units):

  - ``important``: ``p < alpha`` and ``damage >= min_effect``;
  - ``sig-but-small``: ``p < alpha`` and ``damage < min_effect``;
  - ``prunable``: ``p == 1`` (every random lesion did at least as much damage) and
    ``damage < min_effect``;
  - ``not-significant``: everything else.

* Fisher's method combines the sub-modules' p-values (``scipy.stats.combine_pvalues``).
  The p-values share one network, so they are not independent: read ``fisher_p`` as a
  summary, not an exact test.
* Pair interaction: ``D_ij - (D_ii + D_jj)`` with ``D_ij`` the damage of the joint lesion
  of sub-modules i and j and ``D_ii`` the damage of the single lesion of i. Positive: the
  pair hurts more than the sum of its parts (they back each other up); negative: less
  (serial roles, e.g. the same pathway in two layers, or the metric saturating at chance).
  A pair's random counterpart is a random set of the same size in each of its layers (for
  two sub-modules of one layer: one random set of their combined size).
* Randomness: ``SeedSequence(seed)`` spawns one stream per sub-module and one per pair,
  so a sub-module's random lesions do not depend on which others are evaluated.

Evaluation is batched: the true lesion and its ``N`` random ones are per-lesion neuron
masks of shape ``(N + 1, width)`` multiplied into the lesioned layer's output, and the
rest of the network runs once on the stacked ``(N + 1, batch, width)`` tensor; the layers
before the first lesioned one run only once for all lesions, and the layer right after it
is updated by a low-rank correction (see :class:`BatchedEvaluator`). :class:`LoopEvaluator` (one
forward per lesion through :func:`lesion`) is the oracle the batched path is tested
against. The model is never modified by the batched path; :func:`lesion` and
:func:`remove_weights` modify it in place and always restore it.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any, Literal, Protocol

import numpy as np
import torch
import torch.nn.functional as F
from scipy import stats
from torch import nn

from .cache import UnitCache, fingerprint_arrays
from .errors import ModscopeError
from .masks import CONTROL
from .tasks import class_functions
from .tasks.base import Task

Split = Literal["train", "test"]
Category = Literal["important", "sig-but-small", "prunable", "not-significant"]


# -- the model's structure ---------------------------------------------------------------------
def _linears(model: nn.Module) -> list[nn.Linear]:
    """The Linear stack of a modscope MLP (or anything with ``layers``, ``act``, ``embed``)."""
    layers = getattr(model, "layers", None)
    ok = (
        isinstance(layers, nn.ModuleList)
        and len(layers) >= 2
        and all(isinstance(m, nn.Linear) for m in layers)
        and callable(getattr(model, "act", None))
        and callable(getattr(model, "embed", None))
    )
    if not ok:
        raise ModscopeError(
            "knockouts need a modscope MLP with at least one hidden layer "
            "(a `layers` list of nn.Linear, an `act` and an `embed`)"
        )
    return list(layers)


def layer_widths(model: nn.Module) -> tuple[int, ...]:
    """Neuron counts of the model's layers, input to output (the graph's ``layer_widths``)."""
    lins = _linears(model)
    return (lins[0].in_features, *(m.out_features for m in lins))


def _act_at_zero(model: nn.Module) -> float:
    w = _linears(model)[0].weight
    return float(model.act(torch.zeros(1, dtype=w.dtype, device=w.device)))


@contextmanager
def _eval_mode(model: nn.Module) -> Iterator[None]:
    """Eval mode (no dropout) and no autograd inside; every module's ``training`` flag restored."""
    flags = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        for m, flag in flags:
            m.training = flag


# -- lesions that modify the model (and always restore it) --------------------------------------
@contextmanager
def lesion(model: nn.Module, neurons: Mapping[int, Any]) -> Iterator[nn.Module]:
    """Silence hidden neurons inside the ``with`` block; the exact weights come back on exit.

    ``neurons``: ``{graph layer l (1 .. L-1): neuron indices in that layer}``. Zeroes the
    neurons' incoming weights (rows of ``layers[l-1].weight``) and biases, so their
    pre-activation is 0 and their output ``act(0)``: 0 for ReLU, SiLU, GELU and tanh. For
    activations with ``act(0) != 0`` (sigmoid: 0.5) the outgoing weights (columns of
    ``layers[l].weight``) are zeroed too, so in every case a lesioned neuron contributes
    nothing downstream ("outputs zero"). Restores on normal exit and on error.
    """
    lins = _linears(model)
    n_hidden = len(lins) - 1
    index: dict[int, torch.Tensor] = {}
    for layer, ids in neurons.items():
        if not 1 <= int(layer) <= n_hidden:
            raise ModscopeError(f"layer {layer} is not a hidden layer (1 .. {n_hidden})")
        arr = np.asarray(ids, dtype=np.int64).reshape(-1)
        width = lins[int(layer) - 1].out_features
        if arr.size and (arr.min() < 0 or arr.max() >= width):
            raise ModscopeError(f"neuron index out of range for layer {layer} of width {width}")
        index[int(layer)] = torch.from_numpy(arr).to(lins[0].weight.device)
    zero_outgoing = _act_at_zero(model) != 0.0
    touched: dict[int, torch.Tensor] = {}
    for layer in index:
        params = [lins[layer - 1].weight, lins[layer - 1].bias]
        if zero_outgoing:
            params.append(lins[layer].weight)
        for p in params:
            if p is not None:
                touched[id(p)] = p
    saved = [(p, p.detach().clone()) for p in touched.values()]
    try:
        with torch.no_grad():
            for layer, idx in index.items():
                lin = lins[layer - 1]
                lin.weight[idx] = 0
                if lin.bias is not None:
                    lin.bias[idx] = 0
                if zero_outgoing:
                    lins[layer].weight[:, idx] = 0
        yield model
    finally:
        with torch.no_grad():
            for p, original in saved:
                p.copy_(original)


def weight_masks(model: nn.Module, masks: Any) -> dict[str, torch.Tensor]:
    """Normalise one function's mask to ``{parameter name: bool tensor of its shape}``.

    Accepts a sequence of bool tensors, one per ``nn.Linear`` weight in forward order
    (``None`` entries skipped), or a mapping from parameter names (``"layers.0.weight"``)
    or Linear indices to bool tensors. ``True`` marks a weight of the subnetwork.
    """
    params = dict(model.named_parameters())
    lins = _linears(model)
    names = {id(p): n for n, p in params.items()}
    out: dict[str, torch.Tensor] = {}
    if isinstance(masks, Mapping):
        items = list(masks.items())
    elif isinstance(masks, Sequence) and not isinstance(masks, str | bytes):
        if len(masks) != len(lins):
            raise ModscopeError(
                f"got {len(masks)} masks for a model with {len(lins)} Linear layers"
            )
        items = list(enumerate(masks))
    else:
        raise ModscopeError(
            f"a mask must be a list of tensors or a dict, got {type(masks).__name__}"
        )
    for key, m in items:
        if m is None:
            continue
        if isinstance(key, int):
            if not 0 <= key < len(lins):
                raise ModscopeError(f"mask for Linear layer {key}, the model has {len(lins)}")
            name = names[id(lins[key].weight)]
        else:
            name = str(key)
        if name not in params:
            raise ModscopeError(f"mask for unknown parameter {name!r}")
        t = torch.as_tensor(m)
        if t.dtype != torch.bool:
            raise ModscopeError(f"mask for {name} must be boolean, got {t.dtype}")
        if tuple(t.shape) != tuple(params[name].shape):
            raise ModscopeError(
                f"mask for {name} has shape {tuple(t.shape)}, "
                f"the weight {tuple(params[name].shape)}"
            )
        out[name] = t
    return out


@contextmanager
def remove_weights(model: nn.Module, masks: Any) -> Iterator[nn.Module]:
    """Zero exactly the weights a function's mask marks (``True``), keep the rest (spec §5).

    ``masks``: anything :func:`weight_masks` accepts (e.g. one entry of
    :func:`modscope.masks.load_masks`). The original values come back on exit, also on error.
    """
    from .masks import masked

    with masked(model, weight_masks(model, masks), invert=True) as m:
        yield m


# -- labels and sub-modules --------------------------------------------------------------------
@dataclass(frozen=True)
class Submodule:
    """The neurons (indices within graph layer ``layer``) that carry cluster label ``cluster``."""

    layer: int
    cluster: int
    neurons: tuple[int, ...]

    @property
    def size(self) -> int:
        return len(self.neurons)


def hidden_layer_labels(labels: Any, widths: Sequence[int]) -> list[np.ndarray]:
    """One int64 label array per hidden layer, from any of the accepted label layouts.

    ``labels`` is either one label per graph node in graph order (input, hidden, output
    layers, each in index order; length ``sum(widths)``), or a list of per-layer arrays
    (one per hidden layer, or one per layer including input and output), or an object with
    a ``labels`` attribute (a :class:`~modscope.spectral.Partition`). ``-1`` = unlabelled.
    """
    labels = getattr(labels, "labels", labels)
    widths = [int(w) for w in widths]
    n_hidden = len(widths) - 2
    per_layer = isinstance(labels, list | tuple) and len(labels) > 0 and np.ndim(labels[0]) == 1
    if per_layer:
        arrays = [np.asarray(a) for a in labels]
        if len(arrays) == len(widths):
            arrays = arrays[1:-1]
        elif len(arrays) != n_hidden:
            raise ModscopeError(
                f"got label arrays for {len(arrays)} layers; the model has {n_hidden} hidden "
                f"layers ({len(widths)} layers in all)"
            )
        for a, w in zip(arrays, widths[1:-1], strict=True):
            if a.shape != (w,):
                raise ModscopeError(f"a hidden layer of width {w} got {a.shape[0]} labels")
    else:
        flat = np.asarray(labels)
        if flat.ndim != 1 or flat.shape[0] != sum(widths):
            raise ModscopeError(
                f"expected one label per graph node ({sum(widths)} for widths {widths}), "
                f"got shape {flat.shape}"
            )
        arrays = np.split(flat, np.cumsum(widths)[:-1])[1:-1]
    out = []
    for a in arrays:
        if a.size and not np.issubdtype(a.dtype, np.integer):
            if not np.all(np.isfinite(a)) or not np.all(a == np.round(a)):
                raise ModscopeError("cluster labels must be integers")
        a = a.astype(np.int64)
        if a.size and a.min() < -1:
            raise ModscopeError("cluster labels must be >= 0, or -1 for unlabelled neurons")
        out.append(a)
    return out


def submodules(labels: Any, widths: Sequence[int]) -> list[Submodule]:
    """Every (hidden layer, cluster) sub-module with at least one neuron, by layer then cluster."""
    result = []
    for i, lab in enumerate(hidden_layer_labels(labels, widths)):
        for c in np.unique(lab[lab >= 0]):
            result.append(Submodule(i + 1, int(c), tuple(np.flatnonzero(lab == c).tolist())))
    return result


# -- evaluating many lesions at once -----------------------------------------------------------
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

    Metric as :meth:`Task.metric`: accuracy (every output group right) for classification,
    MSE over all examples and outputs for regression; per function on the function's
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
        self._onehot = None
        if task.n_classes is not None:
            self._onehot = F.one_hot(self.y[:, 0].long(), task.n_classes).double()  # (B, C)
            self._class_counts = self._onehot.sum(0).numpy()

    def _group_correct(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """``(N, B, n_groups)`` bool: is each output group right."""
        parts, start = [], 0
        for g, size in enumerate(self.task.output_groups):
            parts.append(out[..., start : start + size].argmax(-1) == y[:, g])
            start += size
        return torch.stack(parts, -1)

    def __call__(self, out: torch.Tensor) -> Scores:
        y = self.y.to(out.device)
        if self.kind == "mse":
            err = (out.double() - y.double()) ** 2  # (N, B, n_out)
            metric = err.mean((1, 2))
            per_fn = [_select(err, idx, cols).mean((1, 2)) for idx, cols in self._fn]
            per_class = None
        else:
            ok = self._group_correct(out, y)
            metric = ok.all(-1).double().mean(1)
            per_fn = [_select(ok, idx, cols).all(-1).double().mean(1) for idx, cols in self._fn]
            per_class = None
            if self._onehot is not None:
                hits = ok.all(-1).double() @ self._onehot.to(out.device)  # (N, C)
                with np.errstate(invalid="ignore", divide="ignore"):
                    per_class = hits.cpu().numpy() / self._class_counts
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
        self._lins = _linears(model)
        w = self._lins[0].weight
        with _eval_mode(model):
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
        with _eval_mode(self.model):
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
    """One full forward per lesion, the weights zeroed by :func:`lesion`: the plain oracle."""

    def __init__(self, model: nn.Module, scorer: Scorer) -> None:
        self.model = model
        self.scorer = scorer
        _linears(model)

    def _forward(self) -> torch.Tensor:
        w = _linears(self.model)[0].weight
        x = self.scorer.x.to(w.device)
        return self.model(x.to(w.dtype) if x.is_floating_point() else x)

    def intact(self) -> Scores:
        with _eval_mode(self.model):
            return self.scorer(self._forward()[None])

    def evaluate(self, keep: Mapping[int, torch.Tensor]) -> Scores:
        n = next(iter(keep.values())).shape[0]
        parts = []
        with _eval_mode(self.model):
            for r in range(n):
                silenced = {l: torch.nonzero(~m[r].bool()).flatten().cpu() for l, m in keep.items()}
                with lesion(self.model, silenced):
                    parts.append(self.scorer(self._forward()[None]))
        return Scores.concat(parts)


# -- statistics --------------------------------------------------------------------------------
def _damage(metric: np.ndarray | float, intact: float, kind: str) -> np.ndarray:
    m = np.asarray(metric, dtype=np.float64)
    return m - intact if kind == "mse" else intact - m


def lesion_p_value(true_damage: float, random_damage: np.ndarray, tol: float = 0.0) -> float:
    """``(#{random damage >= true damage - tol} + 1) / (N + 1)``: small = worse than random."""
    random_damage = np.asarray(random_damage, dtype=np.float64)
    count = int(np.count_nonzero(random_damage >= true_damage - tol))
    return (count + 1) / (random_damage.size + 1)


def categorize(p_value: float, damage: float, alpha: float, min_effect: float) -> Category:
    """The taxonomy of the module docstring (``p == 1``: every random lesion tied or beat it)."""
    if p_value < alpha:
        return "important" if damage >= min_effect else "sig-but-small"
    if p_value >= 1.0 and damage < min_effect:
        return "prunable"
    return "not-significant"


def _z(true_metric: float, random_metric: np.ndarray) -> float | None:
    sd = float(np.std(random_metric))
    if sd == 0.0 or not np.isfinite(sd):
        return None
    return (true_metric - float(np.mean(random_metric))) / sd


def _num(x: float | None) -> float | None:
    """A JSON-safe float: ``None`` for NaN / inf / None."""
    return None if x is None or not math.isfinite(float(x)) else float(x)


def _num_list(a: np.ndarray | None) -> list[float | None] | None:
    return None if a is None else [_num(v) for v in np.asarray(a).tolist()]


# -- results -----------------------------------------------------------------------------------
@dataclass
class LesionResult:
    """One true lesion against its random ones. ``random_metric``: ``(N,)``, not in JSON."""

    size: int
    accuracy: float
    per_class: np.ndarray | None
    per_function: dict[str, float]
    delta: float
    damage: float
    p_value: float
    z: float | None
    category: Category
    random_mean: float
    random_std: float
    random_metric: np.ndarray = field(repr=False)

    def _common(self) -> dict[str, Any]:
        return {
            "size": int(self.size),
            "accuracy": _num(self.accuracy),
            "per_class": _num_list(self.per_class),
            "per_function": {k: _num(v) for k, v in self.per_function.items()},
            "delta": _num(self.delta),
            "p_value": float(self.p_value),
            "z": _num(self.z),
            "category": self.category,
            "random_mean": _num(self.random_mean),
            "random_std": _num(self.random_std),
        }


@dataclass
class SubmoduleResult(LesionResult):
    layer: int = 0
    cluster: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"layer": int(self.layer), "cluster": int(self.cluster), **self._common()}


@dataclass
class PairResult(LesionResult):
    layer_a: int = 0
    cluster_a: int = 0
    layer_b: int = 0
    cluster_b: int = 0
    interaction: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "layer_a": int(self.layer_a),
            "cluster_a": int(self.cluster_a),
            "layer_b": int(self.layer_b),
            "cluster_b": int(self.cluster_b),
            **self._common(),
            "interaction": _num(self.interaction),
        }


_FRAME_DROP = ("per_class", "per_function")


@dataclass
class KnockoutResult:
    """Single (and optionally double) lesions of every sub-module against random lesions.

    ``metric`` names what the ``accuracy`` fields hold: ``"accuracy"`` (fraction correct)
    or, for regression tasks, ``"mse"`` (lower is better).
    """

    metric: str
    intact_accuracy: float
    intact_per_class: np.ndarray | None
    intact_per_function: dict[str, float]
    submodules: list[SubmoduleResult]
    fisher_p: float | None
    pairs: list[PairResult] | None
    n_random: int
    seed: int
    alpha: float
    min_effect: float
    functions: FunctionKnockoutResult | None = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "metric": self.metric,
            "intact_accuracy": _num(self.intact_accuracy),
            "intact_per_class": _num_list(self.intact_per_class),
            "intact_per_function": {k: _num(v) for k, v in self.intact_per_function.items()},
            "submodules": [s.to_dict() for s in self.submodules],
            "fisher_p": _num(self.fisher_p),
            "n_random": int(self.n_random),
            "seed": int(self.seed),
            "alpha": float(self.alpha),
            "min_effect": float(self.min_effect),
        }
        if self.pairs is not None:
            d["pairs"] = [p.to_dict() for p in self.pairs]
        if self.functions is not None:
            d["functions"] = self.functions.to_dict()
        return d

    def to_frame(self):
        """One row per sub-module (per-class / per-function columns flattened)."""
        return _frame([s.to_dict() for s in self.submodules])

    def pairs_frame(self):
        """One row per pair of sub-modules (empty when pairs were not run)."""
        return _frame([p.to_dict() for p in self.pairs or []])


def _frame(rows: list[dict[str, Any]]):
    import pandas as pd

    flat = []
    for row in rows:
        r = {k: v for k, v in row.items() if k not in _FRAME_DROP}
        for c, v in enumerate(row.get("per_class") or []):
            r[f"class_{c}"] = v
        for name, v in (row.get("per_function") or {}).items():
            r[f"fn_{name}"] = v
        flat.append(r)
    return pd.DataFrame(flat)


# -- the experiment ----------------------------------------------------------------------------
def _keep_from_removed(removed: np.ndarray, width: int) -> torch.Tensor:
    """``(n, k)`` neuron indices to silence -> ``(n, width)`` bool keep-mask."""
    keep = np.ones((removed.shape[0], width), dtype=bool)
    keep[np.arange(removed.shape[0])[:, None], removed] = False
    return torch.from_numpy(keep)


def _random_removed(
    rng: np.random.Generator, labelled: np.ndarray, size: int, n: int
) -> np.ndarray:
    """``(n, size)``: ``n`` uniformly random ``size``-subsets of the labelled neurons.

    The same distribution as "permute the layer's labels and take one cluster's neurons",
    vectorised: one row of random keys per draw, argsorted.
    """
    order = np.argsort(rng.random((n, labelled.size)), axis=1)[:, :size]
    return labelled[order]


def _layer_lesions(
    rng: np.random.Generator,
    parts: Sequence[Submodule],
    labelled: Mapping[int, np.ndarray],
    widths: Sequence[int],
    n_random: int,
) -> dict[int, torch.Tensor]:
    """Keep-masks ``{layer: (n_random + 1, width)}``: row 0 the true (joint) lesion, then N random.

    Sub-modules in the same layer are silenced together; their random counterpart is one
    random set of the combined size (disjoint random sets of the parts' sizes, pooled).
    """
    by_layer: dict[int, list[int]] = {}
    for s in parts:
        by_layer.setdefault(s.layer, []).extend(s.neurons)
    keep = {}
    for layer in sorted(by_layer):
        true = np.asarray(sorted(set(by_layer[layer])), dtype=np.int64)
        rand = _random_removed(rng, labelled[layer], true.size, n_random)
        removed = np.concatenate([true[None], rand])
        keep[layer] = _keep_from_removed(removed, widths[layer])
    return keep


def _lesion_stats(
    scores: Scores, intact: Scores, kind: str, functions: Sequence[str], alpha: float,
    min_effect: float, size: int,
) -> dict[str, Any]:
    """Row 0 of ``scores`` is the true lesion, rows 1.. the random ones."""
    base = float(intact.metric[0])
    true_metric, rand_metric = float(scores.metric[0]), scores.metric[1:]
    damage = float(_damage(true_metric, base, kind))
    rand_damage = _damage(rand_metric, base, kind)
    # ties in float arithmetic: accuracies are exact ratios, MSEs need a little slack
    tol = 0.0 if kind == "ce" else 1e-9 * max(abs(base), float(np.max(np.abs(rand_metric))), 1e-12)
    p = lesion_p_value(damage, rand_damage, tol)
    return {
        "size": size,
        "accuracy": true_metric,
        "per_class": None if scores.per_class is None else scores.per_class[0],
        "per_function": {f: float(scores.per_function[0, i]) for i, f in enumerate(functions)},
        "delta": true_metric - base,
        "damage": damage,
        "p_value": p,
        "z": _z(true_metric, rand_metric),
        "category": categorize(p, damage, alpha, min_effect),
        "random_mean": float(np.mean(rand_metric)),
        "random_std": float(np.std(rand_metric)),
        "random_metric": rand_metric.copy(),
    }


def _encode(value: Any) -> Any:
    """JSON-ready copy of a lesion-stats dict: arrays tagged, non-finite floats as strings."""
    if isinstance(value, dict):
        return {k: _encode(v) for k, v in value.items()}
    if isinstance(value, np.ndarray):  # raw bytes: exact, NaN included
        return {"__array__": value.tobytes().hex(), "dtype": value.dtype.str, "shape": list(value.shape)}
    if isinstance(value, float | np.floating) and not math.isfinite(value):
        return {"__float__": repr(float(value))}
    if isinstance(value, np.generic):
        return value.item()
    return value


def _decode(value: Any) -> Any:
    if isinstance(value, dict):
        if "__array__" in value:
            raw = bytes.fromhex(value["__array__"])
            return np.frombuffer(raw, dtype=np.dtype(value["dtype"])).reshape(value["shape"]).copy()
        if "__float__" in value:
            return float(value["__float__"])
        return {k: _decode(v) for k, v in value.items()}
    return value


def knockout(
    model: nn.Module,
    task: Task,
    labels: Any,
    *,
    n_random: int = 100,
    pairs: bool = False,
    seed: int = 0,
    alpha: float = 0.05,
    min_effect: float = 0.01,
    split: Split = "test",
    masks: Mapping[str, Any] | None = None,
    method: Literal["batched", "loop"] = "batched",
    progress: bool = False,
    max_elements: int = 2**22,
    cache: str | os.PathLike | None = None,
) -> KnockoutResult:
    """Lesion every (hidden layer, cluster) sub-module and compare with random lesions.

    ``labels``: cluster labels, see :func:`hidden_layer_labels` (``-1`` = no sub-module).
    ``n_random``: random same-size lesions per true lesion (needs ``1 / (n_random + 1) <
    alpha``). ``pairs``: also every pair of sub-modules, jointly. ``seed``: the random
    lesions come from ``SeedSequence(seed)``: one child stream per sub-module and per pair,
    so results do not depend on evaluation order. ``masks``: ``{function: mask}`` (see
    :func:`weight_masks`) to also run :func:`function_knockout`. ``method="loop"`` uses
    the plain one-forward-per-lesion oracle. The model is not changed. ``cache``: a folder
    where each finished sub-module and pair is kept (`modscope.cache`), so an interrupted
    run recomputes only what is missing.
    """
    if int(n_random) < 1:
        raise ModscopeError(f"need at least one random lesion, got {n_random}")
    if not 0.0 < alpha <= 1.0:
        raise ModscopeError(f"alpha must be in (0, 1], got {alpha}")
    if 1.0 / (n_random + 1) >= alpha:
        raise ModscopeError(
            f"with {n_random} random lesions the smallest p-value is 1/{n_random + 1}, not below "
            f"alpha = {alpha}; use at least {math.floor(1 / alpha)} random lesions"
        )
    if method not in ("batched", "loop"):
        raise ModscopeError(f"method must be 'batched' or 'loop', got {method!r}")
    widths = layer_widths(model)
    hidden = hidden_layer_labels(labels, widths)
    subs = submodules(hidden, widths)
    if not subs:
        raise ModscopeError("no sub-modules: every hidden neuron is unlabelled (-1)")
    labelled = {i + 1: np.flatnonzero(lab >= 0) for i, lab in enumerate(hidden)}
    scorer = Scorer(task, split)
    kind, fnames = scorer.kind, scorer.functions
    evaluator: LesionEvaluator = (
        BatchedEvaluator(model, scorer, max_elements) if method == "batched"
        else LoopEvaluator(model, scorer)
    )
    intact = evaluator.intact()

    pair_list = list(combinations(range(len(subs)), 2)) if pairs else []
    single_ss, pair_ss = np.random.SeedSequence(seed).spawn(2)
    single_seeds = single_ss.spawn(len(subs))
    pair_seeds = pair_ss.spawn(len(pair_list))
    from tqdm.auto import tqdm

    bar = tqdm(total=len(subs) + len(pair_list), desc="knockout", disable=not progress,
               file=sys.stderr, leave=False)
    store = None
    if cache is not None:
        key = {"unit": "knockout_lesion", "weights": fingerprint_arrays(
            [t.detach().cpu().numpy() for t in model.state_dict().values()]),
            "task": [task.name, task.params, split], "labels": [h.tolist() for h in hidden],
            "n_random": int(n_random), "seed": int(seed), "alpha": alpha, "min_effect": min_effect}
        store = UnitCache(cache, key)

    def unit(idx: int, lesioned: list, ss) -> dict[str, Any]:
        """Stats of one true lesion against its random ones, from the cache when there."""
        found = store.get(idx) if store is not None else None
        if found is not None:
            return _decode(found)
        keep = _layer_lesions(np.random.default_rng(ss), lesioned, labelled, widths, n_random)
        st = _lesion_stats(evaluator.evaluate(keep), intact, kind, fnames, alpha, min_effect,
                           sum(x.size for x in lesioned))
        if store is not None:
            store.put(idx, _encode(st))
        return st

    try:
        singles: list[SubmoduleResult] = []
        for idx, (s, ss) in enumerate(zip(subs, single_seeds, strict=True)):
            st = unit(idx, [s], ss)
            singles.append(SubmoduleResult(**st, layer=s.layer, cluster=s.cluster))
            bar.update()
        pair_results: list[PairResult] | None = [] if pairs else None
        for idx, ((i, j), ss) in enumerate(zip(pair_list, pair_seeds, strict=True), start=len(subs)):
            a, b = subs[i], subs[j]
            st = unit(idx, [a, b], ss)
            inter = st["damage"] - (singles[i].damage + singles[j].damage)
            pair_results.append(PairResult(**st, layer_a=a.layer, cluster_a=a.cluster,
                                           layer_b=b.layer, cluster_b=b.cluster,
                                           interaction=inter))
            bar.update()
    finally:
        bar.close()

    fisher = float(stats.combine_pvalues([s.p_value for s in singles], method="fisher").pvalue)
    fn_result = function_knockout(model, task, masks, split=split) if masks else None
    return KnockoutResult(
        metric=task.metric_name,
        intact_accuracy=float(intact.metric[0]),
        intact_per_class=None if intact.per_class is None else intact.per_class[0],
        intact_per_function={f: float(intact.per_function[0, i]) for i, f in enumerate(fnames)},
        submodules=singles,
        fisher_p=fisher,
        pairs=pair_results,
        n_random=int(n_random),
        seed=int(seed),
        alpha=float(alpha),
        min_effect=float(min_effect),
        functions=fn_result,
    )


def task_for_checkpoint(ckpt: Any, name: str | None = None, data: str | None = None) -> Task:
    """The task to test a checkpoint on: ``name`` (default: the one it was trained on).

    The checkpoint's recorded task parameters (seed, sizes) are reused when the names
    agree, so the test split is the one it was evaluated on; ``data`` overrides the data
    path of file-backed tasks.
    """
    from .tasks import get_task

    recorded = ckpt.task or {}
    name = name or recorded.get("name")
    if not name:
        raise ModscopeError("the checkpoint records no task: pass one with --task")
    params = dict(recorded.get("params") or {}) if name == recorded.get("name") else {}
    if data is not None:
        params["data"] = data
    task = get_task(name, **params)
    widths = ckpt.architecture.widths
    if task.vocab_size is None and (task.n_inputs, task.n_outputs) != (widths[0], widths[-1]):
        raise ModscopeError(
            f"task {name} has {task.n_inputs} inputs and {task.n_outputs} outputs, the network "
            f"{widths[0]} and {widths[-1]}"
        )
    return task


def knockout_checkpoint(
    path: str,
    *,
    task: str | None = None,
    data: str | None = None,
    n_clusters: int = 12,
    masks: str | None = None,
    **kwargs: Any,
) -> KnockoutResult:
    """Load a modscope checkpoint, cluster its weight graph, and run :func:`knockout`.

    The graph is built from the rebuilt model (hidden neurons in the model's order) and
    clustered with :func:`modscope.cluster` (``n_clusters``, the same ``seed`` as the
    lesions). ``masks``: a file from ``modscope masks --save`` for lesions by function.
    ``kwargs`` go to :func:`knockout`. The file is only read.
    """
    from .checkpoint import load_checkpoint
    from .io import load_graph
    from .spectral import cluster

    ckpt = load_checkpoint(path)
    model = ckpt.model()
    the_task = task_for_checkpoint(ckpt, task, data)
    graph = load_graph(model)
    partition = cluster(graph, n_clusters, seed=kwargs.get("seed", 0))
    mask_dict = None
    if masks is not None:
        from .masks import load_masks

        mask_dict = load_masks(masks)
    return knockout(model, the_task, partition.labels, masks=mask_dict, **kwargs)


# -- lesions by function -----------------------------------------------------------------------
@dataclass
class FunctionKnockoutResult:
    """Every function's metric with each function's mask removed (spec §5's inverted mask test).

    ``removed[f][g]``: metric of function ``g`` with the weights of ``M_f`` zeroed.
    ``mask_sizes[f]``: how many weights ``M_f`` marks.
    """

    metric: str
    functions: list[str]
    intact: dict[str, float]
    removed: dict[str, dict[str, float]]
    mask_sizes: dict[str, int]

    def to_dict(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "functions": list(self.functions),
            "intact": {g: _num(v) for g, v in self.intact.items()},
            "removed": {f: {g: _num(v) for g, v in row.items()} for f, row in self.removed.items()},
            "mask_sizes": {f: int(n) for f, n in self.mask_sizes.items()},
        }

    def to_frame(self):
        """Rows: the removed mask (``"none"`` for intact); columns: the function scored."""
        import pandas as pd

        rows = {"none": self.intact, **self.removed}
        return pd.DataFrame.from_dict(rows, orient="index")[self.functions]


def function_knockout(
    model: nn.Module, task: Task, masks: Mapping[str, Any], *, split: Split = "test"
) -> FunctionKnockoutResult:
    """Remove each function's mask in turn (:func:`remove_weights`) and score every function.

    ``masks``: ``{function name: mask}``, a mask in any form :func:`weight_masks` accepts.
    Functions without a mask are still scored. The model is restored after each removal.
    """
    if not masks:
        raise ModscopeError("no masks given")
    scorer = Scorer(task, split)
    names = scorer.functions or ["all"]
    known = set(task.functions) | {"all", CONTROL}  # `control`: the mask trained on all the data
    if task.n_classes is not None:
        known |= set(class_functions(task))  # `not-<c>` masks of a per-class run
    unknown = [f for f in masks if f not in known]
    if unknown:
        raise ModscopeError(
            f"masks for unknown functions {unknown}; task {task.name} has {list(task.functions)}"
        )
    norm = {f: weight_masks(model, m) for f, m in masks.items()}

    def score() -> dict[str, float]:
        s = LoopEvaluator(model, scorer).intact()
        if not scorer.functions:
            return {"all": float(s.metric[0])}
        return {g: float(s.per_function[0, i]) for i, g in enumerate(names)}

    intact = score()
    removed = {}
    for f, m in norm.items():
        with remove_weights(model, m):
            removed[f] = score()
    sizes = {f: int(sum(int(t.sum()) for t in m.values())) for f, m in norm.items()}
    return FunctionKnockoutResult(task.metric_name, names, intact, removed, sizes)


# -- text output -------------------------------------------------------------------------------
def format_knockout(result: KnockoutResult, max_pairs: int = 20) -> str:
    """A plain-text table for a terminal: one line per sub-module, then the top pairs."""
    m = result.metric
    # a few functions (left / right, y1 / y2): show which one each sub-module serves
    fns = list(result.intact_per_function) if len(result.intact_per_function) <= 6 else []
    lines = [
        f"knockout: {len(result.submodules)} sub-modules, {result.n_random} random lesions each, "
        f"seed {result.seed}",
        f"intact {m}: {result.intact_accuracy:.4f}"
        + "".join(f", {f} {result.intact_per_function[f]:.4g}" for f in fns),
        "",
        f"{'layer':>5} {'cluster':>7} {'size':>5} {m:>9} {'delta':>9} {'p':>7} {'z':>7}  "
        f"{'category':<15}" + "".join(f" {f[:10]:>10}" for f in fns),
    ]

    def fmt_z(z: float | None) -> str:
        return f"{z:7.2f}" if z is not None else f"{'-':>7}"

    for s in result.submodules:
        lines.append(
            f"{s.layer:>5} {s.cluster:>7} {s.size:>5} {s.accuracy:>9.4f} {s.delta:>+9.4f} "
            f"{s.p_value:>7.4f} {fmt_z(s.z)}  {s.category:<15}"
            + "".join(f" {s.per_function[f]:>10.4g}" for f in fns)
        )
    counts = {c: sum(s.category == c for s in result.submodules)
              for c in ("important", "sig-but-small", "prunable", "not-significant")}
    lines += [
        "",
        "categories: " + ", ".join(f"{c} {n}" for c, n in counts.items()),
        f"Fisher combined p over sub-modules: {result.fisher_p:.3g}"
        + f"  (alpha {result.alpha}, min effect {result.min_effect})",
    ]
    if result.pairs:
        top = sorted(result.pairs, key=lambda p: -abs(p.interaction))[:max_pairs]
        lines += ["", f"pairs (top {len(top)} of {len(result.pairs)} by |interaction|):",
                  f"{'a':>7} {'b':>7} {m:>9} {'delta':>9} {'p':>7} {'interact':>9}  category"]
        for p in top:
            lines.append(
                f"{p.layer_a:>3}:{p.cluster_a:<3} {p.layer_b:>3}:{p.cluster_b:<3} "
                f"{p.accuracy:>9.4f} {p.delta:>+9.4f} {p.p_value:>7.4f} {p.interaction:>+9.4f}  "
                f"{p.category}"
            )
    if result.functions is not None:
        fk = result.functions
        lines += ["", f"function masks removed ({fk.metric} of each function):",
                  f"{'removed':>12} " + " ".join(f"{g:>12}" for g in fk.functions)]
        for name, row in [("none", fk.intact), *fk.removed.items()]:
            lines.append(f"{name:>12} " + " ".join(f"{row[g]:>12.4f}" for g in fk.functions))
    return "\n".join(lines) + "\n"
