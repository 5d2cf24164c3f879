"""Modularity measures beside the spectral n-cut, and one shuffle-null machinery for all.

- **Newman modularity Q** (`modularity`) of a partition of the |w| graph, and the partition
  that maximises it approximately, by **Louvain** (`louvain`, networkx's
  ``louvain_communities``). Q is in ``[-1/2, 1)``, **higher is more modular**; Louvain picks
  the number of communities itself.
- **Layer-local clustering** (Hod et al., "Quantifying Local Specialization in Deep Neural
  Networks"): every hidden layer is clustered on its own 3-layer graph (the weight matrices
  into and out of it), and only the middle layer's labels are kept (`layer_local`). Its
  score is the mean n-cut of those 3-layer partitions, lower is more modular.
- The spectral n-cut itself (`NcutMeasure`), so that every measure runs through the same
  `score_measure` loop.

`score_measure` compares any `Measure` on a graph with the same measure on ``n`` samples
of a `Null`: weight shuffles (`WeightShuffleNull`, the spec §3 methods) or any object with
``sample(seed) -> WeightGraph`` (e.g. `modscope.activations.UnitPermutationNull`). Sample
``i`` is drawn with ``child_seed(SeedSequence(seed).spawn(n)[i], 0)`` and measured with its
child 1, exactly as `modscope.baselines.shuffle_ncuts` does, so the n-cut measure with a
weight-shuffle null reproduces `modscope.score` bit for bit.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import numpy as np
import pandas as pd
import scipy.sparse as sp
from joblib import Parallel, delayed
from tqdm.auto import tqdm

from . import __version__
from ._threads import single_thread
from .baselines import ShuffleMethod, get_shuffle, shuffle_graph
from .errors import ModscopeError
from .graph import WeightGraph
from .spectral import Partition, SeedLike, SpectralClusterer, _seed_sequence, child_seed, ncut
from .stats import NullComparison, compare_to_null


# -- Newman modularity -------------------------------------------------------------------------
def modularity(graph: WeightGraph | sp.spmatrix, labels: np.ndarray, resolution: float = 1.0) -> float:
    """Newman's weighted modularity ``Q = sum_c [ w_in(c) / m - resolution * (vol(c) / 2m)^2 ]``.

    ``m`` is the total edge weight (each undirected edge once), ``w_in(c)`` the weight of the
    edges inside community ``c`` and ``vol(c)`` its summed degree. ``labels`` has one entry per
    node; nodes labelled -1 (degree 0, removed) belong to no community. Equals networkx's
    ``community.modularity`` (a test oracle). Higher is more modular.
    """
    labels = np.asarray(labels, dtype=np.int64)
    if isinstance(graph, WeightGraph):
        u, v, w = graph.edges
        deg = graph.degree
    else:
        coo = sp.triu(graph, k=1).tocoo()
        u, v, w = coo.row, coo.col, coo.data
        deg = np.asarray(graph.sum(axis=1)).ravel()
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


def _int_seed(seed: SeedLike) -> int:
    return int(_seed_sequence(seed).generate_state(1)[0] % (2**31))


def louvain(
    graph: WeightGraph, seed: SeedLike = 0, resolution: float = 1.0, threshold: float = 1e-7
) -> Communities:
    """Louvain communities of the |w| graph (networkx ``louvain_communities``, weighted).

    Degree-0 nodes get label -1; the rest are numbered by decreasing community size (ties by
    lowest node id), so the labels are deterministic for a given ``seed``. networkx's
    implementation is pure Python: seconds for graphs of a few hundred nodes and ~10^4 edges,
    minutes for a dense 784-256x4-10 MLP (4 x 10^5 edges).
    """
    import networkx as nx

    nodes = np.flatnonzero(graph.active)
    if nodes.size < 2:
        raise ModscopeError("Louvain needs a graph with at least one edge")
    g = nx.from_scipy_sparse_array(graph.adjacency[nodes][:, nodes], edge_attribute="weight")
    comms = nx.community.louvain_communities(
        g, weight="weight", resolution=resolution, threshold=threshold, seed=_int_seed(seed)
    )
    comms = sorted((sorted(c) for c in comms), key=lambda c: (-len(c), c[0]))
    labels = np.full(graph.n_nodes, -1, dtype=np.int64)
    for i, c in enumerate(comms):
        labels[nodes[np.asarray(c, dtype=np.int64)]] = i
    return Communities(labels, modularity(graph, labels, resolution), ncut(graph, labels))


# -- layer-local clustering ----------------------------------------------------------------------
@dataclass
class LocalPartition:
    """Layer-local clusters: every hidden layer split on its own 3-layer graph.

    ``layers``: the hidden layer indices (1 .. n_layers - 2). ``labels[i]``: ``(width,)``
    cluster of each neuron of ``layers[i]`` (-1: no edge in its 3-layer graph); cluster ids
    are local to their layer. ``ncuts[i]``: n-cut of the whole 3-layer partition (range
    ``[0, k]``, lower is more modular).
    """

    layers: list[int]
    labels: list[np.ndarray]
    ncuts: np.ndarray
    n_clusters: int

    @property
    def ncut(self) -> float:
        """Mean n-cut over the hidden layers: the layer-local score."""
        return float(self.ncuts.mean())

    def node_labels(self, graph: WeightGraph) -> np.ndarray:
        """``(n_nodes,)``: hidden neurons' local labels, -1 for the input and output layers."""
        out = np.full(graph.n_nodes, -1, dtype=np.int64)
        for layer, lab in zip(self.layers, self.labels, strict=True):
            out[graph.offsets[layer] : graph.offsets[layer + 1]] = lab
        return out

    def to_dict(self) -> dict:
        return {
            "ncut": self.ncut,
            "n_clusters": int(self.n_clusters),
            "layers": [
                {"layer": int(l), "ncut": float(c), "labels": lab.astype(int).tolist()}
                for l, c, lab in zip(self.layers, self.ncuts, self.labels, strict=True)
            ],
        }

    def to_frame(self) -> pd.DataFrame:
        """One row per hidden layer: ``layer``, ``ncut``, and the size of each local cluster."""
        rows = []
        for l, c, lab in zip(self.layers, self.ncuts, self.labels, strict=True):
            sizes = np.bincount(lab[lab >= 0], minlength=self.n_clusters)
            rows.append({"layer": l, "ncut": float(c), **{f"c{i}": int(s) for i, s in enumerate(sizes)}})
        return pd.DataFrame(rows)


