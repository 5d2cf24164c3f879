"""Communities by modularity: Newman's Q of a partition of the |w| graph, and the partitions that
maximise it approximately (Leiden, Louvain; igraph's C implementations). Q is in ``[-1/2, 1)``,
**higher is more modular**; the method picks the number of communities itself."""

from __future__ import annotations

import contextlib
import gc
import importlib.machinery
import importlib.util
import random
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

from ..errors import ModscopeError
from ..graphs.weight_graph import WeightGraph
from ..runtime.seeds import SeedLike, int_seed
from .ncut import _edge_list, ncut

__all__ = ["Communities", "leiden", "louvain", "modularity"]


def modularity(graph: WeightGraph | sp.spmatrix, labels: np.ndarray, resolution: float = 1.0) -> float:
    """Newman's weighted modularity ``Q = sum_c [ w_in(c) / m - resolution * (vol(c) / 2m)^2 ]``.

    ``m`` is the total edge weight (each undirected edge once), ``w_in(c)`` the weight of the
    edges inside community ``c`` and ``vol(c)`` its summed degree. ``labels`` has one entry per
    node; nodes labelled -1 (degree 0, removed) belong to no community. Equals networkx's
    ``community.modularity`` (a test oracle). Higher is more modular.
    """
    labels = np.asarray(labels, dtype=np.int64)
    u, v, w, deg, _ = _edge_list(graph)
    if labels.shape != deg.shape:
        raise ModscopeError(f"need one label per node ({deg.size}), got {labels.size}")
    m = float(w.sum())
    if m <= 0:
        raise ModscopeError("modularity is undefined for a graph without edges")
    k = int(labels.max()) + 1 if labels.max() >= 0 else 0
    lu, lv = labels[u], labels[v]
    same = (lu == lv) & (lu >= 0)
    inside = np.bincount(lu[same], weights=w[same], minlength=k)
    keep = labels >= 0
    vol = np.bincount(labels[keep], weights=deg[keep], minlength=k)
    return float(np.sum(inside / m - resolution * (vol / (2.0 * m)) ** 2))


@dataclass
class Communities:
    """A partition found by maximising modularity (the number of communities is found, not set).

    ``labels``: ``(n_nodes,)`` community per node, numbered by decreasing size, -1 for degree-0
    nodes. ``modularity``: its Q; ``ncut``: its n-cut, for comparison with spectral partitions.
    """

    labels: np.ndarray
    modularity: float
    ncut: float
    clustering: dict = field(default_factory=dict)

    @property
    def n_clusters(self) -> int:
        return int(self.labels.max()) + 1 if self.labels.size and self.labels.max() >= 0 else 0

    def sizes(self, graph: WeightGraph) -> np.ndarray:
        """``(n_layers, n_communities)`` neurons of each community in each layer."""
        return graph.cluster_sizes(self.labels, self.n_clusters)

    def to_dict(self) -> dict:
        return {
            "modularity": float(self.modularity),
            "ncut": float(self.ncut),
            "n_clusters": self.n_clusters,
            "labels": self.labels.astype(int).tolist(),
        }


def _igraph() -> Any:
    """igraph's C core (``igraph._igraph``: ``GraphBase``, ``set_random_number_generator``), loaded
    without igraph's Python package: ``import igraph`` runs ``igraph.drawing``, which imports
    ``matplotlib.pyplot`` (most of igraph's import time; issue 30, timed in
    experiments/converters/compare.json). The core goes into ``sys.modules`` under its own name, as
    the package would put it: the extension initialises once per process, and a later
    ``import igraph`` by the user finds it there and works as usual."""
    try:
        package = importlib.util.find_spec("igraph")  # finds, does not run, the package
        core = sys.modules.get("igraph._igraph")
        if package is not None and core is not None:
            return core
        spec = None
        if package is not None and package.submodule_search_locations:
            where = package.submodule_search_locations
            spec = importlib.machinery.PathFinder.find_spec("igraph._igraph", where)
        if spec is None or spec.loader is None:
            raise ImportError("igraph")
        core = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(core)
    except ImportError:
        raise ModscopeError(
            "Leiden and Louvain communities need igraph: pip install 'modscope[community]'"
        ) from None
    return sys.modules.setdefault("igraph._igraph", core)


