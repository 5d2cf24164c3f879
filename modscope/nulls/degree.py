"""The degree-preserving (fixed-degree, configuration-model) null of network science, for one
weight matrix at a time: every neuron keeps its number of connections, partners are random."""

from __future__ import annotations

import numpy as np

__all__ = ["LayerDegreeShuffle"]


def _curveball_trades(pattern: np.ndarray, rng: np.random.Generator) -> None:
    """One global curveball round on the rows of the bool matrix ``pattern``, in place.

    Rows are paired by a random permutation (an odd one out sits the round out). For each
    pair ``(a, b)`` the columns that only one of them has are pooled and dealt at random:
    ``a`` gets back as many as it had, ``b`` the rest. Shared columns stay. Row and column
    sums are unchanged, and every trade is reversible with the same probability, so the
    uniform distribution over patterns with these margins is stationary.
    """
    half = pattern.shape[0] // 2  # fewer than 2 rows: no pair, no pool, so the return below
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
        out[np.nonzero(pattern)] = values
        return out
