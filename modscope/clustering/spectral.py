"""Normalised spectral clustering ([spec §2][spec-2]): the embedding of `modscope.clustering.embedding`,
then k-means restarts (or cluster-QR) assign the labels; the restart kept is chosen by
k-means inertia (the reference) or by n-cut."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np
import scipy.linalg as sla

from ..errors import ModscopeError
from ..graphs.network import Network
from ..graphs.weight_graph import WeightGraph
from ..runtime.seeds import SeedLike, child_seed, int_seed
from ..runtime.threads import maybe_single_thread
from .embedding import EigenSolver, spectral_embedding
from .kmeans import kmeans_restarts
from .ncut import ncut, ncut_batch

__all__ = [
    "CLUSTERERS",
    "SMALL_GRAPH",
    "AssignLabels",
    "Partition",
    "SklearnClusterer",
    "SpectralClusterer",
    "cluster",
    "cluster_qr",
    "kept_restart",
    "reference_restarts",
]

AssignLabels = Literal["kmeans", "cluster_qr"]

# Above this many non-isolated nodes the reference runs 100 k-means restarts instead of 25.
REFERENCE_LARGE = 2000
# Up to this many active nodes a clustering runs on one thread: BLAS / thread start-up costs
# more than the parallel work gains, and much more when the cores are busy.
SMALL_GRAPH = 5000


def cluster_qr(embedding: np.ndarray) -> np.ndarray:
    """Labels by column-pivoted QR (Damle, Minden & Ying 2019): deterministic, no restarts."""
    k = embedding.shape[1]
    _, _, piv = sla.qr(embedding.T, pivoting=True, mode="economic")
    ut, _, vt = np.linalg.svd(embedding[piv[:k], :].T)
    return np.abs(embedding @ (ut @ vt.conj())).argmax(axis=1)


@dataclass
class Partition:
    """A clustering of a weight graph.

    ``labels``: ``(n_nodes,)`` int cluster per node in graph order, -1 for degree-0 nodes.
    ``eigenvalues``: the ``k`` smallest normalised-Laplacian eigenvalues used. ``clustering``:
    how the labels were assigned (``assign_labels``, ``restarts``, ``select``), for the record.
    """

    labels: np.ndarray
    ncut: float
    n_clusters: int
    eigenvalues: np.ndarray
    clustering: dict = field(default_factory=dict)

    def sizes(self, graph: WeightGraph) -> np.ndarray:
        """``(n_layers, n_clusters)`` neurons of each cluster in each layer."""
        return graph.cluster_sizes(self.labels, self.n_clusters)

    def to_dict(self) -> dict:
        return {
            "ncut": float(self.ncut),
            "n_clusters": int(self.n_clusters),
            "labels": self.labels.astype(int).tolist(),
            "eigenvalues": [float(x) for x in self.eigenvalues],
        }

    def to_frame(self, graph: WeightGraph):
        """One row per node: ``layer``, ``index``, ``cluster`` (a ``pandas.DataFrame``)."""
        import pandas as pd

        return pd.DataFrame({"layer": graph.node_layer, "index": graph.node_index, "cluster": self.labels})


def reference_restarts(n_active: int) -> int:
    """The reference's k-means restarts: 25, or 100 above 2000 (non-isolated) nodes."""
    return 100 if n_active > REFERENCE_LARGE else 25


