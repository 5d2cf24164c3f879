"""What every null is: a strategy that draws random graphs to compare a network with."""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from ..graphs.weight_graph import WeightGraph

__all__ = ["Null"]


class Null(Protocol):
    """Random graphs to compare a graph with.

    ``check(graph)`` refuses (one line) a graph the null cannot sample from; ``sample(graph,
    seed)`` draws one random graph, all its randomness from ``seed``; ``params()`` is everything
    else its samples depend on (part of cache keys); ``name`` goes into results.
    """

    name: str

    def check(self, graph: WeightGraph) -> None: ...

    def params(self) -> dict[str, Any]: ...

    def sample(self, graph: WeightGraph, seed: np.random.SeedSequence) -> WeightGraph: ...
