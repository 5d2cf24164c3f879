"""Sub-modules: the units of one unit group that carry one cluster label ([spec §4][spec-4])."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import ModscopeError

__all__ = ["Submodule", "group_labels", "group_submodules", "hidden_layer_labels", "submodules"]


@dataclass(frozen=True)
class Submodule:
    """The units (indices within unit group ``layer``) that carry cluster label ``cluster``."""

    layer: int
    cluster: int
    neurons: tuple[int, ...]

    @property
    def size(self) -> int:
        return len(self.neurons)


def _checked(a: np.ndarray) -> np.ndarray:
    if a.size and not np.issubdtype(a.dtype, np.integer):
        if not np.all(np.isfinite(a)) or not np.all(a == np.round(a)):
            raise ModscopeError("cluster labels must be integers")
    a = a.astype(np.int64)
    if a.size and a.min() < -1:
        raise ModscopeError("cluster labels must be >= 0, or -1 for unlabelled units")
    return a


def group_labels(
    labels: Any, sizes: Sequence[int], lesioned: Sequence[int], input_width: int | None = None
) -> list[np.ndarray]:
    """One int64 label array per unit group (of ``sizes`` units), from any accepted layout.

    ``labels``: one label per graph node in group order, or a list of per-group arrays (one per
    group, or one per ``lesioned`` group: those a lesion can reach, e.g. an MLP's hidden layers), or
    an object with a ``labels`` attribute (a [`Partition`][modscope.clustering.spectral.Partition]).
    ``-1`` = unlabelled. Only the lesioned groups' arrays must have their group's size: the others
    are never lesioned (given ``-1``). ``input_width``: the features the reader of group 0 (the
    input) sees, when a graph of the same network counts them differently (a weight graph lists
    each token's embedding dimensions as input units; the unit graph one unit per dimension).
    """
    labels = getattr(labels, "labels", labels)
    sizes = [int(s) for s in sizes]
    # one label array per group, or one label per node
    if isinstance(labels, list | tuple) and len(labels) > 0 and np.ndim(labels[0]) == 1:
        given = [np.asarray(a) for a in labels]
        if len(given) == len(lesioned) != len(sizes):
            given = dict(zip(lesioned, given, strict=True))
        elif len(given) == len(sizes):
            given = dict(enumerate(given))
        else:
            raise ModscopeError(
                f"got label arrays for {len(given)} layers; the network has {len(lesioned)} hidden "
                f"layers ({len(sizes)} layers in all)"
            )
    else:
        flat = np.asarray(labels)
        widths = sizes
        if input_width is not None and flat.ndim == 1 and flat.shape[0] == input_width + sum(sizes[1:]):
            widths = [input_width, *sizes[1:]]
        if flat.ndim != 1 or flat.shape[0] != sum(widths):
            raise ModscopeError(
                f"expected one cluster label per node of the unit graph ({sum(sizes)} for unit groups "
                f"of {', '.join(map(str, sizes))}), got shape {flat.shape}"
            )
        given = dict(enumerate(np.split(flat, np.cumsum(widths)[:-1])))
    out = [np.full(size, -1, dtype=np.int64) for size in sizes]  # groups never lesioned: unlabelled
    for g in sorted(lesioned):
        a = given[g]
        if a.shape != (sizes[g],):
            raise ModscopeError(f"a layer of {sizes[g]} units got {a.shape[0] if a.ndim else 0} labels")
        out[g] = _checked(a)
    return out


def group_submodules(labels: Sequence[np.ndarray], lesioned: Sequence[int]) -> list[Submodule]:
    """Every (lesioned group, cluster) sub-module with at least one unit, by group then cluster."""
    return [
        Submodule(g, int(c), tuple(np.flatnonzero(labels[g] == c).tolist()))
        for g in sorted(lesioned) for c in np.unique(labels[g][labels[g] >= 0])
    ]


def hidden_layer_labels(labels: Any, widths: Sequence[int]) -> list[np.ndarray]:
    """One int64 label array per hidden layer of a layer graph of ``widths`` (input, hidden,
    output), from any layout `group_labels` accepts."""
    return group_labels(labels, widths, range(1, len(widths) - 1))[1:-1]


def submodules(labels: Any, widths: Sequence[int]) -> list[Submodule]:
    """Every (hidden layer, cluster) sub-module of a layer graph of ``widths``, by layer then cluster."""
    hidden = range(1, len(widths) - 1)
    return group_submodules(group_labels(labels, widths, hidden), hidden)