@dataclass(eq=False)  # compared and hashed by identity, as a plain class
class SpectralClusterer:
    """Normalised spectral clustering with the bipartite fast path.

    The default is the reference's procedure ([spec §2][spec-2]), so that z-scores can be set beside
    published ones: k-means with ``restarts`` restarts (default: 25, or 100 above 2000
    non-isolated nodes) and the restart of lowest k-means inertia kept (``select="inertia"``,
    as scikit-learn and the reference do). ``select="ncut"`` keeps the restart of lowest n-cut
    instead, the quantity reported: sharper partitions for the network and its shuffles alike,
    and a tighter null. ``assign_labels="cluster_qr"`` needs no restarts. ``threads`` run the
    restarts in parallel without changing the result; by default one thread (BLAS included)
    up to ``SMALL_GRAPH`` active nodes, where threads cost more than they give, and the
    machine's cores (at most 8) above.
    """

    n_clusters: int = 12
    assign_labels: AssignLabels = "kmeans"
    restarts: int | None = None
    select: Literal["inertia", "ncut"] = "inertia"
    eigen_solver: EigenSolver = "auto"
    threads: int | None = None

    def with_threads(self, threads: int) -> SpectralClusterer:
        """The same clusterer running its k-means restarts on ``threads`` threads."""
        return replace(self, threads=threads)

    def partition(self, graph: WeightGraph, seed: SeedLike = None) -> Partition:
        k = self.n_clusters
        if not isinstance(k, int | np.integer) or k < 2:
            raise ModscopeError(f"the number of clusters must be an integer >= 2, got {k}")
        if k >= graph.n_nodes:
            raise ModscopeError(
                f"the number of clusters ({k}) must be below the node count ({graph.n_nodes})"
            )
        if self.select not in ("ncut", "inertia"):
            raise ModscopeError(f"unknown restart selection {self.select!r}; use 'ncut' or 'inertia'")
        if self.assign_labels not in ("kmeans", "cluster_qr"):
            raise ModscopeError(f"unknown label assignment {self.assign_labels!r}; use kmeans or cluster_qr")
        if self.restarts is not None and (int(self.restarts) != self.restarts or self.restarts < 1):
            raise ModscopeError(f"k-means restarts must be an integer >= 1, got {self.restarts}")
        with maybe_single_thread(int(graph.active.sum()) <= SMALL_GRAPH and self.threads in (None, 1)):
            emb, eigenvalues, nodes = spectral_embedding(graph, k, self.eigen_solver, child_seed(seed, 0))
            return self.partition_embedded(graph, emb, eigenvalues, nodes, seed)

    def partition_embedded(
        self,
        graph: WeightGraph,
        embedding: np.ndarray,
        eigenvalues: np.ndarray,
        nodes: np.ndarray,
        seed: SeedLike = None,
    ) -> Partition:
        """`partition` from an embedding computed elsewhere (e.g. batched on a GPU).

        ``embedding``, ``eigenvalues``, ``nodes`` as `spectral_embedding` returns them; the
        labels are then exactly those `partition` gives for the same embedding and seed.
        """
        settings = self.settings(nodes.size)
        with maybe_single_thread(nodes.size <= SMALL_GRAPH and self.threads in (None, 1)):
            if self.assign_labels == "cluster_qr":
                candidates = cluster_qr(embedding)[None, :]
                inertia = np.zeros(1)
            else:
                threads = self.threads or (1 if nodes.size <= SMALL_GRAPH else min(os.cpu_count() or 1, 8))
                rng = np.random.default_rng(child_seed(seed, 1))
                candidates, inertia = kmeans_restarts(
                    embedding, self.n_clusters, settings["restarts"], rng, threads=threads
                )
            return self.choose(graph, candidates, inertia, eigenvalues, nodes)

    def settings(self, n_active: int) -> dict:
        """How labels are assigned on a graph of ``n_active`` non-isolated nodes (the record every
        result keeps): ``assign_labels``, ``restarts`` and ``select``."""
        if self.assign_labels == "cluster_qr":
            return {"assign_labels": "cluster_qr", "restarts": None, "select": None}
        restarts = int(self.restarts) if self.restarts is not None else reference_restarts(n_active)
        return {"assign_labels": "kmeans", "restarts": restarts, "select": self.select}

    def choose(
        self,
        graph: WeightGraph,
        candidates: np.ndarray,
        inertia: np.ndarray,
        eigenvalues: np.ndarray,
        nodes: np.ndarray,
    ) -> Partition:
        """The `Partition` of the restart kept among ``candidates`` ``(restarts, len(nodes))`` with
        their k-means ``inertia`` ``(restarts,)``: lowest inertia, or lowest n-cut with
        ``select="ncut"`` (only then are all restarts' n-cuts computed)."""
        labels = np.full((candidates.shape[0], graph.n_nodes), -1, dtype=np.int64)
        labels[:, nodes] = candidates
        if self.select == "ncut":
            cuts, _ = ncut_batch(graph, labels)
            best = kept_restart(candidates, cuts)
            cut = float(cuts[best])
        else:  # the reference: lowest inertia; the n-cut of that restart alone
            best = kept_restart(candidates, inertia)
            cut = float(ncut_batch(graph, labels[best : best + 1])[0][0])
        return Partition(labels[best], cut, int(self.n_clusters), eigenvalues, self.settings(nodes.size))


def kept_restart(candidates: np.ndarray, values: np.ndarray) -> int:
    """The restart kept among ``candidates`` ``(restarts, n)``: the lowest of ``values``
    ``(restarts,)``, or the first restart holding the same partition under other label numbers.

    Such restarts differ in inertia (or n-cut) only by rounding, which the BLAS, the thread count
    and the order of sums decide, so a plain argmin would number the clusters differently from
    machine to machine; the first of them is the same choice everywhere."""
    best = int(np.argmin(values))
    ref = candidates[best]
    n_ref = np.unique(ref).size
    width = int(candidates.max()) + 2  # labels from -1 up
    for r in range(best):
        # the same partition: as many clusters, each of ref's meeting exactly one of r's
        if (
            np.unique(candidates[r]).size == n_ref
            and np.unique((ref + 1) * width + candidates[r] + 1).size == n_ref
        ):
            return r
    return best


class SklearnClusterer:
    """scikit-learn's ``SpectralClustering(affinity="precomputed")`` on the same graph.

    The plain pipeline, kept as a reference and benchmark baseline.
    """

    def __init__(self, n_clusters: int = 12, **kwargs) -> None:
        self.n_clusters = n_clusters
        self.kwargs = kwargs

    def partition(self, graph: WeightGraph, seed: SeedLike = None) -> Partition:
        from sklearn.cluster import SpectralClustering

        nodes = np.flatnonzero(graph.active)
        sc = SpectralClustering(
            self.n_clusters, affinity="precomputed", random_state=int_seed(seed), **self.kwargs
        )
        labels = np.full(graph.n_nodes, -1, dtype=np.int64)
        labels[nodes] = sc.fit(graph.adjacency[nodes][:, nodes]).labels_
        settings = {"assign_labels": sc.assign_labels, "restarts": sc.n_init, "select": "inertia"}
        return Partition(labels, ncut(graph, labels), int(self.n_clusters), np.array([]), settings)


CLUSTERERS = {"spectral": SpectralClusterer, "sklearn": SklearnClusterer}


def cluster(
    graph: WeightGraph | Network,
    n_clusters: int = 12,
    seed: SeedLike = 0,
    assign_labels: AssignLabels = "kmeans",
    **kwargs,
) -> Partition:
    """Partition ``graph`` (a `WeightGraph`, or a `Network`'s graph) into ``n_clusters`` by
    normalised spectral clustering."""
    if isinstance(graph, Network):
        graph = graph.graph
    return SpectralClusterer(n_clusters, assign_labels=assign_labels, **kwargs).partition(graph, seed)
