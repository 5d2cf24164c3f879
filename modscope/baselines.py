"""Shuffled-weight random baselines (spec §3).

A shuffle method maps one weight matrix to a shuffled one; every matrix of the network
is shuffled separately, the graph rebuilt (degree-0 nodes removed again) and clustered
with the same method and k. Each shuffle ``i`` draws all its randomness from
``SeedSequence(seed).spawn(n)[i]``, so shuffle ``i`` is the same for any ``n``, any
``jobs`` and any order of execution.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

import numpy as np
from joblib import Parallel, delayed
from tqdm.auto import tqdm

from ._threads import single_thread
from .errors import ModscopeError
from .graph import WeightGraph
from .spectral import SpectralClusterer, child_seed


class ShuffleMethod(Protocol):
    """Turn one ``(out, in)`` weight matrix into a shuffled one of the same shape."""

    name: str

    def shuffle(self, weight: np.ndarray, rng: np.random.Generator) -> np.ndarray: ...


def _kde_redraw(weight: np.ndarray, values: np.ndarray, bandwidth: float, rng: np.random.Generator):
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
        return _kde_redraw(weight, weight[weight != 0], self.bandwidth, rng)


class LayerAllDistribution:
    """`layer` (permute everything), then the KDE redraw of the non-zero entries."""

    name = "layer_all_distribution"

    def __init__(self, bandwidth: float = 0.01) -> None:
        self.bandwidth = bandwidth

    def shuffle(self, weight: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        permuted = LayerShuffle().shuffle(weight, rng)
        return _kde_redraw(permuted, weight[weight != 0], self.bandwidth, rng)


SHUFFLE_METHODS: dict[str, type] = {
    m.name: m for m in (LayerShuffle, LayerNonzeroShuffle, LayerNonzeroDistribution, LayerAllDistribution)
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


def _one_shuffle(graph: WeightGraph, method: ShuffleMethod, clusterer, ss: np.random.SeedSequence) -> float:
    # One BLAS / OpenMP thread per unit: the numbers are then bit-identical whatever --jobs is.
    if hasattr(clusterer, "with_threads"):
        clusterer = clusterer.with_threads(1)
    with single_thread():
        shuffled = shuffle_graph(graph, method, child_seed(ss, 0))
        return clusterer.partition(shuffled, child_seed(ss, 1)).ncut


def shuffle_ncuts(
    graph: WeightGraph,
    n: int,
    method: str | ShuffleMethod = "layer",
    clusterer=None,
    seed: int = 0,
    jobs: int = 1,
    progress: bool = False,
) -> np.ndarray:
    """n-cuts of ``n`` shuffled copies of ``graph`` ``(n,)``, in shuffle order.

    ``clusterer`` defaults to `SpectralClusterer` (k = 12); ``jobs`` worker processes
    (joblib), ``-1`` for all cores. Results do not depend on ``jobs``.
    """
    if not isinstance(n, int | np.integer) or n < 1:
        raise ModscopeError(f"the number of shuffles must be an integer >= 1, got {n}")
    shuffler = get_shuffle(method)
    clusterer = clusterer if clusterer is not None else SpectralClusterer()
    seeds = np.random.SeedSequence(seed).spawn(n)
    units: Iterator = (delayed(_one_shuffle)(graph, shuffler, clusterer, ss) for ss in seeds)
    if jobs == 1:
        results = (_one_shuffle(graph, shuffler, clusterer, ss) for ss in seeds)
    else:
        results = Parallel(n_jobs=jobs, return_as="generator")(units)
    bar = tqdm(
        results, total=n, desc=f"{shuffler.name} shuffles", unit="shuffle", disable=not progress, leave=False
    )
    return np.fromiter(bar, dtype=np.float64, count=n)
