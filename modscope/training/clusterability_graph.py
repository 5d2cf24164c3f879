"""Training any architecture for clusterability: Filan et al.'s spectral regulariser and Golechha
et al.'s block loss on the unit graph of a traced network ([spec §7][spec-7]; units by [§1b][spec-1b]).
Both read the weights through the same differentiable edge sets (`edge_sets`, `edge_values`): per
parameter use, the entries that join two units, kernel slices summed.

The penalty is ``lam * sum_{i=2}^{K+1} mu_i`` over the eigenvalues of the symmetric normalised
Laplacian of the network's unit graph, as `modscope.training.clusterability.SpectralClusterability`
computes it for an MLP. The adjacency is built differentiably from the trace's `ParameterMap`:
``A[a, b] = sum |w|`` over the weight entries joining units ``a`` and ``b`` (a kernel slice's
1-norm, an LSTM's gate rows summed), symmetrised; isolated units are left out. For an MLP it is
the same graph (inputs and outputs included), so the same eigenvalues. BatchNorm and LayerNorm
gains are not folded in (the regulariser acts on the weights alone).

The graph is dense (``nodes x nodes``) and its eigenproblem is solved every step: meant for
networks of up to a few thousand units.

The block loss (`block_strategy`, `GraphBlockClusterability`) is ``lam * (1 - mean_E C(E))`` as
`modscope.training.clusterability.BlockClusterability` computes it for an MLP's matrices: ``E``
runs over the edge sets (one per parameter use), ``C(E)`` is the share of the squared weights on
edges whose two units lie in the same of ``k`` contiguous blocks of their unit groups (a kernel
slice counts its squared entries). Nothing dense: it suits networks of any width.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from ..errors import ModscopeError
from ..graphs.tracing.export import trace_network
from ..graphs.tracing.incidence import ParameterMap
from .clusterability import BlockClusterability, _integer, _number, contiguous_blocks
from .strategy import Regulariser

__all__ = [
    "EdgeSet",
    "GraphBlockClusterability",
    "GraphSpectralClusterability",
    "block_strategy",
    "clusterability_strategy",
    "edge_set",
    "edge_sets",
    "edge_values",
    "unit_adjacency",
    "unit_spectral_penalty",
]


MAX_NODES = 8192  # two dense (N, N) float64 matrices: 1 GiB at this size


@dataclass(frozen=True, eq=False)
class EdgeSet:
    """The edges of one parameter use that join two units: ``ok`` ``(out, in)`` bool, the entries
    (kernel slices) with a unit at both ends; ``rows`` / ``cols`` ``(E,)`` the node each of those
    writes and reads, in ``ok``'s row-major order."""

    parameter: str
    ok: np.ndarray
    rows: np.ndarray
    cols: np.ndarray


def edge_set(inc: Any) -> EdgeSet:
    """The `EdgeSet` of one parameter use (an incidence of a `ParameterMap`); empty when no entry
    joins two units."""
    tail = (0,) * (len(inc.shape) - 2)
    rows = np.broadcast_to(inc.rows, inc.shape)[(slice(None),) * 2 + tail]
    cols = np.broadcast_to(inc.cols, inc.shape)[(slice(None),) * 2 + tail]
    ok = (rows >= 0) & (cols >= 0)
    return EdgeSet(inc.parameter, ok, rows[ok], cols[ok])


def edge_sets(pmap: ParameterMap) -> list[EdgeSet]:
    """The edges of every parameter use of ``pmap`` that joins two units (`EdgeSet`), in the order
    of its incidences; uses with no such entry are left out."""
    return [e for e in map(edge_set, pmap.incidences) if e.ok.any()]


def edge_values(model: nn.Module, sets: list[EdgeSet], power: Literal[1, 2] = 1) -> list[torch.Tensor]:
    """Per edge set ``(E,)`` float64: ``sum |w|^power`` over the entries of each edge (a kernel
    slice's 1-norm for ``power = 1``, its squared 2-norm for ``2``; an LSTM's gate rows summed),
    differentiable in the model's weights, on their device."""
    tensors = model.state_dict(keep_vars=True)
    out = []
    for e in sets:
        w = tensors[e.parameter].double()
        a = w.abs() if power == 1 else w.square()
        a = a.sum(tuple(range(2, a.ndim))) if a.ndim > 2 else a
        out.append(a[torch.as_tensor(e.ok, device=a.device)])
    return out