def layer_local(
    graph: WeightGraph, n_clusters: int = 4, seed: SeedLike = 0, clusterer: SpectralClusterer | None = None
) -> LocalPartition:
    """Cluster every hidden layer ``l`` on the 3-layer graph ``(W_l, W_{l+1})`` (layers
    ``l-1, l, l+1``) into ``n_clusters`` and keep layer ``l``'s labels.

    Hidden layer ``l`` (1-based, in graph layer numbering) is clustered with
    ``child_seed(seed, l)``. A network with no hidden layer has nothing to cluster.
    """
    if graph.n_layers < 3:
        raise ModscopeError("layer-local clustering needs at least one hidden layer")
    clusterer = clusterer or SpectralClusterer(n_clusters)
    k = clusterer.n_clusters
    layers, labels, cuts = [], [], []
    for l in range(1, graph.n_layers - 1):
        local = WeightGraph((graph.weights[l - 1], graph.weights[l]), graph.names[l - 1 : l + 1])
        n_active = int(local.active.sum())
        if k >= n_active:
            raise ModscopeError(
                f"layer {l}: cannot split its 3-layer graph ({n_active} connected nodes) into {k} clusters"
            )
        part = clusterer.partition(local, child_seed(seed, l))
        off = local.offsets
        layers.append(l)
        labels.append(part.labels[off[1] : off[2]].copy())
        cuts.append(part.ncut)
    return LocalPartition(layers, labels, np.asarray(cuts), int(k))


# -- measures: one interface ---------------------------------------------------------------------
class Measure(Protocol):
    """A modularity score of a graph: ``evaluate(graph, seed) -> (value, partition)``."""

    name: str
    higher_is_modular: bool

    def evaluate(self, graph: WeightGraph, seed: SeedLike) -> tuple[float, Any]: ...


class NcutMeasure:
    """The spectral n-cut (spec §2); lower is more modular."""

    name = "ncut"
    higher_is_modular = False

    def __init__(self, clusterer: SpectralClusterer | None = None) -> None:
        self.clusterer = clusterer

    def evaluate(self, graph: WeightGraph, seed: SeedLike) -> tuple[float, Partition]:
        part = (self.clusterer or SpectralClusterer()).partition(graph, seed)
        return part.ncut, part

    def single_threaded(self) -> NcutMeasure:
        return NcutMeasure((self.clusterer or SpectralClusterer()).with_threads(1))


class LouvainMeasure:
    """Newman Q of the Louvain partition; higher is more modular."""

    name = "modularity"
    higher_is_modular = True

    def __init__(self, resolution: float = 1.0) -> None:
        self.resolution = resolution

    def evaluate(self, graph: WeightGraph, seed: SeedLike) -> tuple[float, Communities]:
        comms = louvain(graph, seed, self.resolution)
        return comms.modularity, comms


