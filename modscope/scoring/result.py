"""The result of scoring a network: its measure, its partition, and its null comparison."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .._version import __version__
from ..graphs.weight_graph import WeightGraph
from ..stats import NullComparison

__all__ = ["ScoreResult"]


@dataclass
class ScoreResult:
    """A measure of a network against ``null.n`` samples of a null.

    ``measure``: the measure's name (``ncut``, ``modularity``, ``local_ncut``);
    ``higher_is_modular``: its direction. ``value``: the measure on the network, with the
    ``partition`` that gave it (a `Partition`, `Communities` or `LocalPartition`). ``null``: the
    comparison with the null samples (``None`` without samples): ``null.p_value`` counts samples
    more modular than the network, ``null.z = (value - mean) / std`` (negative is modular for
    n-cuts, positive for Q). ``null_name``: which null. ``seed``: the seed everything came from.
    """

    graph: WeightGraph
    measure: str
    higher_is_modular: bool
    value: float
    partition: Any
    null_name: str | None
    null: NullComparison | None
    seed: int

    @property
    def ncut(self) -> float:
        """The n-cut of the partition (for the n-cut measure, its value)."""
        return float(self.value if self.measure == "ncut" else self.partition.ncut)

    @property
    def shuffle_method(self) -> str | None:
        """The null's name (``layer``, ``layer_degree``, ``units``, ...)."""
        return self.null_name

    @property
    def z_floor(self) -> float | None:
        """The lowest z any network could get against this null: ``-mean / std`` (for measures
        bounded below by 0, like the n-cut)."""
        if self.null is None or self.null.std == 0 or self.higher_is_modular:
            return None
        return -self.null.mean / self.null.std

    @property
    def warnings(self) -> list[str]:
        """Caveats a reader of the numbers should know (not part of ``to_dict``)."""
        out: list[str] = []
        if self.null is None or self.measure != "ncut":
            return out
        n_zero = int(np.count_nonzero(self.null.samples <= 1e-12))
        if n_zero:
            out.append(
                f"{n_zero} of {self.null.n} shuffled graphs fell apart into disconnected pieces "
                f"(n-cut 0): the network is too sparse for '{self.null_name}' shuffles to be a "
                "fair null; use --shuffle-method layer_degree (degree-preserving)"
            )
        elif self.null.std == 0:
            out.append("every shuffle gave the same n-cut: z is undefined")
        floor = self.z_floor
        if floor is not None and floor > -10 and self.null.z <= 0.8 * floor:
            out.append(
                f"z is capped near its floor ({floor:.2f} = -mean/std, since an n-cut cannot go "
                f"below 0): the null is too wide for z to say more; n-cut / shuffle mean is "
                f"{self.value / self.null.mean:.3g}"
            )
        return out

    @property
    def cluster_sizes(self) -> np.ndarray:
        """``(n_layers, n_clusters)`` neurons of each cluster in each layer."""
        return self.partition.sizes(self.graph)

    def to_dict(self) -> dict:
        """JSON-ready. The n-cut measure: ``ncut``, ``labels``, ``n_clusters``, the graph summary
        (``layer_widths``, ``n_nodes``, ``n_edges``), ``clustering`` (how the partition was made:
        ``assign_labels``, ``restarts``, ``select``), ``shuffle`` {``method, n, ncuts, mean, std,
        z, p_value``}, ``seed``, ``version``. Other measures: ``measure``, ``higher_is_modular``,
        ``value``, ``partition``, the graph summary, ``clustering``, ``shuffle`` (samples under
        ``values``), ``seed``, ``version``."""
        is_ncut = self.measure == "ncut"
        shuffle = None
        if self.null is not None:
            shuffle = self.null.to_shuffle_dict(self.null_name, "ncuts" if is_ncut else "values")
        if is_ncut:
            head = {
                "ncut": float(self.value),
                "labels": self.partition.labels.astype(int).tolist(),
                "n_clusters": int(self.partition.n_clusters),
            }
        else:
            head = {
                "measure": self.measure,
                "higher_is_modular": self.higher_is_modular,
                "value": float(self.value),
                "partition": self.partition.to_dict(),
            }
        return {
            **head,
            **self.graph.summary(),
            "clustering": dict(getattr(self.partition, "clustering", {})),
            "shuffle": shuffle,
            "seed": int(self.seed),
            "version": __version__,
        }

    def to_frame(self):
        """A ``pandas.DataFrame``: cluster sizes, one row per layer and one column per cluster
        (layer-local partitions: one row per hidden layer with its n-cut and cluster sizes)."""
        import pandas as pd

        if not hasattr(self.partition, "sizes"):
            return self.partition.to_frame()
        sizes = self.cluster_sizes
        return pd.DataFrame(
            sizes,
            index=pd.Index(range(self.graph.n_layers), name="layer"),
            columns=pd.Index(range(sizes.shape[1]), name="cluster"),
        )
