"""Training any architecture for clusterability: Filan et al.'s spectral regulariser on the unit
graph of a traced network ([spec §7][spec-7]; units by [§1b][spec-1b]).

The penalty is ``lam * sum_{i=2}^{K+1} mu_i`` over the eigenvalues of the symmetric normalised
Laplacian of the network's unit graph, as `modscope.training.clusterability.SpectralClusterability`
computes it for an MLP. The adjacency is built differentiably from the trace's `ParameterMap`:
``A[a, b] = sum |w|`` over the weight entries joining units ``a`` and ``b`` (a kernel slice's
1-norm, an LSTM's gate rows summed), symmetrised; isolated units are left out. For an MLP it is
the same graph (inputs and outputs included), so the same eigenvalues. BatchNorm and LayerNorm
gains are not folded in (the regulariser acts on the weights alone).

The graph is dense (``nodes x nodes``) and its eigenproblem is solved every step: meant for
networks of up to a few thousand units.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import ModscopeError
from ..graphs.tracing.export import trace_network
from ..graphs.tracing.incidence import ParameterMap
from .bimt_graph import MAX_NODES
from .strategy import Regulariser

__all__ = [
    "GraphSpectralClusterability",
    "clusterability_strategy",
    "unit_adjacency",
    "unit_spectral_penalty",
]


def unit_adjacency(model: nn.Module, pmap: ParameterMap) -> torch.Tensor:
    """``(N, N)``: the symmetric ``|w|`` adjacency of the unit graph, differentiable in the
    model's weights (float64 on the weights' device)."""
    tensors = model.state_dict(keep_vars=True)
    n = pmap.n_nodes
    first = next(iter(tensors.values()))
    W = torch.zeros(n, n, dtype=torch.float64, device=first.device)
    for inc in pmap.incidences:
        tail = (0,) * (len(inc.shape) - 2)
        rows = np.broadcast_to(inc.rows, inc.shape)[(slice(None),) * 2 + tail]
        cols = np.broadcast_to(inc.cols, inc.shape)[(slice(None),) * 2 + tail]
        ok = (rows >= 0) & (cols >= 0)
        if not ok.any():
            continue
        a = tensors[inc.parameter].abs().double()
        a = a.sum(tuple(range(2, a.ndim))) if a.ndim > 2 else a
        mask = torch.as_tensor(ok, device=a.device)
        index = (torch.as_tensor(rows[ok], device=a.device), torch.as_tensor(cols[ok], device=a.device))
        W = W.index_put(index, a[mask], accumulate=True)
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
    if not (np.isfinite(lam) and lam >= 0):
        raise ModscopeError(f"cluster-reg lambda must be a finite number >= 0, got {lam}")
    if int(eigs) != eigs or eigs < 1:
        raise ModscopeError(f"cluster eigs must be an integer >= 1, got {eigs}")
    pmap = trace_network(model, example_input).parameters
    if pmap is None or not pmap.incidences:
        raise ModscopeError(f"{type(model).__name__}: no traced weight joins two units to regularise")
    if pmap.n_nodes > MAX_NODES:
        raise ModscopeError(
            f"the spectral regulariser on the unit graph solves a dense eigenproblem: {pmap.n_nodes:,} units "
            f"(at most {MAX_NODES:,}); train a narrower network"
        )
    return GraphSpectralClusterability(lam, eigs, pmap)
