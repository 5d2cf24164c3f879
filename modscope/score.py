"""The main job: a network's n-cut against shuffled-weight baselines (spec §1–§3)."""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import pandas as pd

from . import __version__
from .baselines import get_shuffle, shuffle_ncuts
from .graph import WeightGraph
from .io import Source, load_graph
from .spectral import AssignLabels, Partition, SpectralClusterer
from .stats import NullComparison, compare_to_null


@dataclass
class ScoreResult:
    """A network's partition, its n-cut and (optionally) its shuffle baseline."""

    graph: WeightGraph
    partition: Partition
    shuffle_method: str
    null: NullComparison | None
    seed: int

    @property
    def ncut(self) -> float:
        return self.partition.ncut

    @property
    def z_floor(self) -> float | None:
        """The lowest z any network could get against this null: ``-mean / std`` (n-cut >= 0)."""
        if self.null is None or self.null.std == 0:
            return None
        return -self.null.mean / self.null.std

    @property
    def warnings(self) -> list[str]:
        """Caveats a reader of the numbers should know (not part of ``to_dict``)."""
        out = []
        if self.null is None:
            return out
        n_zero = int(np.count_nonzero(self.null.samples <= 1e-12))
        if n_zero:
            out.append(
                f"{n_zero} of {self.null.n} shuffled graphs fell apart into disconnected pieces "
                f"(n-cut 0): the network is too sparse for '{self.shuffle_method}' shuffles to be a "
                "fair null; use --shuffle-method layer_degree (degree-preserving)"
            )
        elif self.null.std == 0:
            out.append("every shuffle gave the same n-cut: z is undefined")
        floor = self.z_floor
        if floor is not None and floor > -10 and self.null.z <= 0.8 * floor:
            out.append(
                f"z is capped near its floor ({floor:.2f} = -mean/std, since an n-cut cannot go "
                f"below 0): the null is too wide for z to say more; n-cut / shuffle mean is "
                f"{self.partition.ncut / self.null.mean:.3g}"
            )
        return out

    @property
    def cluster_sizes(self) -> np.ndarray:
        """``(n_layers, n_clusters)`` neurons of each cluster in each layer."""
        return self.partition.sizes(self.graph)

    def to_dict(self) -> dict:
        """JSON-ready: ``ncut``, ``labels``, ``n_clusters``, ``layer_widths``, ``n_nodes``,
        ``n_edges``, ``shuffle``, ``seed``, ``version``."""
        shuffle = None if self.null is None else self.null.to_shuffle_dict(self.shuffle_method, "ncuts")
        return {
            "ncut": float(self.partition.ncut),
            "labels": self.partition.labels.astype(int).tolist(),
            "n_clusters": int(self.partition.n_clusters),
            **self.graph.summary(),
            "shuffle": shuffle,
            "seed": int(self.seed),
            "version": __version__,
        }

    def to_frame(self) -> pd.DataFrame:
        """Cluster sizes: one row per layer, one column per cluster."""
        sizes = self.cluster_sizes
        return pd.DataFrame(
            sizes,
            index=pd.Index(range(self.graph.n_layers), name="layer"),
            columns=pd.Index(range(sizes.shape[1]), name="cluster"),
        )


def score(
    source: WeightGraph | Source,
    n_clusters: int = 12,
    n_shuffles: int = 50,
    shuffle_method: str = "layer",
    seed: int = 0,
    jobs: int = 1,
    assign_labels: AssignLabels = "kmeans",
    progress: bool = False,
    clusterer: SpectralClusterer | None = None,
    cache: str | os.PathLike | None = None,
) -> ScoreResult:
    """Cluster a network and compare its n-cut with ``n_shuffles`` shuffled copies.

    ``source`` is a `WeightGraph` or anything `load_graph` reads. ``n_shuffles=0`` skips
    the baseline. The trained network is clustered with ``SeedSequence(seed)``; shuffle
    ``i`` with ``SeedSequence(seed).spawn(n_shuffles)[i]``. ``cache``: a folder where each
    finished shuffle is kept, so an interrupted run resumes (`modscope.cache`).
    """
    graph = source if isinstance(source, WeightGraph) else load_graph(source)
    clusterer = clusterer or SpectralClusterer(n_clusters, assign_labels=assign_labels)
    method = get_shuffle(shuffle_method)
    partition = clusterer.partition(graph, np.random.SeedSequence(seed))
    null = None
    if n_shuffles:
        ncuts = shuffle_ncuts(graph, n_shuffles, method, clusterer, seed, jobs, progress, cache=cache)
        null = compare_to_null(partition.ncut, ncuts)
    return ScoreResult(graph, partition, method.name, null, int(seed))
