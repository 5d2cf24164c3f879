"""Random baselines ([spec §3][spec-3]): nulls that draw graphs to compare a network with. Weight shuffles
(`layer`, `layer_nonzero`, the KDE redraws, the degree-preserving `layer_degree`) and, for
activation graphs, unit permutations (`units`)."""

from __future__ import annotations

from typing import Any

from ..errors import ModscopeError
from .base import Null
from .degree import LayerDegreeShuffle
from .permutations import UnitPermutationNull
from .shuffles import SHUFFLE_METHODS, WeightShuffleNull, get_shuffle, shuffle_graph

__all__ = [
    "NULLS",
    "SHUFFLE_METHODS",
    "LayerDegreeShuffle",
    "Null",
    "UnitPermutationNull",
    "WeightShuffleNull",
    "get_null",
    "get_shuffle",
    "shuffle_graph",
]

NULLS = (*SHUFFLE_METHODS, UnitPermutationNull.name)


def get_null(null: Any) -> Null:
    """A null by name (a shuffle method or ``units``), a shuffle method object wrapped as a
    `WeightShuffleNull`, or a `Null` passed through."""
    if isinstance(null, str):
        if null == UnitPermutationNull.name:
            return UnitPermutationNull()
        if null not in SHUFFLE_METHODS:
            raise ModscopeError(f"unknown null {null!r}; choose from {', '.join(NULLS)}")
        return WeightShuffleNull(null)
    if hasattr(null, "sample"):
        return null
    if hasattr(null, "shuffle"):
        return WeightShuffleNull(null)
    raise ModscopeError(
        f"a null must be a name or have a sample(graph, seed) method, got {type(null).__name__}"
    )
