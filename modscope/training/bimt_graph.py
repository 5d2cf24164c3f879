"""BIMT on any architecture: positions, connection cost and swaps on the unit graph ([spec §6][spec-6]).

Every unit group of the traced network (`modscope.training.permutation`) gets positions in
[0, 1]^d: a line ``x_j = (2j + 1) / (2n)`` per group as for an MLP's layers, a square-ish grid for
convolution channels, the image plane for an input of ``input_shape`` pixels; a line sits at
y = 1/2 when any group is 2-D. A weight entry joining node ``a`` (the unit it writes) to node ``b``
(the unit it reads) costs ``|w| * (A * dist(a, b) + y*)`` (a kernel slice: the sum of its entries,
its 1-norm); an entry with no node at one end (a query or key row), a bias or an embedding table
costs ``y* |w|``. ``dist`` is L1 (the paper) or L2 (seRNN): ``metric``.

Tensors stay in *position* order, as for the MLP: a swap permutes a group in every tensor slice
that indexes it (`permute`), so the network's function is unchanged and the cost coefficients are
fixed per position. The position-dependent part of the cost is ``sum_{a,b} W[a, b] D[a, b]`` with
``W`` the node-level matrix of ``A * scale * |w|`` summed per (writer, reader) pair and ``D`` the
node distances; the change of swapping node ``j`` with every node ``k`` of its group is a few
products of ``W``'s rows and columns with ``D`` (`GraphBIMT.swap_deltas`, exact even for edges
inside the group, an LSTM's recurrent weights); heads of attention swap as whole heads. No
candidate runs a forward; `GraphBIMT.swap_deltas_bruteforce` (permute, recompute the cost, permute
back) is the test oracle.

The network's inputs and outputs are never permuted, so nothing maps them (the MLP path,
`modscope.training.bimt.BIMT`, also moves its input and output neurons and keeps that).
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from ..errors import ModscopeError
from .bimt import BIMTConfig, BIMTStrategy, SwapStats, _Cost, _grid, _lifted, _line, _State
from .clusterability_graph import MAX_NODES, edge_set, edge_values
from .permutation import UnitGroups, permutable_groups, permute

__all__ = ["GraphBIMT", "GraphConnectionCost", "bimt_strategy", "unit_positions"]

Metric = Literal["l1", "l2"]


def unit_positions(units: UnitGroups, input_shape: tuple[int, int] | None = None) -> torch.Tensor:
    """``(n_nodes, d)`` float64 positions of every node of the unit graph, d = 1 or 2: a line per
    group, a grid for convolution channels, the pixel grid for an input group of ``input_shape``
    (rows, cols) units."""
    graph = units.graph
    kinds = list(graph.group_kinds) + [""] * (len(graph.sizes) - len(graph.group_kinds))
    coords = []
    for n, kind in zip(graph.sizes, kinds, strict=True):
        n = int(n)
        pixels = kind == "input" and input_shape is not None and int(np.prod(input_shape)) == n
        if pixels or (kind.startswith("Conv") and n > 1):  # the pixel grid, or a square-ish one
            coords.append(_grid(n, input_shape if pixels else None))
        else:
            coords.append(_line(n))
    return torch.cat(_lifted(coords))


class GraphConnectionCost(_Cost):
    """``cc = sum_w red(|w| * coef_w) + y* sum_b red(|b|) + y* sum_E red(|E|)`` over the traced
    weights ``w`` (``coef_w = A * dist + y*`` per entry, fixed per position), biases ``b`` and
    embedding tables ``E``; ``red`` sums or takes the mean of each tensor (``reduction``)."""

    def __init__(
        self,
        model: nn.Module,
        units: UnitGroups,
        coords: torch.Tensor,
        A: float,
        y_star: float,
        reduction: str = "sum",
        metric: Metric = "l1",
    ) -> None:
        if metric not in ("l1", "l2"):
            raise ModscopeError(f"BIMT metric must be 'l1' or 'l2', got {metric!r}")
        self.A, self.y_star, self.reduction, self.metric = float(A), float(y_star), reduction, metric
        n = int(coords.shape[0])
        if n > MAX_NODES:
            raise ModscopeError(
                f"BIMT on the unit graph holds dense nodes x nodes matrices: {n:,} units would take "
                f"{2 * 8 * n * n / 2**30:.1f} GiB (at most {MAX_NODES:,} units); train a narrower network"
            )
        self.dist = torch.cdist(coords, coords, p=1.0 if metric == "l1" else 2.0)  # (N, N) float64
        self.weights: dict[str, torch.Tensor] = {}  # name -> coefficient tensor of its shape
        self.sets = []  # the entries of each use that join two nodes (`EdgeSet`)
        for inc in units.parameters.incidences:
            e = edge_set(inc)
            d = torch.zeros(e.ok.shape, dtype=torch.float64)  # 0 where an end has no node: y* only
            d[torch.as_tensor(e.ok)] = self.dist[torch.as_tensor(e.rows), torch.as_tensor(e.cols)]
            coef = (self.A * d + self.y_star).reshape(e.ok.shape + (1,) * (len(inc.shape) - 2))
            prev = self.weights.get(inc.parameter)
            # a weight used twice (a shared layer) pays for every use; y* once per use
            self.weights[inc.parameter] = coef.expand(inc.shape).clone() if prev is None else prev + coef
            self.sets += [e] if e.ok.any() else []
        self.biases = [n for n, t in model.state_dict(keep_vars=True).items()
                       if n.endswith("bias") and n not in self.weights and isinstance(t, nn.Parameter)]
        self.tables = [f"{n}.weight" for n, m in model.named_modules()
                       if isinstance(m, nn.Embedding) and f"{n}.weight" not in self.weights]

    def tensors(self, model: nn.Module) -> dict[str, torch.Tensor]:
        """The model's parameters and buffers by name, looked up once per model (swaps and
        ``module.to`` change them in place)."""
        cached = getattr(self, "_tensors", None)
        if cached is None or cached[0] is not model:
            cached = (model, model.state_dict(keep_vars=True))
            self._tensors = cached
        return cached[1]

    def to(self, device: torch.device | str, dtype: torch.dtype = torch.float32) -> GraphConnectionCost:
        self.weights = {k: v.to(device, dtype) for k, v in self.weights.items()}
        return self

    def parts(self, model: nn.Module) -> tuple[list[tuple[torch.Tensor, torch.Tensor]], list, list]:
        t = self.tensors(model)
        weights = [(t[name], coef) for name, coef in self.weights.items()]
        return weights, [t[name] for name in self.biases], [t[name] for name in self.tables]

    def __call__(self, model: nn.Module, bias: bool = True) -> torch.Tensor:
        """The cost (a scalar tensor, differentiable in the model's parameters)."""
        weights, biases, tables = self.parts(model)
        terms = [(w.abs() * coef.to(w.device, w.dtype)).sum() * self.scale(w) for w, coef in weights]
        terms += [self.y_star * p.abs().sum() * self.scale(p) for p in (biases if bias else []) + tables]
        return torch.stack(terms).sum() if terms else torch.zeros(())

    @torch.no_grad()
    def node_weights(self, model: nn.Module) -> torch.Tensor:
        """``(N, N)`` float64: ``W[a, b] = A * sum scale(w) |w|`` over the entries writing ``a`` and
        reading ``b`` (kernel slices summed): the position-dependent cost is ``(W * dist).sum()``."""
        tensors = model.state_dict(keep_vars=True)
        n = self.dist.shape[0]
        W = torch.zeros(n, n, dtype=torch.float64)
        for e, a in zip(self.sets, edge_values(model, self.sets), strict=True):
            index = (torch.as_tensor(e.rows), torch.as_tensor(e.cols))
            W.index_put_(index, a.cpu() * (self.A * self.scale(tensors[e.parameter])), accumulate=True)
        return W


class GraphBIMT(_State):
    """BIMT's state for any traced ``model`` (the same interface as `modscope.training.bimt.BIMT`
    for `BIMTStrategy`): its permutable groups, positions, cost and the swap search.

    ``example_input``: a batch the forward takes (batch 1 is enough); ``metric``: ``"l1"`` or
    ``"l2"``; ``input_shape``: (rows, cols) when the input group is an image's pixels. A hidden
    group that cannot be permuted consistently is refused in one line here, before training.
    """

    def __init__(
        self,
        config: BIMTConfig,
        model: nn.Module,
        example_input: Any,
        *,
        metric: Metric = "l1",
        input_shape: tuple[int, int] | None = None,
        units: UnitGroups | None = None,
    ) -> None:
        self.config = config
        self.units = units if units is not None else permutable_groups(model, example_input)
        self.coords = unit_positions(self.units, input_shape)
        self.cost = GraphConnectionCost(
            model, self.units, self.coords, config.A, config.y_star, config.reduction, metric
        )
        first = next(model.parameters(), None)
        if first is not None:  # the coefficients live where the weights do: no copy per step
            self.cost.to(first.device, first.dtype)
        self.groups = self.units.groups
        self.perms = [np.arange(g.size) for g in self.groups]

    # -- swaps --------------------------------------------------------------------------------
    def swap_deltas(self, model: nn.Module, g: int, j: int, W: torch.Tensor | None = None) -> torch.Tensor:
        """``(size,)``: the change of the cost when movable unit ``j`` of group ``g`` swaps with each
        unit (0 at ``j``), from the node-level weights ``W`` (`node_weights`; computed if None)."""
        W = self.cost.node_weights(model) if W is None else W
        D = self.cost.dist
        nodes = torch.as_tensor(self.groups[g].nodes)
        if nodes.shape[1] == 1:
            S, jn = nodes[:, 0], int(nodes[j, 0])
            d = _one_way(W, D, S, jn) + _one_way(W.T, D, S, jn)
        else:  # whole heads, no edge inside the group: each node's cost at each position
            S = nodes.reshape(-1)
            C = (W[S, :] + W[:, S].T) @ D[:, S]  # (|S|, |S|): node at row placed at column's spot
            C = C.reshape(nodes.shape[0], nodes.shape[1], nodes.shape[0], nodes.shape[1])
            C = C.diagonal(dim1=1, dim2=3).sum(-1)  # (heads, heads): slot s of head h at slot s of h'
            diag = C.diagonal()
            d = C[j, :] + C[:, j] - diag[j] - diag
        d = d.clone()
        d[j] = 0.0
        return d

    @torch.no_grad()
    def swap_deltas_bruteforce(self, model: nn.Module, g: int, j: int) -> torch.Tensor:
        """The oracle: swap, recompute the whole cost, swap back, for every candidate."""
        grp = self.groups[g]
        base = float(self.cost(model))
        out = torch.zeros(grp.size, dtype=torch.float64)
        for k in range(grp.size):
            if k == j:
                continue
            order = np.arange(grp.size)
            order[[j, k]] = order[[k, j]]
            permute(model, grp, order)
            out[k] = float(self.cost(model)) - base
            permute(model, grp, order)
        return out

    def scores(self, W: torch.Tensor, g: int) -> torch.Tensor:
        """``(size,)`` weighted incoming + outgoing |w| of each movable unit (summed over a head)."""
        nodes = torch.as_tensor(self.groups[g].nodes)
        return (W.sum(1) + W.sum(0))[nodes].sum(1)

    @torch.no_grad()
    def swap_group(
        self,
        model: nn.Module,
        g: int,
        optimizer: torch.optim.Optimizer | None = None,
        W: torch.Tensor | None = None,
    ) -> SwapStats:
        """Move each of group ``g``'s top-k units to the position that lowers the cost most; the
        swaps are found on the node-level weights ``W`` (`node_weights`, kept up to date in place
        when given) and applied to the model once."""
        grp = self.groups[g]
        k = min(self.config.top_k, grp.size)
        stats = SwapStats()
        if k == 0 or grp.size < 2:
            return stats
        W = self.cost.node_weights(model) if W is None else W
        top = torch.argsort(self.scores(W, g), descending=True, stable=True)[:k].tolist()
        order = np.arange(grp.size)  # position -> unit (pre-pass index)
        nodes = torch.as_tensor(grp.nodes)
        for t in top:
            j = int(np.flatnonzero(order == t)[0])
            d = self.swap_deltas(model, g, j, W)
            best = int(torch.argmin(d))
            if d[best] >= 0:
                continue
            a, b = nodes[j], nodes[best]  # swap the two units' rows and columns of W
            idx = torch.arange(W.shape[0])
            idx[a], idx[b] = b, a
            W.copy_(W[idx][:, idx])
            order[[j, best]] = order[[best, j]]
            stats += SwapStats(1, float(d[best]))
        if stats.swaps:
            permute(model, grp, order, optimizer)
            self.perms[g] = self.perms[g][order]
        return stats

    def swap_pass(self, model: nn.Module, optimizer: torch.optim.Optimizer | None = None) -> SwapStats:
        """One relocation round over every permutable group, in graph order."""
        W = self.cost.node_weights(model)  # one build per pass; each group's swaps update it
        return sum((self.swap_group(model, g, optimizer, W) for g in range(len(self.groups))), SwapStats())

    # -- the end ------------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        """Each group's permutation (``perm[p]``: the original unit now at position ``p``), the
        node positions and the options."""
        return {
            "groups": [g.name for g in self.groups],
            "permutations": [torch.as_tensor(p) for p in self.perms],
            "coordinates": self.coords.float().clone(),
            "metric": self.cost.metric,
            **self.config.to_dict(),
        }


def _one_way(M: torch.Tensor, D: torch.Tensor, S: torch.Tensor, j: int) -> torch.Tensor:
    """``(|S|,)``: the change of ``sum_{a,b} M[a, b] D[a, b]`` over the pairs whose first end is
    ``j`` or ``k`` and whose second is neither, when nodes ``j`` and ``k`` (each of ``S``) swap
    (``D`` symmetric with a zero diagonal; the pairs with both ends swapped do not change)."""
    Mj, Dj = M[j], D[j]
    MS, DS = M[S], D[S]
    own = Mj @ Dj
    first = DS @ Mj - own - M[j, j] * D[S, j] + M[j, S] * D[j, S]  # j moves to k's spot
    second = MS @ Dj - (MS * DS).sum(1) + M[S, j] * D[S, j] - M[S, S] * D[j, S]  # k to j's
    return first + second



def bimt_strategy(
    model: nn.Module,
    example_input: Any,
    config: BIMTConfig | None = None,
    *,
    metric: Metric = "l1",
    input_shape: tuple[int, int] | None = None,
    **options: Any,
) -> BIMTStrategy:
    """BIMT for any ``model`` as a training strategy (``fit_model(..., strategy=...)``): ``config``
    (default: `BIMTConfig` with ``options`` as overrides, e.g. ``lam=1e-3, top_k=5``). Refuses in
    one line, before training, a hidden group that cannot be permuted consistently."""
    if config is None:
        config = BIMTConfig.from_task(None, **options)
    elif options:
        raise ModscopeError("pass BIMT options in config= or as keywords, not both")
    return BIMTStrategy(GraphBIMT(config, model, example_input, metric=metric, input_shape=input_shape))
