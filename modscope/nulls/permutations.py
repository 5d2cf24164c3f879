"""The null for activation graphs: each unit's activations permuted across examples."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import ModscopeError
from ..graphs.activations import ActivationGraph, correlation_graph
from ..graphs.weight_graph import WeightGraph

__all__ = ["UnitPermutationNull"]


class UnitPermutationNull:
    """Each unit's activations permuted across examples, independently per unit.

    Spearman correlations depend on ranks only, so the graph's stored standardised ranks are
    permuted (``Generator.permuted`` along the example axis) and the correlation graph rebuilt.
    Every unit keeps its own distribution; every dependence between units is gone. Needs an
    `ActivationGraph` (a graph that kept its ranks).
    """

    name = "units"

    def check(self, graph: WeightGraph) -> None:
        if not isinstance(graph, ActivationGraph) or not graph.ranks:
            raise ModscopeError(
                "the 'units' null permutes activations: it needs an activation graph "
                "(modscope.activation_graph / --graph activations)"
            )

    def params(self) -> dict[str, Any]:
        return {}

    def sample(self, graph: WeightGraph, seed: np.random.SeedSequence) -> WeightGraph:
        rng = np.random.default_rng(seed)
        return correlation_graph([rng.permuted(r, axis=0) for r in graph.ranks], graph.names)