class LayerLocalMeasure:
    """Mean n-cut of the layer-local 3-layer partitions; lower is more modular."""

    name = "local_ncut"
    higher_is_modular = False

    def __init__(self, n_clusters: int = 4, clusterer: SpectralClusterer | None = None) -> None:
        self.n_clusters = n_clusters
        self.clusterer = clusterer

    def evaluate(self, graph: WeightGraph, seed: SeedLike) -> tuple[float, LocalPartition]:
        part = layer_local(graph, self.n_clusters, seed, self.clusterer)
        return part.ncut, part

    def single_threaded(self) -> LayerLocalMeasure:
        clusterer = (self.clusterer or SpectralClusterer(self.n_clusters)).with_threads(1)
        return LayerLocalMeasure(self.n_clusters, clusterer)


METHODS = ("spectral", "louvain", "local")


def get_measure(method: str, n_clusters: int = 12, clusterer: SpectralClusterer | None = None) -> Measure:
    """``spectral`` (n-cut), ``louvain`` (Newman Q) or ``local`` (layer-local mean n-cut)."""
    if method == "spectral":
        return NcutMeasure(clusterer or SpectralClusterer(n_clusters))
    if method == "louvain":
        return LouvainMeasure()
    if method == "local":
        return LayerLocalMeasure(n_clusters, clusterer)
    raise ModscopeError(f"unknown method {method!r}; choose from {', '.join(METHODS)}")


# -- nulls ---------------------------------------------------------------------------------------
class Null(Protocol):
    """Random graphs to compare with: ``sample(seed) -> WeightGraph``."""

    name: str

    def sample(self, seed: np.random.SeedSequence) -> WeightGraph: ...


class WeightShuffleNull:
    """Every weight matrix of ``graph`` shuffled by a spec §3 method (`modscope.baselines`)."""

    def __init__(self, graph: WeightGraph, method: str | ShuffleMethod = "layer") -> None:
        self.graph = graph
        self.method = get_shuffle(method)
        self.name = self.method.name

    def sample(self, seed: np.random.SeedSequence) -> WeightGraph:
        return shuffle_graph(self.graph, self.method, seed)


@dataclass
class MeasureResult:
    """A measure on a graph against its null.

    ``null.p_value`` is one-sided in the modular direction: ``(#{s_i < x} + 1) / (N + 1)``
    when lower is more modular, ``(#{s_i > x} + 1) / (N + 1)`` when higher is (Q). ``null.z``
    is always ``(x - mean) / std``: negative means modular for n-cuts, positive for Q.
    """

    graph: WeightGraph
    measure: str
    higher_is_modular: bool
    value: float
    partition: Any
    null_name: str | None
    null: NullComparison | None
    seed: int

    def to_dict(self) -> dict:
        shuffle = None if self.null is None else self.null.to_shuffle_dict(self.null_name, "values")
        return {
            "measure": self.measure,
            "higher_is_modular": self.higher_is_modular,
            "value": float(self.value),
            "partition": self.partition.to_dict(),
            **self.graph.summary(),
            "shuffle": shuffle,
            "seed": int(self.seed),
            "version": __version__,
        }


def compare_directed(observed: float, samples, higher_is_modular: bool) -> NullComparison:
    """`compare_to_null`, with the p-value counting null samples at least as modular."""
    result = compare_to_null(observed, samples)
    if not higher_is_modular:
        return result
    s = result.samples
    return dataclasses.replace(result, p_value=float((np.count_nonzero(s > observed) + 1) / (s.size + 1)))


def _one_sample(null: Null, measure: Measure, ss: np.random.SeedSequence) -> float:
    # One BLAS / OpenMP thread per sample: the numbers are then the same whatever `jobs` is.
    if hasattr(measure, "single_threaded"):
        measure = measure.single_threaded()
    with single_thread():
        return float(measure.evaluate(null.sample(child_seed(ss, 0)), child_seed(ss, 1))[0])


def null_values(
    null: Null, measure: Measure, n: int, seed: int = 0, jobs: int = 1, progress: bool = False
) -> np.ndarray:
    """``(n,)`` values of ``measure`` on ``n`` samples of ``null``, in sample order."""
    if not isinstance(n, int | np.integer) or n < 1:
        raise ModscopeError(f"the number of shuffles must be an integer >= 1, got {n}")
    seeds = np.random.SeedSequence(seed).spawn(n)
    if jobs == 1:
        results = (_one_sample(null, measure, ss) for ss in seeds)
    else:
        results = Parallel(n_jobs=jobs, return_as="generator")(
            delayed(_one_sample)(null, measure, ss) for ss in seeds
        )
    bar = tqdm(results, total=n, desc=f"{null.name} null", unit="sample", disable=not progress, leave=False)
    return np.fromiter(bar, dtype=np.float64, count=n)


