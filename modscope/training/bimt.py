"""BIMT, brain-inspired modular training ([spec §6][spec-6]; Liu, Gan & Tegmark 2023).

Neurons get fixed *positions* in space; a connection costs ``|w| * (A * distance + y*)``;
the loss adds ``lambda * cost``; every ``S`` steps the most connected neurons of each
layer move to the position where the connection cost drops most. Modules appear because
long connections are expensive and neurons that talk to each other end up close.

Conventions (shared with [`modscope.training.checkpoint`][modscope.training.checkpoint]):

* The model's tensors are always in *position* order. ``perms[l][p]`` is the original
  (task) index of the neuron at position ``p`` of layer ``l``. Layer 0 is the input
  (for token tasks: the concatenated embedding vector), layer ``L`` the output.
* [`BIMT.to_positions()`][modscope.training.bimt.BIMT.to_positions] /
  [`BIMT.to_task()`][modscope.training.bimt.BIMT.to_task] map inputs and outputs between task order and
  position order, so swapping input or output neurons never changes the function the trainer sees.

The swap search is vectorised: only the moved neurons' incident weights change cost, so
``C[j, p]`` = cost of neuron ``j``'s incident weights were it at position ``p`` is one
``|W| @ D`` product per layer and the cost change of swapping ``j`` with every ``k`` is
``C[j, k] + C[k, j] - C[j, j] - C[k, k]``.
[`swap_deltas_bruteforce()`][modscope.training.bimt.swap_deltas_bruteforce] recomputes the whole cost per
candidate, as the reference does; it is the test oracle and the benchmark baseline.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any, Literal

import torch
from torch import nn

from ..errors import ModscopeError
from .models import MLP
from .strategy import Regulariser

__all__ = [
    "BIMT",
    "BIMTConfig",
    "BIMTStrategy",
    "ConnectionCost",
    "Placement",
    "SwapStats",
    "distances",
    "layout",
    "permute_layer",
    "swap_deltas",
    "swap_deltas_bruteforce",
]

Reduction = Literal["sum", "mean"]
Schedule = Literal["reference", "constant"]

def _choose(what: str, value: str, allowed: tuple[str, str]) -> None:
    if value not in allowed:
        raise ModscopeError(f"BIMT {what} must be {allowed[0]!r} or {allowed[1]!r}, got {value!r}")


@dataclass(frozen=True)
class BIMTConfig:
    """BIMT's options; the defaults are used when the task names none (values of the formula tasks).

    lam: lambda_0, the connection-cost weight. A: weight factor of the distance term
    (0 = plain L1). y_star: distance between consecutive layers. top_k / swap_every:
    neurons moved per layer, every that many steps (0 = never swap). reduction: 'sum' or
    'mean' of each tensor's cost. schedule: 'reference' (lambda_0 for the first quarter,
    10 x lambda_0 until three quarters, then lambda_0) or 'constant'. bias_from: fraction of
    training after which biases are penalised (0.75 = last quarter only, the formula
    tasks). threshold: after training, |parameter| < threshold -> 0 (0 = keep all).
    output_layout: 'line' or 'ring'. lambdas: three lambdas, one per phase of training (e.g.
    0.01 -> 0.1 -> 1, BIMT's MNIST schedule); when given they replace lam and schedule. The
    phases end at the fractions lambda_phases of training (default the quarters: 1/4, 3/4).
    Every option but lambda_phases has a task default ``task.defaults['bimt_<option>']``
    (``bimt_lambda`` for lam).
    """

    lam: float = 1e-3
    A: float = 1.0
    y_star: float = 0.1
    top_k: int = 5
    swap_every: int = 200
    reduction: Reduction = "sum"
    schedule: Schedule = "reference"
    bias_from: float = 0.0
    threshold: float = 0.01
    output_layout: Literal["line", "ring"] = "line"
    lambdas: tuple[float, float, float] | None = None
    lambda_phases: tuple[float, float] = (0.25, 0.75)

    def __post_init__(self) -> None:
        for value, what in ((self.lam, "lambda"), (self.A, "A"), (self.y_star, "y*")):
            if not (math.isfinite(value) and value >= 0):
                raise ModscopeError(f"BIMT {what} must be a finite number >= 0, got {value}")
        for value, what in ((self.top_k, "top-k"), (self.swap_every, "swap-every")):
            if int(value) != value or value < 0:
                raise ModscopeError(f"BIMT {what} must be an integer >= 0, got {value}")
        _choose("reduction", self.reduction, ("sum", "mean"))
        _choose("schedule", self.schedule, ("reference", "constant"))
        if not 0.0 <= self.bias_from <= 1.0:
            raise ModscopeError(f"BIMT bias_from must be in [0, 1], got {self.bias_from}")
        if not (math.isfinite(self.threshold) and self.threshold >= 0):
            raise ModscopeError(f"BIMT threshold must be a number >= 0, got {self.threshold}")
        _choose("output layout", self.output_layout, ("line", "ring"))
        if self.lambdas is not None:
            lams = tuple(float(x) for x in self.lambdas)
            if len(lams) != 3 or not all(math.isfinite(x) and x >= 0 for x in lams):
                raise ModscopeError(f"BIMT lambdas must be three numbers >= 0, got {self.lambdas}")
            object.__setattr__(self, "lambdas", lams)
        a, b = (float(x) for x in self.lambda_phases)
        if not 0.0 <= a <= b <= 1.0:
            raise ModscopeError(f"BIMT lambda phases must satisfy 0 <= a <= b <= 1, got {self.lambda_phases}")
        object.__setattr__(self, "lambda_phases", (a, b))
        object.__setattr__(self, "top_k", int(self.top_k))
        object.__setattr__(self, "swap_every", int(self.swap_every))

    @classmethod
    def from_task(cls, task: Any = None, **overrides: Any) -> BIMTConfig:
        """The task's BIMT defaults (``task.defaults['bimt_*']``), then non-None ``overrides``."""
        names = [f.name for f in fields(cls)]
        defaults = getattr(task, "defaults", None) or {}
        # every option but lambda_phases, by its task default's key
        keys = {name: "bimt_lambda" if name == "lam" else f"bimt_{name}" for name in names[:-1]}
        values = {name: defaults[key] for name, key in keys.items() if defaults.get(key) is not None}
        unknown = set(overrides) - set(names)
        if unknown:
            raise ModscopeError(f"unknown BIMT option(s): {', '.join(sorted(unknown))}")
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["lambdas"] = None if self.lambdas is None else list(self.lambdas)
        d["lambda_phases"] = list(self.lambda_phases)
        return d

    def lambda_at(self, step: int, total: int) -> float:
        """lambda at 0-based ``step`` of ``total`` steps."""
        if self.lambdas is not None:
            a, b = self.lambda_phases
            return self.lambdas[0 if step < a * total else 1 if step < b * total else 2]
        if self.schedule == "reference" and total // 4 <= step < 3 * total // 4:
            return 10.0 * self.lam
        return self.lam

    def bias_on(self, step: int, total: int) -> bool:
        return step >= self.bias_from * total


# -- geometry ---------------------------------------------------------------------------------
def _line(n: int) -> torch.Tensor:
    """``(n, 1)``: x_j = (2j + 1) / (2n)."""
    return ((2 * torch.arange(n, dtype=torch.float64) + 1) / (2 * n))[:, None]


def _grid(n: int, shape: Sequence[int] | None = None) -> torch.Tensor:
    """``(n, 2)`` (x, y) of the first ``n`` cells of a rows x cols grid over [0, 1]^2, row-major:
    ``shape`` (rows, cols), or square-ish (``ceil(sqrt n)`` columns) without it."""
    cols = int(shape[1]) if shape is not None else math.ceil(math.sqrt(n))
    rows = int(shape[0]) if shape is not None else math.ceil(n / cols)
    idx = torch.arange(n)
    x = (2 * (idx % cols) + 1).double() / (2 * cols)
    y = (2 * (idx // cols) + 1).double() / (2 * rows)
    return torch.stack([x, y], 1)


def _lifted(coords: list[torch.Tensor]) -> list[torch.Tensor]:
    """When any layer is 2-D, every line ``(n, 1)`` lifted to y = 1/2 ``(n, 2)``."""
    if any(c.shape[1] == 2 for c in coords):
        return [c if c.shape[1] == 2 else torch.cat([c, torch.full_like(c, 0.5)], 1) for c in coords]
    return coords


def _ring(n: int) -> torch.Tensor:
    angle = 2 * math.pi * torch.arange(n, dtype=torch.float64) / n
    return torch.stack([0.5 + 0.4 * torch.cos(angle), 0.5 + 0.4 * torch.sin(angle)], 1)


def layout(
    widths: Sequence[int],
    input_shape: Sequence[int] | None = None,
    output_layout: str = "line",
) -> list[torch.Tensor]:
    """Neuron coordinates per layer: a list of ``(n_l, d)`` float64 tensors, d = 1 or 2.

    Layers are lines ``x_j = (2j + 1) / (2n)``. With a 2-D ``input_shape`` (images) whose
    size is the input width, the input sits on its pixel grid and hidden layers on
    square-ish grids, all in [0, 1]^2 (line layers then sit at y = 1/2); a ring output also
    makes the layout 2-D.
    """
    widths = [int(w) for w in widths]
    image = input_shape is not None and len(input_shape) == 2
    image = image and int(input_shape[0]) * int(input_shape[1]) == widths[0]
    coords = []
    for l, n in enumerate(widths):
        last = l == len(widths) - 1
        if last and output_layout == "ring":
            coords.append(_ring(n))
        elif image and not last:  # the input on its pixels, hidden layers on square-ish grids
            coords.append(_grid(n, input_shape if l == 0 else None))
        else:
            coords.append(_line(n))
    return _lifted(coords)


def distances(coords: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """L1 distances between consecutive layers: ``D[i]`` is ``(n_{i+1}, n_i)`` like ``W_i``."""
    return [(coords[i + 1][:, None, :] - coords[i][None, :, :]).abs().sum(-1)
            for i in range(len(coords) - 1)]


# -- connection cost --------------------------------------------------------------------------
class _Cost:
    """What the MLP's and the unit graph's connection costs share: the per-tensor reduction and
    `parts`, the tensors they penalise (which `_State` reads for the gradient and the threshold)."""

    y_star: float
    reduction: str

    def scale(self, t: torch.Tensor) -> float:
        return 1.0 / t.numel() if self.reduction == "mean" else 1.0

    def parts(self, model: nn.Module) -> tuple[list[tuple[torch.Tensor, torch.Tensor]], list, list]:
        """``(weights, biases, tables)``: each penalised weight with its coefficient tensor (its
        shape, ``A * dist + y*``), the biases and the embedding tables (``y* |p|``)."""
        raise NotImplementedError


class ConnectionCost(_Cost):
    """``cc = sum_l red(|W_l| * (A * D_l + y*)) + y* sum_l red(|b_l|) + y* red(|E|)``.

    ``red`` is the per-tensor reduction: 'sum', or 'mean' (each tensor's cost divided by its
    size, the reference's choice for the larger tasks). Distances are fixed per *position*.
    """

    def __init__(self, coords: Sequence[torch.Tensor], A: float, y_star: float,
                 reduction: Reduction = "sum") -> None:
        self.A = float(A)
        self.y_star = float(y_star)
        self.reduction = reduction
        self.dist = distances(coords)
        self.coef = [self.A * d + self.y_star for d in self.dist]

    def to(self, device: torch.device | str, dtype: torch.dtype = torch.float32) -> ConnectionCost:
        self.dist = [d.to(device, dtype) for d in self.dist]
        self.coef = [c.to(device, dtype) for c in self.coef]
        return self

    def parts(self, model: MLP) -> tuple[list[tuple[torch.Tensor, torch.Tensor]], list, list]:
        layers = model.layers
        weights = [(layer.weight, coef) for layer, coef in zip(layers, self.coef, strict=True)]
        biases = [layer.bias for layer in layers if layer.bias is not None]
        return weights, biases, [] if model.embedding is None else [model.embedding.weight]

    def __call__(self, model: MLP, bias: bool = True) -> torch.Tensor:
        """The cost (a scalar tensor, differentiable in the model's parameters)."""
        total = None
        for layer, coef in zip(model.layers, self.coef, strict=True):
            w = layer.weight
            term = (w.abs() * coef.to(w.dtype)).sum() * self.scale(w)
            if bias and layer.bias is not None:
                term = term + self.y_star * layer.bias.abs().sum() * self.scale(layer.bias)
            total = term if total is None else total + term
        if model.embedding is not None:
            e = model.embedding.weight
            total = total + self.y_star * e.abs().sum() * self.scale(e)
        return total

    def placement_matrix(self, model: MLP, l: int) -> torch.Tensor:
        """``(n_l, n_l)``: ``C[j, p]`` = position-dependent cost of the neuron now at position
        ``j`` of layer ``l`` were it at position ``p`` (its neighbours staying put).

        The y* and bias parts of the cost do not depend on positions and are left out. Every row of
        `Placement` (which a swap pass reads a few rows, columns and the diagonal of).
        """
        neurons = torch.arange(model.widths[l], device=model.layers[0].weight.device)
        return Placement(self, model, l).rows(neurons)


class Placement:
    """The placement costs of one layer's neurons without the ``(n_l, n_l)`` matrix.

    ``C[j, p] = sum_t f_t (A_t @ D_t^T)[j, p]``: for the incoming weights ``A = |W_in|`` (n_l, fan)
    and ``D`` the distances (n_l positions, fan); for the outgoing ones ``A = |W_out|^T`` and
    ``D = D_out^T``. A swap pass needs only the top-k neurons' rows, one column per top neuron
    and the diagonal: O(k n fan) per layer instead of O(n^2 fan). Its terms are built without gradients,
    so no product of them records one.
    """

    @torch.no_grad()
    def __init__(self, cost: ConnectionCost, model: MLP, l: int) -> None:
        self.terms: list[tuple[float, torch.Tensor, torch.Tensor]] = []
        for w, dim in _incident(model, l):  # the neurons' axis first: (n_l, fan) each
            d = cost.dist[l - 1 + dim].to(w.dtype)
            self.terms.append((cost.A * cost.scale(w), w.abs().movedim(dim, 0), d.movedim(dim, 0)))

    def rows(self, neurons: torch.Tensor) -> torch.Tensor:
        """``(len(neurons), n_l)``: the cost of each given neuron at every position."""
        return sum(f * (a[neurons] @ d.T) for f, a, d in self.terms)

    def column(self, position: int) -> torch.Tensor:
        """``(n_l,)``: the cost of every neuron were it at ``position``."""
        return sum(f * (a @ d[position]) for f, a, d in self.terms)

    def diagonal(self) -> torch.Tensor:
        """``(n_l,)``: the cost of every neuron at its own position."""
        return sum(f * (a * d).sum(1) for f, a, d in self.terms)


def swap_deltas(cost: ConnectionCost, model: MLP, l: int, j: int) -> torch.Tensor:
    """``(n_l,)``: the change of ``cost`` when neuron ``j`` of layer ``l`` swaps with each
    neuron ``k`` (``delta[j] == 0``): ``C[j, k] + C[k, j] - C[j, j] - C[k, k]``."""
    P = Placement(cost, model, l)
    diag = P.diagonal()
    d = P.rows(torch.tensor([j]))[0] + P.column(j) - diag[j] - diag
    d[j] = 0.0
    return d


@torch.no_grad()
def swap_deltas_bruteforce(cost: ConnectionCost, model: MLP, l: int, j: int,
                           bias: bool = True) -> torch.Tensor:
    """The oracle: swap, recompute the whole cost, swap back, for every candidate ``k``."""
    n = model.widths[l]
    base = cost(model, bias)
    out = torch.zeros(n, dtype=base.dtype, device=base.device)
    for k in range(n):
        if k == j:
            continue
        order = torch.arange(n, device=base.device)
        order[j], order[k] = k, j
        permute_layer(model, l, order)
        out[k] = cost(model, bias) - base
        permute_layer(model, l, order)  # a transposition is its own inverse
    return out


# -- moving neurons ---------------------------------------------------------------------------
def _incident(model: MLP, l: int) -> list[tuple[nn.Parameter, int]]:
    """Layer ``l``'s weights as (weight, dim) pairs, ``dim`` the axis indexing its neurons: the
    incoming weight's rows (dim 0, not for the input layer) and the outgoing one's columns (dim 1,
    not for the output layer)."""
    layers = model.layers
    return [(layers[l - 1 + dim].weight, dim) for dim in (0, 1) if 0 <= l - 1 + dim < len(layers)]


@torch.no_grad()
def permute_layer(model: MLP, l: int, order: torch.Tensor,
                  optimizer: torch.optim.Optimizer | None = None) -> None:
    """Put the neuron now at position ``order[p]`` of layer ``l`` at position ``p``.

    Permutes the neuron's incoming rows, bias and outgoing columns, and every optimizer
    state tensor of the same shape (Adam's ``exp_avg``, ``exp_avg_sq``) the same way, so
    the optimizer's memory moves with the weights.
    """
    bias = model.layers[l - 1].bias if l >= 1 else None
    for p, dim in _incident(model, l) + ([] if bias is None else [(bias, 0)]):
        _reorder(p, dim, order.to(p.device), optimizer)


@torch.no_grad()
def _reorder(t: torch.Tensor, dim: int, idx: torch.Tensor,
             optimizer: torch.optim.Optimizer | None = None) -> None:
    """``t[..., p, ...] <- t[..., idx[p], ...]`` along ``dim`` in place, and the same for every
    optimizer state tensor of ``t``'s shape (Adam's moments), so the optimizer's memory moves with it."""
    t.data.copy_(t.data.index_select(dim, idx))
    if optimizer is not None and t in optimizer.state:
        for v in optimizer.state[t].values():
            if torch.is_tensor(v) and v.shape == t.shape:
                v.copy_(v.index_select(dim, idx))


def _add_grad(p: torch.Tensor, g: torch.Tensor, alpha: float) -> None:
    if p.grad is None:
        p.grad = g.mul_(alpha)
    else:
        p.grad.add_(g, alpha=alpha)


@dataclass
class SwapStats:
    swaps: int = 0
    cost_change: float = 0.0

    def __add__(self, other: SwapStats) -> SwapStats:  # a pass's total over its layers or groups
        return SwapStats(self.swaps + other.swaps, self.cost_change + other.cost_change)


class _State:
    """What `BIMT` and `modscope.training.bimt_graph.GraphBIMT` share: the penalty on its schedule,
    its gradient and the final threshold, over their ``config`` and ``cost`` (a `_Cost`)."""

    config: BIMTConfig
    cost: _Cost

    def penalty(self, model: nn.Module, step: int, total: int) -> torch.Tensor:
        """``lambda(step) * cc`` at 0-based ``step`` of ``total``."""
        c = self.config
        return c.lambda_at(step, total) * self.cost(model, bias=c.bias_on(step, total))

    @torch.no_grad()
    def add_penalty_grad(self, model: nn.Module, step: int, total: int) -> None:
        """Add the gradient of `penalty` to the parameters' ``.grad`` (after backward).

        The same (sub)gradient autograd gives, ``lambda * scale * coef * sign(w)``, in two
        kernels per tensor instead of a differentiable graph: this keeps a BIMT step close
        to a plain one.
        """
        c, cost = self.config, self.cost
        lam = c.lambda_at(step, total)
        weights, biases, tables = cost.parts(model)
        for w, coef in weights:
            _add_grad(w, w.sign().mul_(coef.to(w.device, w.dtype)), lam * cost.scale(w))
        for p in (biases if c.bias_on(step, total) else []) + tables:
            _add_grad(p, p.sign(), lam * cost.y_star * cost.scale(p))

    @torch.no_grad()
    def threshold(self, model: nn.Module) -> int:
        """Zero every penalised weight and bias with ``|value| < threshold``; returns how many."""
        thr = self.config.threshold
        if thr <= 0:
            return 0
        weights, biases, _ = self.cost.parts(model)
        zeroed = 0
        for p in [w for w, _ in weights] + biases:
            small = p.abs() < thr
            zeroed += int((small & (p != 0)).sum())
            p.data.masked_fill_(small, 0.0)
        return zeroed


class BIMT(_State):
    """BIMT's state for one model: geometry, cost, permutations and the swap search.

    ``widths``: the model's layer widths; ``input_shape``: e.g. ``(8, 8)`` for images.
    """

    def __init__(self, config: BIMTConfig, widths: Sequence[int],
                 input_shape: Sequence[int] | None = None,
                 device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> None:
        self.config = config
        self.widths = tuple(int(w) for w in widths)
        self.coords = layout(self.widths, input_shape, config.output_layout)
        self.cost = ConnectionCost(self.coords, config.A, config.y_star, config.reduction).to(device, dtype)
        self.perms = [torch.arange(n, device=device) for n in self.widths]
        self._out_index = torch.argsort(self.perms[-1])  # kept: the outputs' way back to task order

    # -- the function in task order ----------------------------------------------------------
    def to_positions(self, h: torch.Tensor) -> torch.Tensor:
        """``(batch, n_0)`` first-layer inputs in task order -> position order."""
        return h.index_select(1, self.perms[0])

    def to_task(self, out: torch.Tensor) -> torch.Tensor:
        """``(batch, n_L)`` outputs in position order -> task order."""
        return out.index_select(1, self._out_index)

    # -- swaps --------------------------------------------------------------------------------
    @torch.no_grad()
    def scores(self, model: MLP, l: int) -> torch.Tensor:
        """``(n_l,)``: sum |incoming weights| + sum |outgoing weights| of each neuron."""
        return sum(w.abs().sum(1 - dim) for w, dim in _incident(model, l))

    @torch.no_grad()
    def swap_layer(self, model: MLP, l: int, optimizer: torch.optim.Optimizer | None = None,
                   method: Literal["vectorised", "bruteforce"] = "vectorised") -> SwapStats:
        """Move each of layer ``l``'s top-k neurons to the position that lowers cc most.

        Neurons are followed by identity: a top neuron already moved by an earlier swap
        is looked up where it now is. The cost never rises (staying put is a candidate).
        """
        n = self.widths[l]
        k = min(self.config.top_k, n)
        stats = SwapStats()
        if k == 0 or n < 2:
            return stats
        top = torch.argsort(self.scores(model, l), descending=True, stable=True)[:k].tolist()
        brute = method == "bruteforce"
        if not brute:
            # neuron m (pre-pass index) at position p costs C[m, p]: the top neurons' rows, each
            # position's column when a top neuron stands there, and every neuron's current cost
            P = Placement(self.cost, model, l)
            rows = P.rows(torch.tensor(top, device=model.layers[0].weight.device))
            current = P.diagonal()
        order = list(range(n))  # position -> neuron (pre-pass index)
        where = list(range(n))  # neuron -> position
        for i, t in enumerate(top):
            j = where[t]
            if brute:
                d = swap_deltas_bruteforce(self.cost, model, l, j)
            else:  # delta(q) = C[t, q] + C[order[q], j] - C[t, j] - C[order[q], q]
                at = torch.tensor(order, device=rows.device)
                column = P.column(j)
                d = rows[i] + column[at] - current[t] - current[at]
                d[j] = 0.0
            best = int(torch.argmin(d))
            if d[best] >= 0:
                continue
            if brute:  # the reference's way: move the weights now, recompute everything next
                swap = torch.arange(n, device=d.device)
                swap[j], swap[best] = best, j
                self.permute(model, l, swap, optimizer)
            else:
                other = order[best]
                current[t], current[other] = rows[i, best], column[other]
            order[j], order[best] = order[best], order[j]
            where[order[j]], where[order[best]] = j, best
            stats += SwapStats(1, float(d[best]))
        if stats.swaps and not brute:
            self.permute(model, l, torch.tensor(order, device=rows.device), optimizer)
        return stats

    def permute(self, model: MLP, l: int, order: torch.Tensor,
                optimizer: torch.optim.Optimizer | None = None) -> None:
        """Move layer ``l``'s neurons (see [`permute_layer()`][modscope.training.bimt.permute_layer]) and
        track them in ``perms``."""
        permute_layer(model, l, order, optimizer)
        self.perms[l] = self.perms[l].index_select(0, order.to(self.perms[l].device))
        if l == len(self.widths) - 1:
            self._out_index = torch.argsort(self.perms[-1])

    def swap_pass(self, model: MLP, optimizer: torch.optim.Optimizer | None = None,
                  method: Literal["vectorised", "bruteforce"] = "vectorised") -> SwapStats:
        """One relocation round over every layer, input to output."""
        return sum((self.swap_layer(model, l, optimizer, method) for l in range(len(self.widths))),
                   SwapStats())

    # -- the end ------------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        """The checkpoint's ``bimt`` entry: permutations, coordinates and the options."""
        return {
            "permutations": [p.detach().cpu().clone() for p in self.perms],
            "coordinates": [c.detach().cpu().float().clone() for c in self.coords],
            **self.config.to_dict(),
        }


class BIMTStrategy(Regulariser):
    """BIMT as a training strategy ([`Regulariser`][modscope.training.strategy.Regulariser]): the connection
    cost's gradient added after ``backward`` (lambda on its schedule over the main ``steps``, held at its last
    value while pruning), a swap pass every ``swap_every`` steps of the main training, and the threshold at
    the end. ``bimt`` is the run's `BIMT` state (positions and permutations), which the trainer
    also uses to map inputs and outputs, or a `modscope.training.bimt_graph.GraphBIMT` (any traced
    network, the same interface)."""

    name = "bimt"

    def __init__(self, bimt: BIMT) -> None:
        self.bimt = bimt
        self.steps = 0
        self.swaps = 0

    def params(self) -> dict[str, Any]:
        d = self.bimt.config.to_dict()
        metric = getattr(self.bimt.cost, "metric", None)  # a GraphBIMT's distance; the MLP's is L1
        return d if metric is None else {**d, "metric": metric}

    def start(self, model: MLP, steps: int) -> None:
        self.steps = int(steps)
        self.swaps = 0

    def add_grad(self, model: MLP, step: int) -> None:
        self.bimt.add_penalty_grad(model, min(step, self.steps - 1), self.steps)

    def after_step(self, model: MLP, step: int, optimizer: torch.optim.Optimizer) -> None:
        every = self.bimt.config.swap_every
        if step < self.steps and every and (step + 1) % every == 0:
            self.swaps += self.bimt.swap_pass(model, optimizer).swaps

    def finish(self, model: MLP) -> dict[str, Any]:
        self.bimt.threshold(model)
        with torch.no_grad():
            cost = float(self.bimt.cost(model))
        return {"connection_cost": cost, "swaps": self.swaps}
