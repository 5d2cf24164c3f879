"""Layer-local clustering (Hod et al., "Quantifying Local Specialization in Deep Neural
Networks"): every hidden layer is clustered on its own 3-layer graph (the weight matrices into
and out of it), and only the middle layer's labels are kept. The score is the mean n-cut of
those 3-layer partitions, lower is more modular."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import ModscopeError
from ..graphs.weight_graph import WeightGraph
from ..runtime.seeds import SeedLike, child_seed
from .spectral import SpectralClusterer

__all__ = ["LocalPartition", "layer_local"]


@dataclass
class LocalPartition:
    """Layer-local clusters: every hidden layer split on its own 3-layer graph.

    ``layers``: the hidden layer indices (1 .. n_layers - 2). ``labels[i]``: ``(width,)``
    cluster of each neuron of ``layers[i]`` (-1: no edge in its 3-layer graph); cluster ids
    are local to their layer. ``ncuts[i]``: n-cut of the whole 3-layer partition (range
    ``[0, k]``, lower is more modular). ``clustering``: how the labels were assigned
    (``restarts`` per hidden layer: each 3-layer graph has its own node count).
    """

    layers: list[int]
    labels: list[np.ndarray]
    ncuts: np.ndarray
    n_clusters: int
    clustering: dict = field(default_factory=dict)

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

    def to_frame(self):
        """One row per hidden layer: ``layer``, ``ncut``, and the size of each local cluster."""
        import pandas as pd

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
    if not graph.is_chain:
        raise ModscopeError("layer-local clustering needs a layered network (a chain of weight matrices)")
    if graph.n_layers < 3:
        raise ModscopeError("layer-local clustering needs at least one hidden layer")
    clusterer = clusterer or SpectralClusterer(n_clusters)
    k = clusterer.n_clusters
    layers, labels, cuts, settings = [], [], [], []
    for l in range(1, graph.n_layers - 1):
        local = WeightGraph((graph.weights[l - 1], graph.weights[l]), graph.names[l - 1 : l + 1])
        n_active = int(local.active.sum())
        if k >= n_active:
            raise ModscopeError(
                f"layer {l}: cannot split its 3-layer graph ({n_active} connected nodes) into {k} clusters"
            )
        part = clusterer.partition(local, child_seed(seed, l))
        layers.append(l)
        labels.append(part.labels[local.offsets[1] : local.offsets[2]].copy())  # the middle layer's
        cuts.append(part.ncut)
        settings.append(part.clustering)
    record = {**settings[0], "restarts": [st.get("restarts") for st in settings]} if settings else {}
    return LocalPartition(layers, labels, np.asarray(cuts), int(k), record)