def score_measure(
    graph: WeightGraph,
    measure: Measure | Literal["spectral", "louvain", "local"] = "louvain",
    n_shuffles: int = 50,
    null: Null | str | ShuffleMethod = "layer",
    seed: int = 0,
    jobs: int = 1,
    progress: bool = False,
    n_clusters: int = 12,
) -> MeasureResult:
    """``measure`` on ``graph`` (seeded ``SeedSequence(seed)``) against ``n_shuffles`` samples
    of ``null`` (a shuffle method name, applied to ``graph``'s weight matrices, or a `Null`).

    ``n_shuffles=0`` skips the null. ``n_clusters`` is used when ``measure`` is a name.
    """
    if isinstance(measure, str):
        measure = get_measure(measure, n_clusters)
    if isinstance(null, str) or not hasattr(null, "sample"):
        null = WeightShuffleNull(graph, null)
    value, partition = measure.evaluate(graph, np.random.SeedSequence(seed))
    comparison = None
    if n_shuffles:
        samples = null_values(null, measure, n_shuffles, seed, jobs, progress)
        comparison = compare_directed(value, samples, measure.higher_is_modular)
    return MeasureResult(
        graph,
        measure.name,
        measure.higher_is_modular,
        float(value),
        partition,
        null.name if n_shuffles else None,
        comparison,
        int(seed),
    )


def format_measure(result: MeasureResult, source: str = "") -> str:
    """The terminal summary of a `MeasureResult`."""
    d = result.to_dict()
    widths = "-".join(map(str, d["layer_widths"]))
    better = "higher" if result.higher_is_modular else "lower"
    lines = [
        f"modscope {d['version']}  {source}".rstrip(),
        f"network   {widths}  ({d['n_nodes']} nodes, {d['n_edges']} edges)",
        f"measure   {result.measure} = {result.value:.4f}   ({better} = more modular)",
    ]
    part = result.partition
    if isinstance(part, Communities):
        lines.append(f"louvain   {part.n_clusters} communities, n-cut {part.ncut:.4f}")
    elif isinstance(part, LocalPartition):
        per = ", ".join(f"layer {l}: {c:.4f}" for l, c in zip(part.layers, part.ncuts, strict=True))
        lines.append(f"local     k = {part.n_clusters} per layer; n-cut {per}")
    s = d["shuffle"]
    if s is not None:
        z = "n/a" if s["z"] is None else f"{s['z']:.2f}"
        lines += [
            f"null      {s['n']} x {s['method']}: mean {s['mean']:.4f} +- {s['std']:.4f} (std, ddof 0)",
            f"z         {z}   ({'positive' if result.higher_is_modular else 'negative'} = more modular)",
            f"p         {s['p_value']:.4g}   (one-sided, floor 1/{s['n'] + 1} = {1 / (s['n'] + 1):.4g})",
        ]
    return "\n".join(lines)


def score_graph(
    graph: WeightGraph,
    method: Literal["spectral", "louvain", "local"] = "spectral",
    n_clusters: int = 12,
    n_shuffles: int = 50,
    null: Null | str | ShuffleMethod = "layer",
    seed: int = 0,
    jobs: int = 1,
    clusterer: SpectralClusterer | None = None,
    progress: bool = False,
):
    """Score ``graph`` by ``method`` against ``null``: the one entry point of ``modscope score``.

    ``spectral`` returns a `modscope.score.ScoreResult` (with a weight-shuffle null it *is*
    `modscope.score`); ``louvain`` and ``local`` return a `MeasureResult`.
    """
    from .score import ScoreResult, score

    if method == "spectral":
        clusterer = clusterer or SpectralClusterer(n_clusters)
        if isinstance(null, str) or not hasattr(null, "sample"):
            return score(
                graph, n_clusters, n_shuffles, null, seed, jobs, progress=progress, clusterer=clusterer
            )
        res = score_measure(graph, NcutMeasure(clusterer), n_shuffles, null, seed, jobs, progress)
        return ScoreResult(graph, res.partition, res.null_name or null.name, res.null, int(seed))
    measure = get_measure(method, n_clusters, clusterer)
    return score_measure(graph, measure, n_shuffles, null, seed, jobs, progress)
