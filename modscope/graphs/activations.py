"""Activation-correlation graphs: units linked by how strongly their activations co-vary.

The graph has the weight graph's nodes and edges (every unit, inputs and outputs included,
edges between consecutive layers only), so spectral clustering, n-cut, Louvain, layer-local
clustering and knockout labels all apply unchanged. Only the edge weight differs: for unit
``j`` of layer ``l-1`` and unit ``k`` of layer ``l``,

    ``A[k, j] = rho_s(a_j, a_k)^2``

the squared Spearman rank correlation of their activations over a dataset (in ``[0, 1]``;
squared because anti-correlated units are as dependent as correlated ones). Activations are
what each Linear layer sees: the network's input (after any embedding), every hidden layer
after its nonlinearity, and the output (logits). A unit whose activation never changes on the
data (a blank pixel, a dead ReLU) has no correlation with anything: degree 0, label -1.

Nulls (``modscope.score(activation_graph, null=...)``, CLI ``--shuffle-method``):

- ``units`` (`modscope.nulls.UnitPermutationNull`, the default): permute each unit's activations across
  examples, every unit independently, and rebuild the graph. Each unit keeps its own
  distribution (ties, dead and constant units included) and the graph keeps its size and
  its noise floor (``rho^2`` of independent units is about ``1/N``), but every dependence
  between units is gone. It asks whether the correlation structure splits into clusters
  better than a structureless one: random dense MLPs come out near z = 0 and an MLP of two
  disconnected halves fed by independent inputs clearly negative (``tests/graphs/test_activations.py``
  checks both).
- the [spec §3][spec-3] weight-shuffle methods applied to the correlation matrices (``layer``, ...):
  the same ``rho^2`` values rearranged at random among the unit pairs of two layers. This
  is *not* a good null for correlations: a dense network's ``rho^2`` matrix has row and
  column structure (units that correlate with many others) that any shuffle destroys, so
  non-modular networks come out "modular" (negative z on random dense MLPs). Offered for
  comparison with the weight graph.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import ModscopeError
from ..runtime.hashing import fingerprint_arrays
from ..runtime.modules import eval_mode
from .network import Network
from .stacks import linear_layers
from .weight_graph import WeightGraph

__all__ = [
    "ActivationGraph",
    "activation_graph",
    "correlation_graph",
    "standardised_ranks",
    "unit_activations",
]


def unit_activations(
    model: Any, x: Any, batch_size: int = 2048, readers: Sequence[Any] | None = None
) -> list[np.ndarray]:
    """``[(N, n_l)]`` per node layer: each Linear layer's input, then the last one's output.

    ``readers``: the Linear modules reading each unit group in turn (a `Network`'s sites say
    which); default: the model's Linear modules in registration order (the forward order of an
    MLP). They must chain. The model runs in eval mode under ``no_grad``; its mode is restored.
    """
    import torch

    linears = linear_layers(model) if readers is None else list(readers)
    if not linears:
        raise ModscopeError("the model has no nn.Linear layers")
    if any(a.out_features != b.in_features for a, b in zip(linears[:-1], linears[1:], strict=False)):
        raise ModscopeError("the model's Linear layers do not chain in registration order")
    n = len(linears)
    parts: list[list[torch.Tensor]] = [[] for _ in range(n + 1)]

    def keep_input(i: int):
        return lambda _m, inp: parts[i].append(inp[0].detach().reshape(len(inp[0]), -1))

    handles = [lin.register_forward_pre_hook(keep_input(i)) for i, lin in enumerate(linears)]
    handles.append(linears[-1].register_forward_hook(lambda _m, _i, out: parts[n].append(out.detach())))
    try:
        with eval_mode(model, no_grad=True):
            for start in range(0, len(x), batch_size):
                model(x[start : start + batch_size])
    finally:
        for h in handles:
            h.remove()
    if any(len(p) == 0 for p in parts):
        raise ModscopeError("a Linear layer was not called in the forward pass")
    return [torch.cat(p).to(torch.float64).cpu().numpy() for p in parts]


def standardised_ranks(acts: np.ndarray) -> np.ndarray:
    """``(N, n)`` ranks of each column (ties averaged), centred and scaled so that
    ``Z_a.T @ Z_b`` is the Spearman correlation matrix; constant columns are all zero."""
    from scipy.stats import rankdata

    acts = np.asarray(acts, dtype=np.float64)
    if acts.ndim != 2 or acts.shape[0] < 3:
        raise ModscopeError(f"need activations (examples >= 3, units), got shape {acts.shape}")
    r = rankdata(acts, axis=0)
    r -= r.mean(axis=0)
    norm = np.sqrt((r * r).sum(axis=0))
    out = np.zeros_like(r)
    np.divide(r, norm, out=out, where=norm > 1e-12 * acts.shape[0])
    return out


def correlation_graph(ranks: Sequence[np.ndarray], names: Sequence[str] | None = None) -> WeightGraph:
    """The graph of squared Spearman correlations between consecutive layers.

    ``ranks[l]`` ``(N, n_l)`` from `standardised_ranks`; matrix ``l`` is ``(n_{l+1}, n_l)``
    (out x in, like a weight matrix).
    """
    return WeightGraph.from_weights(
        [np.clip((b.T @ a) ** 2, 0.0, 1.0) for a, b in zip(ranks[:-1], ranks[1:], strict=False)], names
    )


@dataclass(frozen=True, eq=False)
class ActivationGraph(WeightGraph):
    """A correlation graph that keeps the standardised ranks ``(N, n_l)`` it was built from, so a
    null can permute them (`modscope.nulls.UnitPermutationNull`)."""

    ranks: tuple[np.ndarray, ...] = ()

    @classmethod
    def from_ranks(cls, ranks: Sequence[np.ndarray]) -> ActivationGraph:
        g = correlation_graph(ranks, [f"rho2[{i}]" for i in range(len(ranks) - 1)])
        return cls(g.weights, g.names, ranks=tuple(ranks))

    @property
    def n_examples(self) -> int:
        return int(self.ranks[0].shape[0])

    def fingerprint(self) -> str:
        """The correlations and the ranks under them (a unit-permutation null samples the ranks)."""
        return fingerprint_arrays([*self.weights, *self.ranks])


def _readers(net: Network) -> list[Any] | None:
    """The module reading each unit group of a chain `Network` but the last (its sites: the
    input of a layer, in the graph's order of units), or None when the sites do not say."""
    graph, sites = net.graph, net.sites
    if sites is None or not graph.is_chain:
        return None
    model, found = net.torch_module(), []
    for g in range(graph.n_layers - 1):
        nodes = np.arange(graph.offsets[g], graph.offsets[g + 1])
        hooked = (s for s in sites if s.kind == "input" and s.arg == 0 and s.axis == -1)
        site = next((s for s in hooked if np.array_equal(s.nodes, nodes)), None)
        if site is None:
            return None
        found.append(model.get_submodule(site.module) if site.module else model)
    return found


def activation_graph(model: Any, x: Any, max_examples: int | None = None) -> ActivationGraph:
    """Run ``model`` (an ``nn.Module``, or a `Network` that can run) on ``x`` (the first
    ``max_examples`` rows) and build its correlation graph. A `Network`'s layers are the ones its
    sites say read each unit group; a bare module's, its Linear layers in registration order."""
    if max_examples is not None:
        x = x[:max_examples]
    readers = None
    if isinstance(model, Network):
        readers = _readers(model)
        model = model.torch_module()
    acts = unit_activations(model, x, readers=readers)
    return ActivationGraph.from_ranks([standardised_ranks(a) for a in acts])
