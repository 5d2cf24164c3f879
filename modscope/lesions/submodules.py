"""Sub-modules: the neurons of one hidden layer that carry one cluster label ([spec §4][spec-4])."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import ModscopeError

__all__ = ["Submodule", "hidden_layer_labels", "submodules"]


@dataclass(frozen=True)
class Submodule:
    """The neurons (indices within graph layer ``layer``) that carry cluster label ``cluster``."""

    layer: int
    cluster: int
    neurons: tuple[int, ...]

    @property
    def size(self) -> int:
        return len(self.neurons)


def hidden_layer_labels(labels: Any, widths: Sequence[int]) -> list[np.ndarray]:
    """One int64 label array per hidden layer, from any of the accepted label layouts.

    ``labels`` is either one label per graph node in graph order (input, hidden, output
    layers, each in index order; length ``sum(widths)``), or a list of per-layer arrays
    (one per hidden layer, or one per layer including input and output), or an object with
    a ``labels`` attribute (a [`Partition`][modscope.clustering.spectral.Partition]). ``-1`` = unlabelled.
    """
    labels = getattr(labels, "labels", labels)
    widths = [int(w) for w in widths]
    n_hidden = len(widths) - 2
    per_layer = isinstance(labels, list | tuple) and len(labels) > 0 and np.ndim(labels[0]) == 1
    if per_layer:
        arrays = [np.asarray(a) for a in labels]
        if len(arrays) == len(widths):
            arrays = arrays[1:-1]
        elif len(arrays) != n_hidden:
            raise ModscopeError(
                f"got label arrays for {len(arrays)} layers; the model has {n_hidden} hidden "
                f"layers ({len(widths)} layers in all)"
            )
        for a, w in zip(arrays, widths[1:-1], strict=True):
            if a.shape != (w,):
                raise ModscopeError(f"a hidden layer of width {w} got {a.shape[0]} labels")
    else:
        flat = np.asarray(labels)
        if flat.ndim != 1 or flat.shape[0] != sum(widths):
            raise ModscopeError(
                f"expected one label per graph node ({sum(widths)} for widths {widths}), "
                f"got shape {flat.shape}"
            )
        arrays = np.split(flat, np.cumsum(widths)[:-1])[1:-1]
    out = []
    for a in arrays:
        if a.size and not np.issubdtype(a.dtype, np.integer):
            if not np.all(np.isfinite(a)) or not np.all(a == np.round(a)):
                raise ModscopeError("cluster labels must be integers")
        a = a.astype(np.int64)
        if a.size and a.min() < -1:
            raise ModscopeError("cluster labels must be >= 0, or -1 for unlabelled neurons")
        out.append(a)
    return out


def submodules(labels: Any, widths: Sequence[int]) -> list[Submodule]:
    """Every (hidden layer, cluster) sub-module with at least one neuron, by layer then cluster."""
    result = []
    for i, lab in enumerate(hidden_layer_labels(labels, widths)):
        for c in np.unique(lab[lab >= 0]):
            result.append(Submodule(i + 1, int(c), tuple(np.flatnonzero(lab == c).tolist())))
    return result