@contextlib.contextmanager
def _no_gc() -> Iterator[None]:
    """The cyclic garbage collector paused: building ~10^5 edge tuples otherwise triggers it
    over and over (0.9 s instead of 0.1 s for a 784-256x4-10 MLP's 4 x 10^5 edges)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


@contextlib.contextmanager
def _seeded(igraph, seed: SeedLike) -> Iterator[None]:
    """igraph's random numbers drawn from ``seed`` inside (igraph reads a module-level
    generator); its default, Python's ``random`` module, is put back on exit."""
    igraph.set_random_number_generator(random.Random(int_seed(seed)))
    try:
        yield
    finally:
        igraph.set_random_number_generator(random)


def _communities(graph: WeightGraph, method: str, seed: SeedLike, resolution: float, **kw) -> Communities:
    igraph = _igraph()
    nodes = np.flatnonzero(graph.active)
    if nodes.size < 2:
        raise ModscopeError(f"{method} needs a graph with at least one edge")
    index = np.full(graph.n_nodes, -1, dtype=np.int64)
    index[nodes] = np.arange(nodes.size)
    u, v, w = graph.edges
    kept = (index[u] >= 0) & (index[v] >= 0)  # a negligible unit's edges go with it, as in spectral
    u, v, w = u[kept], v[kept], w[kept]
    with _no_gc():
        g = igraph.GraphBase(int(nodes.size), list(zip(index[u].tolist(), index[v].tolist(), strict=True)))
    weights = w.tolist()
    # the arguments igraph's Graph.community_leiden / community_multilevel pass to the core
    with _seeded(igraph, seed):
        if method == "leiden":
            found, _ = g.community_leiden(
                edge_weights=weights, node_weights=None, node_in_weights=None, resolution=resolution,
                normalize_resolution=True, beta=0.01, initial_membership=None, **kw
            )
        else:
            found = g.community_multilevel(weights, return_levels=False, resolution=resolution)
    member = np.asarray(found, dtype=np.int64)
    # number communities by decreasing size, ties by their lowest node: labels independent of
    # the library's own numbering
    ids, first, sizes = np.unique(member, return_index=True, return_counts=True)
    rank = np.empty(ids.max() + 1, dtype=np.int64)
    rank[ids[np.lexsort((first, -sizes))]] = np.arange(ids.size)
    labels = np.full(graph.n_nodes, -1, dtype=np.int64)
    labels[nodes] = rank[member]
    return Communities(
        labels, modularity(graph, labels, resolution), ncut(graph, labels),
        {"method": method, "resolution": float(resolution), **kw},
    )


def leiden(
    graph: WeightGraph, seed: SeedLike = 0, resolution: float = 1.0, n_iterations: int = 2
) -> Communities:
    """Leiden communities (Traag et al. 2019) maximising Newman's Q of the |w| graph, by igraph's
    C implementation: refined Louvain moves, communities guaranteed connected.

    Degree-0 nodes get label -1; the rest are numbered by decreasing community size (ties by
    lowest node id), deterministic for a given ``seed``. ``n_iterations``: passes over the graph
    (igraph's default 2; -1 until no move improves Q). Q is computed by `modularity` (weighted;
    equal to networkx's ``community.modularity``), not taken from the library.
    """
    return _communities(graph, "leiden", seed, resolution, n_iterations=int(n_iterations))


def louvain(graph: WeightGraph, seed: SeedLike = 0, resolution: float = 1.0) -> Communities:
    """Louvain communities (Blondel et al. 2008) of the |w| graph, by igraph's C implementation
    (``community_multilevel``); labels and Q as in `leiden`."""
    return _communities(graph, "louvain", seed, resolution)
