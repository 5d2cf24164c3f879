"""Shuffled-weight random baselines ([spec §3][spec-3]).

A shuffle method maps one weight matrix to a shuffled one; every matrix of the network is
shuffled separately, then the graph is rebuilt (degree-0 nodes removed again) and measured the
same way as the network. `WeightShuffleNull` is the null strategy the scoring engine uses.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from ..errors import ModscopeError
from ..graphs.weight_graph import WeightGraph
from .degree import LayerDegreeShuffle

__all__ = [
    "SHUFFLE_METHODS",
    "LayerAllDistribution",
    "LayerNonzeroDistribution",
    "LayerNonzeroShuffle",
    "LayerShuffle",
    "ShuffleMethod",
    "WeightShuffleNull",
    "get_shuffle",
    "kde_redraw",
    "shuffle_graph",
]


class ShuffleMethod(Protocol):
    """Turn one ``(out, in)`` weight matrix into a shuffled one of the same shape."""

    name: str

    def shuffle(self, weight: np.ndarray, rng: np.random.Generator) -> np.ndarray: ...


def kde_redraw(weight: np.ndarray, values: np.ndarray, bandwidth: float, rng: np.random.Generator):
    """Replace the non-zero entries of ``weight`` by draws from a Gaussian KDE of ``values``.

    Sampling a Gaussian KDE = pick a data point uniformly, add N(0, bandwidth^2) noise.
    """
    out = weight.copy()
    nz = np.flatnonzero(out)
    if nz.size and values.size:
        out.flat[nz] = rng.choice(values, size=nz.size) + rng.normal(0.0, bandwidth, size=nz.size)
    return out


class LayerShuffle:
    """Permute all entries of the matrix, zeros included."""

    name = "layer"

    def shuffle(self, weight: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return rng.permutation(weight.ravel()).reshape(weight.shape)


class LayerNonzeroShuffle:
    """Permute only the non-zero entries; the sparsity pattern stays."""

    name = "layer_nonzero"

    def shuffle(self, weight: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        out = weight.copy()
        nz = np.flatnonzero(out)
        out.flat[nz] = rng.permutation(out.flat[nz])
        return out


class LayerNonzeroDistribution:
    """Keep the pattern; draw new non-zero values from a Gaussian KDE of the layer's non-zeros."""

    name = "layer_nonzero_distribution"

    def __init__(self, bandwidth: float = 0.01) -> None:
        self.bandwidth = bandwidth

    def shuffle(self, weight: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return kde_redraw(weight, weight[weight != 0], self.bandwidth, rng)


class LayerAllDistribution(LayerNonzeroDistribution):
    """`layer` (permute everything), then the KDE redraw of the non-zero entries."""

    name = "layer_all_distribution"

    def shuffle(self, weight: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return kde_redraw(LayerShuffle().shuffle(weight, rng), weight[weight != 0], self.bandwidth, rng)


SHUFFLE_METHODS: dict[str, type] = {
    m.name: m
    for m in (LayerShuffle, LayerNonzeroShuffle, LayerNonzeroDistribution, LayerAllDistribution,
              LayerDegreeShuffle)
}


def get_shuffle(method: str | ShuffleMethod) -> ShuffleMethod:
    """A shuffle method by name (or pass an instance through)."""
    if not isinstance(method, str):
        return method
    try:
        return SHUFFLE_METHODS[method]()
    except KeyError:
        raise ModscopeError(
            f"unknown shuffle method {method!r}; choose from {', '.join(SHUFFLE_METHODS)}"
        ) from None


def shuffle_graph(graph: WeightGraph, method: str | ShuffleMethod, seed) -> WeightGraph:
    """``graph`` with every weight matrix shuffled by ``method``; ``seed`` an int or SeedSequence."""
    shuffler = get_shuffle(method)
    rng = np.random.default_rng(seed)
    return graph.with_weights([shuffler.shuffle(w, rng) for w in graph.weights])


class WeightShuffleNull:
    """Every weight matrix of the scored graph shuffled by a [spec §3][spec-3] method (default ``layer``).

    ``method``: a name from `SHUFFLE_METHODS` or an object with ``name`` and
    ``shuffle(weight, rng)``.
    """

    def __init__(self, method: str | ShuffleMethod = "layer") -> None:
        self.method = method

    @property
    def name(self) -> str:
        return get_shuffle(self.method).name

    def check(self, graph: WeightGraph) -> None:
        get_shuffle(self.method)

    def params(self) -> dict[str, Any]:
        shuffler = get_shuffle(self.method)
        return {"method": shuffler.name, **vars(shuffler)}

    def sample(self, graph: WeightGraph, seed: np.random.SeedSequence) -> WeightGraph:
        return shuffle_graph(graph, self.method, seed)