def unit_adjacency(model: nn.Module, pmap: ParameterMap) -> torch.Tensor:
    """``(N, N)``: the symmetric ``|w|`` adjacency of the unit graph, differentiable in the
    model's weights (float64 on the weights' device)."""
    n = pmap.n_nodes
    first = next(iter(model.state_dict(keep_vars=True).values()))
    W = torch.zeros(n, n, dtype=torch.float64, device=first.device)
    sets = edge_sets(pmap)
    for e, a in zip(sets, edge_values(model, sets), strict=True):
        index = (torch.as_tensor(e.rows, device=a.device), torch.as_tensor(e.cols, device=a.device))
        W = W.index_put(index, a, accumulate=True)
    return W + W.T


def unit_spectral_penalty(A: torch.Tensor, eigs: int) -> torch.Tensor:
    """``sum_{i=2}^{K+1} mu_i`` (``K = eigs``) of the normalised Laplacian of adjacency ``A``
    (isolated nodes removed), differentiable through eigenvalues only (a stable backward)."""
    d = A.sum(1)
    keep = torch.nonzero(d > 0).squeeze(1)
    if keep.numel() < eigs + 1:
        raise ModscopeError(
            f"cluster eigs K = {eigs} needs K + 1 = {eigs + 1} connected units, the graph has {keep.numel()}"
        )
    A = A.index_select(0, keep).index_select(1, keep)
    s = d.index_select(0, keep).rsqrt()
    L = torch.eye(keep.numel(), dtype=A.dtype, device=A.device) - s[:, None] * A * s[None, :]
    mu = torch.linalg.eigvalsh(L)[: eigs + 1]
    return mu.sum() - mu[0].detach()  # mu_1 = 0 for every weight: its (zero) value, its gradient


class GraphSpectralClusterability(Regulariser):
    """Filan et al.'s spectral regulariser on the unit graph of any traced network: a training
    strategy adding ``lam * sum_{i=2}^{K+1} mu_i`` to the loss. ``pmap``: the network's
    `ParameterMap` (``trace_network(model, example_input).parameters``)."""

    name = "spectral-graph"

    def __init__(self, lam: float, eigs: int = 3, pmap: ParameterMap | None = None) -> None:
        self.lam = float(lam)
        self.eigs = int(eigs)
        self.pmap = pmap
        self.value: float | None = None

    def params(self) -> dict[str, Any]:
        return {"lam": self.lam, "eigs": self.eigs}

    def penalty(self, model: nn.Module, step: int) -> torch.Tensor | None:
        if self.lam == 0 or self.pmap is None:
            return None
        p = unit_spectral_penalty(unit_adjacency(model, self.pmap), self.eigs)
        self.value = float(p.detach())
        return self.lam * p.float()

    def finish(self, model: nn.Module) -> dict[str, Any]:
        with torch.no_grad():
            value = float(unit_spectral_penalty(unit_adjacency(model, self.pmap), self.eigs))
        return {"cluster_penalty": value}


def clusterability_strategy(
    model: nn.Module, example_input: Any, lam: float, eigs: int = 3
) -> GraphSpectralClusterability:
    """The spectral clusterability regulariser for any ``model`` (traced once on ``example_input``),
    for ``fit_model(..., strategy=...)``."""
    lam, eigs = _number("cluster-reg lambda", lam), _integer("cluster eigs", eigs, 1)
    pmap = _unit_map(model, example_input)
    if pmap.n_nodes > MAX_NODES:
        raise ModscopeError(
            f"the spectral regulariser on the unit graph solves a dense eigenproblem: {pmap.n_nodes:,} units "
            f"(at most {MAX_NODES:,}); train a narrower network"
        )
    return GraphSpectralClusterability(lam, eigs, pmap)


def _unit_map(model: nn.Module, example_input: Any) -> ParameterMap:
    """The `ParameterMap` of ``model`` traced once on ``example_input``; refused when no weight
    joins two units."""
    pmap = trace_network(model, example_input).parameters
    if pmap is None or not pmap.incidences:
        raise ModscopeError(f"{type(model).__name__}: no traced weight joins two units to regularise")
    return pmap


