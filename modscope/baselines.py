"""Shuffled-weight random baselines (spec §3).

A shuffle method maps one weight matrix to a shuffled one; every matrix of the network
is shuffled separately, the graph rebuilt (degree-0 nodes removed again) and clustered
with the same method and k. Each shuffle ``i`` draws all its randomness from
``SeedSequence(seed).spawn(n)[i]``, so shuffle ``i`` is the same for any ``n``, any
``jobs`` and any order of execution.
"""

from __future__ import annotations

import os
from typing import Protocol

import numpy as np
from joblib import Parallel, delayed
from tqdm.auto import tqdm

from ._threads import single_thread
from .cache import UnitCache, fingerprint_arrays
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
    jobs=1,
    progress: bool = False,
    cache: str | os.PathLike | None = None,
) -> np.ndarray:
    """n-cuts of ``n`` shuffled copies of ``graph`` ``(n,)``, in shuffle order.

    ``clusterer`` defaults to `SpectralClusterer` (k = 12); ``jobs`` worker processes
    (joblib), ``-1`` for all cores, or an executor from `modscope.distributed` (a Dask
    cluster, batched eigensolves on a torch device). Results do not depend on ``jobs``. With ``cache`` (a
    folder) each finished shuffle is stored as it completes and a rerun computes only the
    missing ones (see `modscope.cache`).
    """
    if not isinstance(n, int | np.integer) or n < 1:
        raise ModscopeError(f"the number of shuffles must be an integer >= 1, got {n}")
    shuffler = get_shuffle(method)
    clusterer = clusterer if clusterer is not None else SpectralClusterer()
    seeds = np.random.SeedSequence(seed).spawn(n)
    store = None if cache is None else UnitCache(cache, _shuffle_key(graph, shuffler, clusterer, seed))
    found, todo = store.missing(n) if store is not None else ({}, list(range(n)))
    out = np.empty(n)
    for i, value in found.items():
        out[i] = value
    if hasattr(jobs, "map"):  # an executor (modscope.distributed): a Dask cluster, a torch device
        units = [seeds[i] for i in todo]
        batched = getattr(jobs, "shuffle_ncuts", None)
        results = batched(graph, shuffler, clusterer, units) if batched else jobs.map(
            _one_shuffle, units, graph, shuffler, clusterer)
    elif jobs == 1:
        results = (_one_shuffle(graph, shuffler, clusterer, seeds[i]) for i in todo)
    else:
        units = (delayed(_one_shuffle)(graph, shuffler, clusterer, seeds[i]) for i in todo)
        results = Parallel(n_jobs=jobs, return_as="generator")(units)
    bar = tqdm(total=n, initial=len(found), desc=f"{shuffler.name} shuffles", unit="shuffle",
               disable=not progress, leave=False)
    with bar:
        for i, value in zip(todo, results, strict=True):
            out[i] = value
            if store is not None:
                store.put(i, float(value))
            bar.update()
    return out


def _shuffle_key(graph: WeightGraph, shuffler, clusterer, seed) -> dict:
    """Everything a shuffle's n-cut depends on (thread counts do not change results)."""
    params = {k: v for k, v in vars(clusterer).items() if k != "threads"}
    return {
        "unit": "shuffle_ncut",
        "graph": fingerprint_arrays(graph.weights),
        "method": [shuffler.name, vars(shuffler)],
        "clusterer": [type(clusterer).__name__, params],
        "seed": seed if isinstance(seed, int) else repr(seed),
    }


def _curveball_trades(pattern: np.ndarray, rng: np.random.Generator) -> None:
    """One global curveball round on the rows of the bool matrix ``pattern``, in place.

    Rows are paired by a random permutation (an odd one out sits the round out). For each
    pair ``(a, b)`` the columns that only one of them has are pooled and dealt at random:
    ``a`` gets back as many as it had, ``b`` the rest. Shared columns stay. Row and column
    sums are unchanged, and every trade is reversible with the same probability, so the
    uniform distribution over patterns with these margins is stationary.
    """
    half = pattern.shape[0] // 2
    if half == 0:
        return
    perm = rng.permutation(pattern.shape[0])
    a, b = perm[:half], perm[half : 2 * half]
    pa, pb = pattern[a], pattern[b]
    pool = pa ^ pb  # (half, n): columns exactly one row of the pair has
    keep_a = np.count_nonzero(pa & ~pb, axis=1)
    pair, col = np.nonzero(pool)  # grouped by pair (row-major)
    if pair.size == 0:
        return
    # A random order within each pair's pool: sort by pair + U[0, 1), which never crosses pairs.
    col = col[np.argsort(pair + rng.random(pair.size))]
    counts = np.count_nonzero(pool, axis=1)
    rank = np.arange(pair.size) - (np.cumsum(counts) - counts)[pair]
    to_a = rank < keep_a[pair]
    new_a = pa & pb
    new_b = new_a.copy()
    new_a[pair[to_a], col[to_a]] = True
    new_b[pair[~to_a], col[~to_a]] = True
    pattern[a] = new_a
    pattern[b] = new_b


class LayerDegreeShuffle:
    """Degree-preserving rewiring: keep every neuron's number of connections, randomise who
    connects to whom (the configuration-model / fixed-degree null of network science).

    For a weight matrix ``W`` (out x in) with non-zero pattern ``P``:

    - a new pattern ``P'`` has exactly the same row sums (out-neurons' degrees) and column
      sums (in-neurons' degrees) as ``P`` and is drawn approximately uniformly among all such
      patterns, by a Markov chain of degree-preserving swaps: ``rounds`` rounds of global
      curveball trades (Strona et al. 2014; Carstens et al. 2016), each round one trade of
      every random pair of rows, then one of every random pair of columns. A trade pools the
      columns that only one row of the pair has and deals them back at random, each row
      keeping its count. Mixing: with 10 rounds the fraction of edges that stay in place, and
      of edges crossing planted blocks, already match a 300-round chain; 20 is the default.
    - values: every row (out-neuron) keeps its multiset of non-zero values, assigned in
      random order to its new columns. So each neuron keeps its number of connections and
      each out-neuron its total incoming |w|; which neurons they connect is random. An
      in-neuron's total outgoing |w| is not kept (its values come from other rows), so in a
      dense net whose neurons' in- and out-strengths go together this null can differ from
      `layer`.

    Unlike `layer`, a sparse network does not fall apart into scattered weights (degree-0
    neurons stay degree 0, every other neuron keeps its degree); unlike `layer_nonzero`,
    the sparsity pattern, which holds a sparse network's modules, is not kept. A matrix
    whose pattern is the only one with its margins cannot be rewired — a dense matrix (every
    row and column full), a 1 x n or n x 1 matrix: then the method reduces to permuting the
    values within each row.
    """

    name = "layer_degree"

    def __init__(self, rounds: int = 20) -> None:
        self.rounds = rounds

    def shuffle(self, weight: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        pattern = weight != 0
        rows, cols = np.nonzero(pattern)
        values = weight[rows, cols]
        for _ in range(self.rounds):
            _curveball_trades(pattern, rng)
            _curveball_trades(pattern.T, rng)  # a view: the trades write through to pattern
        # Row sums are unchanged, so the new non-zeros come in the same row-major row blocks;
        # permute the values within each row by sorting on row + U[0, 1).
        values = values[np.argsort(rows + rng.random(rows.size))]
        out = np.zeros_like(weight)
        new_rows, new_cols = np.nonzero(pattern)
        out[new_rows, new_cols] = values
        return out


SHUFFLE_METHODS[LayerDegreeShuffle.name] = LayerDegreeShuffle
