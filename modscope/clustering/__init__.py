"""Partitions of a graph: normalised spectral clustering with k-means restarts ([spec §2][spec-2]), the
n-cut, modularity communities (Louvain) and layer-local clustering."""

from .community import Communities, leiden, louvain, modularity
from .local import LocalPartition, layer_local
from .ncut import ncut, ncut_batch
from .spectral import Partition, SklearnClusterer, SpectralClusterer, cluster

__all__ = [
    "Communities",
    "LocalPartition",
    "Partition",
    "SklearnClusterer",
    "SpectralClusterer",
    "cluster",
    "layer_local",
    "leiden",
    "louvain",
    "modularity",
    "ncut",
    "ncut_batch",
]