class GraphBlockClusterability(BlockClusterability):
    """Golechha et al.'s block loss on the unit graph of any traced network: ``lam * (1 - mean_E
    C(E))`` over the penalised edge sets ``E`` (one per parameter use that joins units), ``C(E)``
    the share of ``sum w^2`` (a kernel slice's squared entries summed) on edges whose two units sit
    in the same of ``clusters`` contiguous blocks of their unit groups. For an MLP the edge sets
    are its Linear matrices and the value is `BlockClusterability`'s. ``sets``: the penalised edge
    sets, ``labels``: ``(n_nodes,)`` each unit's block (`block_strategy` makes both)."""

    name = "golechha-graph"

    def __init__(
        self,
        lam: float,
        clusters: int = 4,
        layers: Literal["hidden", "all"] = "hidden",
        sets: list[EdgeSet] | None = None,
        labels: np.ndarray | None = None,
    ) -> None:
        super().__init__(lam, clusters, layers)
        self.sets = sets
        self.labels = labels

    def clusterability(self, model: nn.Module) -> torch.Tensor:
        """``mean C`` over the penalised edge sets (differentiable, 0-d, in the weights' dtype)."""
        if not self.sets or self.labels is None:
            raise ModscopeError("the golechha loss on the unit graph is made by block_strategy(model, ...)")
        cs = []
        for e, sq in zip(self.sets, edge_values(model, self.sets, power=2), strict=True):
            inside = torch.as_tensor(self.labels[e.rows] == self.labels[e.cols], device=sq.device)
            cs.append((sq * inside).sum() / sq.sum().clamp_min(torch.finfo(sq.dtype).tiny))
        dtype = model.state_dict(keep_vars=True)[self.sets[0].parameter].dtype  # float64 sums, the loss dtype
        return torch.stack(cs).mean().to(dtype)


def _penalised(pmap: ParameterMap, layers: str) -> list[EdgeSet]:
    """The edge sets the block loss penalises: all, or (``"hidden"``) their edges joining two
    hidden unit groups (neither the network's input nor its output)."""
    sets = edge_sets(pmap)
    if layers == "all":
        return sets
    hidden = pmap.hidden_groups()[pmap.group_of()]
    kept = []
    for e in sets:
        keep = hidden[e.rows] & hidden[e.cols]
        if keep.any():
            ok = e.ok.copy()
            ok[ok] = keep  # the edges that stay, in the same row-major order
            kept.append(EdgeSet(e.parameter, ok, e.rows[keep], e.cols[keep]))
    return kept


def block_strategy(
    model: nn.Module,
    example_input: Any,
    lam: float,
    clusters: int = 4,
    layers: Literal["hidden", "all"] = "hidden",
) -> GraphBlockClusterability:
    """Golechha et al.'s block loss for any ``model`` (traced once on ``example_input``), for
    ``fit_model(..., strategy=...)``: ``clusters`` contiguous blocks per unit group, on the edges
    joining hidden groups (``layers="hidden"``) or on every edge (``"all"``). Refuses in one line
    a network with no such edge or a penalised group narrower than ``clusters``."""
    rule = BlockClusterability(lam, clusters, layers)  # its one-line checks of the options
    pmap = _unit_map(model, example_input)
    sets = _penalised(pmap, rule.layers)
    if not sets:
        raise ModscopeError(
            f"{type(model).__name__}: no weight joins two hidden unit groups; penalise every layer instead "
            "(layers 'all')"
        )
    graph, group_of = pmap.graph, pmap.group_of()
    touched = np.unique(group_of[np.concatenate([np.concatenate([e.rows, e.cols]) for e in sets])])
    labels = np.full(pmap.n_nodes, -1, dtype=np.int64)
    for g in touched.tolist():
        n = int(graph.sizes[g])
        if n < rule.clusters:
            raise ModscopeError(
                f"cannot split unit group {graph.group_names[g]} of {n} units into {rule.clusters} clusters; "
                "use fewer clusters" + (" or penalise hidden layers only" if rule.layers == "all" else "")
            )
        labels[group_of == g] = contiguous_blocks(n, rule.clusters).numpy()
    return GraphBlockClusterability(rule.lam, rule.clusters, rule.layers, sets, labels)
