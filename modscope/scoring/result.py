"""The result of scoring a network: its measure, its partition, and its null comparison."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._version import __version__
from ..graphs.weight_graph import WeightGraph
from ..stats import NullComparison
from ..stats import flags as _flags

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
    ``other_nulls``: a sparse network's comparison with the other kind of null (its sparsity
    pattern kept or scattered; `modscope.stats.flags.companion_null`), by null name.
    """

    graph: WeightGraph
    measure: str
    higher_is_modular: bool
    value: float
    partition: Any
    null_name: str | None
    null: NullComparison | None
    seed: int
    other_nulls: dict[str, NullComparison] = field(default_factory=dict)

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
    def zero_fraction(self) -> float:
        """The share of exactly-zero entries of the graph's weight matrices (what shuffles permute)."""
        return _flags.zero_fraction(self.graph.weights)

    @property
    def flags(self) -> list[_flags.Flag]:
        """Caveats a reader of the numbers should know (`modscope.stats.flags`): a null that fell
        apart or capped z, sparse nulls that disagree, a degenerate partition, a plain stack read
        from weights alone. Only the sparse comparison is part of ``to_dict`` (``sparse``)."""
        out: list[_flags.Flag] = []
        if self.null is not None and self.measure == "ncut":
            n_zero = int(np.count_nonzero(self.null.samples <= 1e-12))
            if n_zero:
                out.append(_flags.Flag(
                    "null_fell_apart",
                    f"{n_zero} of {self.null.n} shuffled graphs fell apart into disconnected pieces "
                    f"(n-cut 0): the network is too sparse for '{self.null_name}' shuffles to be a "
                    "fair null; use --shuffle-method layer_degree (degree-preserving)",
                ))
            elif self.null.std == 0:
                out.append(_flags.Flag("z_undefined", "every shuffle gave the same n-cut: z is undefined"))
            floor = self.z_floor
            if floor is not None and floor > -10 and self.null.z <= 0.8 * floor:
                out.append(_flags.Flag(
                    "z_capped",
                    f"z is capped near its floor ({floor:.2f} = -mean/std, since an n-cut cannot go "
                    f"below 0): the null is too wide for z to say more; n-cut / shuffle mean is "
                    f"{self.value / self.null.mean:.3g}",
                ))
        sparse = self._sparse_dict()
        if sparse is not None and sparse["warning"]:
            out.append(_flags.Flag("sparse_nulls_disagree", sparse["warning"]))
        labels = getattr(self.partition, "labels", None)
        if self.measure == "ncut" and labels is not None:
            out += _flags.partition_flags(labels, self.partition.n_clusters)
        stack = _flags.stack_reading_flag(self.graph.reading)
        if stack is not None:
            out.append(stack)
        return out

    @property
    def warnings(self) -> list[str]:
        """The `flags` as sentences (not part of ``to_dict``)."""
        return [f.message for f in self.flags]

    def _sparse_dict(self) -> dict | None:
        """The ``sparse`` block of ``to_dict``: the zero fraction, what each null tests, their
        verdicts, the other null's samples and the warning when the verdicts differ."""
        if self.null is None or not self.other_nulls:
            return None
        key = "ncuts" if self.measure == "ncut" else "values"
        blocks = {self.null_name: self.null.to_shuffle_dict(self.null_name, key)}
        blocks.update({n: c.to_shuffle_dict(n, key) for n, c in self.other_nulls.items()})
        fraction = self.zero_fraction
        flag = _flags.null_disagreement(self.value, fraction, blocks, self.higher_is_modular)
        return {
            "zero_fraction": fraction,
            "threshold": _flags.SPARSE_FRACTION,
            "tests": {n: _flags.null_tests(n) for n in blocks},
            "verdicts": {
                n: _flags.verdict(self.value, b[key], self.higher_is_modular) for n, b in blocks.items()
            },
            "other": blocks[next(iter(self.other_nulls))],
            "warning": None if flag is None else flag.message,
        }

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
        ``values``), ``seed``, ``version``. A sparse network scored against a second null adds
        ``sparse`` {``zero_fraction, threshold, tests, verdicts, other, warning``}: ``other`` is
        the second null's ``shuffle`` block, ``warning`` says how to read both when they differ."""
        is_ncut = self.measure == "ncut"
        key = "ncuts" if is_ncut else "values"
        shuffle = None if self.null is None else self.null.to_shuffle_dict(self.null_name, key)
        if is_ncut:
            head = {"ncut": float(self.value), "labels": self.partition.labels.astype(int).tolist(),
                    "n_clusters": int(self.partition.n_clusters)}
        else:
            head = {"measure": self.measure, "higher_is_modular": self.higher_is_modular,
                    "value": float(self.value), "partition": self.partition.to_dict()}
        out = {**head, **self.graph.summary(), "clustering": dict(getattr(self.partition, "clustering", {})),
               "shuffle": shuffle, "seed": int(self.seed), "version": __version__}
        sparse = self._sparse_dict()
        if sparse is not None:  # only sparse networks: dense results keep their keys
            out["sparse"] = sparse
        return out

    def to_frame(self):
        """A ``pandas.DataFrame``: cluster sizes, one row per layer and one column per cluster
        (layer-local partitions: one row per hidden layer with its n-cut and cluster sizes)."""
        import pandas as pd

        if not hasattr(self.partition, "sizes"):
            return self.partition.to_frame()
        sizes = self.cluster_sizes
        return pd.DataFrame(sizes, index=pd.Index(range(self.graph.n_layers), name="layer"),
                            columns=pd.Index(range(sizes.shape[1]), name="cluster"))
