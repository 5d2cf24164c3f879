"""Modularity measures: what the engine computes on a network and on every null sample.

A measure is a small strategy object: ``evaluate(graph, seed) -> (value, partition)``, with a
``name``, a direction (``higher_is_modular``), ``params()`` (what its values depend on, for cache
keys) and ``single_threaded()`` (the same measure on one thread, for parallel null samples).

- `NcutMeasure`: the n-cut of a spectral partition ([spec §2][spec-2]); lower is more modular.
- `ModularityMeasure`: Newman's Q of Louvain communities; higher is more modular.
- `LayerLocalMeasure`: the mean n-cut of layer-local partitions (Hod et al.); lower is more modular.
"""

from __future__ import annotations

from typing import Any, Protocol

from ..clustering.community import Communities, leiden, louvain
from ..clustering.local import LocalPartition, layer_local
from ..clustering.spectral import Partition, SpectralClusterer
from ..errors import ModscopeError
from ..graphs.weight_graph import WeightGraph
from ..runtime.seeds import SeedLike

__all__ = [
    "MEASURES",
    "LayerLocalMeasure",
    "Measure",
    "ModularityMeasure",
    "NcutMeasure",
    "get_measure",
]


class Measure(Protocol):
    """A modularity score of a graph (see the module docstring)."""

    name: str
    higher_is_modular: bool

    def evaluate(self, graph: WeightGraph, seed: SeedLike) -> tuple[float, Any]: ...

    def params(self) -> dict[str, Any]: ...

    def single_threaded(self) -> Measure: ...


def _clusterer_params(clusterer: Any) -> list:
    # thread counts never change results, so they are not part of what a value depends on
    return [type(clusterer).__name__, {k: v for k, v in vars(clusterer).items() if k != "threads"}]


class NcutMeasure:
    """The n-cut of a spectral partition ([spec §2][spec-2]); lower is more modular.

    ``clusterer``: a `SpectralClusterer` (default: k = 12) or any object with
    ``partition(graph, seed)`` and ``with_threads(n)``.
    """

    name = "ncut"
    higher_is_modular = False

    def __init__(self, clusterer: Any = None) -> None:
        self.clusterer = clusterer

    def _clusterer(self) -> Any:
        return self.clusterer if self.clusterer is not None else SpectralClusterer()

    def evaluate(self, graph: WeightGraph, seed: SeedLike) -> tuple[float, Partition]:
        part = self._clusterer().partition(graph, seed)
        return part.ncut, part

    def params(self) -> dict[str, Any]:
        return {"clusterer": _clusterer_params(self._clusterer())}

    def single_threaded(self) -> NcutMeasure:
        clusterer = self._clusterer()
        return NcutMeasure(clusterer.with_threads(1) if hasattr(clusterer, "with_threads") else clusterer)


class ModularityMeasure:
    """Newman's Q of the communities ``method`` finds (``"leiden"``, the default, or
    ``"louvain"``); higher is more modular."""

    name = "modularity"
    higher_is_modular = True

    def __init__(self, method: str = "leiden", resolution: float = 1.0) -> None:
        self.method = method
        self.resolution = resolution

    def evaluate(self, graph: WeightGraph, seed: SeedLike) -> tuple[float, Communities]:
        if self.method not in ("leiden", "louvain"):
            raise ModscopeError(f"unknown community method {self.method!r}; use 'leiden' or 'louvain'")
        comms = (leiden if self.method == "leiden" else louvain)(graph, seed, self.resolution)
        return comms.modularity, comms

    def params(self) -> dict[str, Any]:
        return {"method": self.method, "resolution": self.resolution}

    def single_threaded(self) -> ModularityMeasure:
        return self


class LayerLocalMeasure:
    """The mean n-cut of the layer-local 3-layer partitions; lower is more modular."""

    name = "local_ncut"
    higher_is_modular = False

    def __init__(self, n_clusters: int = 4, clusterer: SpectralClusterer | None = None) -> None:
        self.n_clusters = n_clusters
        self.clusterer = clusterer

    def evaluate(self, graph: WeightGraph, seed: SeedLike) -> tuple[float, LocalPartition]:
        part = layer_local(graph, self.n_clusters, seed, self.clusterer)
        return part.ncut, part

    def _clusterer(self) -> SpectralClusterer:
        return self.clusterer or SpectralClusterer(self.n_clusters)

    def params(self) -> dict[str, Any]:
        return {"n_clusters": self.n_clusters, "clusterer": _clusterer_params(self._clusterer())}

    def single_threaded(self) -> LayerLocalMeasure:
        return LayerLocalMeasure(self.n_clusters, self._clusterer().with_threads(1))


# name -> what it builds; the CLI's --method names first, then the measures' own names
MEASURES = {"spectral": "ncut", "ncut": "ncut", "leiden": "leiden", "louvain": "louvain",
            "modularity": "leiden", "local": "local_ncut", "local_ncut": "local_ncut"}


def get_measure(measure: Any = "ncut", n_clusters: int | None = None) -> Measure:
    """A measure from a name (``ncut``/``spectral``; ``modularity``/``leiden`` or ``louvain``, Newman's
    Q; ``local``/``local_ncut``), a clusterer (wrapped as an `NcutMeasure`) or a `Measure`.

    ``n_clusters`` (default 12) only goes with a name of a measure that takes a number of
    clusters: a measure object already has its own, and Louvain finds the number itself.
    """
    if isinstance(measure, str):
        kind = MEASURES.get(measure)
        if kind is None:
            raise ModscopeError(f"unknown measure {measure!r}; choose from {', '.join(MEASURES)}")
        if kind in ("leiden", "louvain"):
            if n_clusters is not None:
                raise ModscopeError(
                    f"modularity ({kind}) finds the number of communities itself: no n_clusters"
                )
            return ModularityMeasure(kind)
        k = 12 if n_clusters is None else n_clusters
        return NcutMeasure(SpectralClusterer(k)) if kind == "ncut" else LayerLocalMeasure(k)
    if n_clusters is not None:
        raise ModscopeError(
            "n_clusters goes with a measure's name; a measure or clusterer object has its own"
        )
    if hasattr(measure, "evaluate"):
        return measure
    if hasattr(measure, "partition"):
        return NcutMeasure(measure)
    raise ModscopeError(
        f"a measure must be a name, a clusterer or have evaluate(graph, seed), got {measure!r}"
    )
